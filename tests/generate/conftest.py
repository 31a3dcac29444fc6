"""Tiny word-level tokenizer + random-initialised Llama, built locally (no downloads)."""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # test process only; the library never sets it


@pytest.fixture(scope="session")
def tiny(torch_device: str) -> tuple[Any, Any]:
    """(tokenizer with recall tokens, tiny Llama resized for them)."""
    pytest.importorskip("transformers")
    from memkit.generate.recall_tokens import add_recall_tokens
    from memkit.generate.recall_train import build_copy_tokenizer, tiny_llama

    tok = build_copy_tokenizer(20, 20)
    model = tiny_llama(len(tok), hidden=32, layers=1, heads=2)
    add_recall_tokens(tok, model)
    model.to(torch_device).eval()
    return tok, model


@pytest.fixture(scope="session")
def tiny_plain(torch_device: str) -> tuple[Any, Any]:
    """(tokenizer without recall tokens, tiny Llama)."""
    pytest.importorskip("transformers")
    from memkit.generate.recall_train import build_copy_tokenizer, tiny_llama

    tok = build_copy_tokenizer(20, 20)
    model = tiny_llama(len(tok), hidden=32, layers=1, heads=2)
    model.to(torch_device).eval()
    return tok, model
