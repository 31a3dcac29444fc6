"""Memory.consolidate: the facade hands the record's current items to the Consolidator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from consolidate_data import FACTS

from memkit import ConfigError, Memory
from memkit.consolidate import TrainConfig
from memkit.consolidate.model import LoraSettings

FAST = {"lora": LoraSettings(r=4, alpha=8),
        "train": TrainConfig(epochs=2, batch_size=4, lr=1e-2, max_len=32)}


def test_consolidate_covers_new_items_incrementally(
        tmp_path: Path, factory: Callable[[], Any]) -> None:
    with Memory.open(tmp_path / "m", embedder="hash") as mem:
        first = [mem.write(f"{q} {a}", metadata={"question": q, "answer": a})
                 for q, a in FACTS[:5]]
        m1 = mem.consolidate(factory, "replay", **FAST)
        assert m1.round == 1 and sorted(m1.item_ids) == sorted(first)
        assert (tmp_path / "m" / "consolidation" / "round-0001" / "manifest.json").exists()
        # an update is a new version (a new id): the next round covers only it
        q, a = FACTS[5]
        newer = mem.update(first[0], f"{q} {a}", metadata={"question": q, "answer": a})
        m2 = mem.consolidate(factory, "replay", **FAST)
        assert m2.round == 2 and m2.item_ids == [newer]
        assert mem.consolidate(factory, "replay", **FAST).round == 2  # nothing new


def test_consolidate_needs_a_directory(factory: Callable[[], Any]) -> None:
    with Memory.open(None, embedder="hash") as mem:
        mem.write("something")
        with pytest.raises(ConfigError, match="directory"):
            mem.consolidate(factory)
