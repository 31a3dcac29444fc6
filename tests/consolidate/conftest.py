"""Tiny models and items for the consolidation tests (random-initialised, built in-process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

pytest.importorskip("peft")

from consolidate_data import FACTS, GENERAL, TINY  # noqa: E402

from memkit.consolidate.model import build_tiny_lm  # noqa: E402
from memkit.consolidate.synthetic import SyntheticItem  # noqa: E402
from memkit.consolidate.tokenizer import WordTokenizer  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer() -> WordTokenizer:
    return WordTokenizer.build([q + " " + a for q, a in FACTS] + GENERAL + ["green white"])


@pytest.fixture
def factory(tokenizer: WordTokenizer) -> Callable[[], tuple[Any, WordTokenizer]]:
    """A base-model factory returning identical weights on every call."""

    def make() -> tuple[Any, WordTokenizer]:
        return build_tiny_lm(len(tokenizer), TINY, seed=0), tokenizer

    return make


def _fact_items(pairs: list[tuple[str, str]], start_id: int = 1, t0: float = 0.0
                ) -> list[SyntheticItem]:
    return [SyntheticItem(id=start_id + i, text=f"{q} {a}", created_at=t0 + i,
                          metadata={"question": q, "answer": a})
            for i, (q, a) in enumerate(pairs)]


@pytest.fixture
def fact_items() -> Callable[..., list[SyntheticItem]]:
    """``fact_items(pairs, start_id=1, t0=0.0)`` -> memory-item-like objects with QA metadata."""
    return _fact_items
