"""Deletion reaches the weights: adapter lineage in the record, stale adapters refused,
``--retrain-stale`` rebuilds without the deleted fact (real SQLite/Postgres memories, a tiny
model trained until greedy decoding produces its facts, a real ``memkit`` subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from consolidate_data import FACTS, TINY

from memkit import Memory
from memkit.consolidate import LoraSettings, TrainConfig
from memkit.consolidate.model import build_tiny_lm, save_base
from memkit.consolidate.trainer import answer_matches
from memkit.lineage import StaleAdapter

OPTS: dict[str, Any] = {"lora": LoraSettings(r=8, alpha=16),
                        "train": TrainConfig(epochs=60, batch_size=8, lr=1e-2, max_len=32),
                        "progress": False}
DELETED, KEPT = FACTS[0], FACTS[1]


@pytest.fixture
def base_dir(tmp_path: Path, tokenizer: Any) -> Path:
    d = tmp_path / "tiny-base"
    save_base(build_tiny_lm(len(tokenizer), TINY, seed=0), tokenizer, d)
    return d


def _write_facts(mem: Memory, pairs: list[tuple[str, str]]) -> list[int]:
    return [mem.write(f"{q} {a}", metadata={"question": q, "answer": a}) for q, a in pairs]


def _produces(mem: Memory, base_dir: Path, pairs: list[tuple[str, str]]) -> list[bool]:
    """Greedy decoding (teacher-forced arg-max check) with the memory's latest adapter."""
    from memkit.consolidate import load_base

    model, tok = load_base(base_dir)
    loaded = mem.consolidator(base_dir, **OPTS).load_latest(model)
    return answer_matches(loaded, tok, pairs, max_len=32)


def test_delete_marks_adapter_stale_and_retrain_forgets(mem: Memory, base_dir: Path) -> None:
    ids = _write_facts(mem, FACTS[:4])
    assert mem.stats()["adapters"] is None  # never consolidated
    m1 = mem.consolidate(base_dir, "sequential", **OPTS)
    assert m1.round == 1
    assert sorted(v[0] for v in m1.item_versions) == sorted(ids)
    assert all(v[1] == 1 and len(v[2]) > 8 for v in m1.item_versions)  # version + hash
    assert _produces(mem, base_dir, [DELETED, KEPT]) == [True, True]
    ad = mem.stats()["adapters"]
    assert ad["rounds"] == 1 and ad["lineage_items"] == 4 and ad["stale_rounds"] == []

    mem.delete([ids[0]], reason="user asked")
    # the delete itself audits the staleness (before any stats/read looks at the adapters)
    events = [r for r in mem.audit(limit=50) if r["op"] == "adapter_stale"]
    assert [(e["item_id"], e["reason"]) for e in events] == [
        (ids[0], "adapter round 1 was trained on v1, now deleted")]
    assert events[0]["detail"] == {"round": 1, "version": 1, "why": "deleted",
                                   "trained_in_round": 1}
    ad = mem.stats()["adapters"]
    assert ad["stale_rounds"] == [1] and ad["latest_stale"]
    assert ad["stale_items"] == [{"round": 1, "item_id": ids[0], "version": 1,
                                  "why": "deleted"}]
    cons = mem.consolidator(base_dir, **OPTS)
    from memkit.consolidate import load_base

    with pytest.raises(StaleAdapter, match=rf"round 1 is stale.*item {ids[0]} v1 deleted"):
        cons.load_latest(load_base(base_dir)[0])
    with pytest.raises(StaleAdapter), cons.inference():
        pass
    cons.load_latest(load_base(base_dir)[0], allow_stale=True)  # told to: it loads

    assert len([r for r in mem.audit(limit=50) if r["op"] == "adapter_stale"]) == 1  # once
    m2 = mem.retrain_stale(base_dir, **OPTS)
    assert m2 is not None and m2.round == 1 and sorted(m2.item_ids) == sorted(ids[1:])
    ad = mem.stats()["adapters"]
    assert ad["stale_rounds"] == [] and ad["lineage_items"] == 3
    assert _produces(mem, base_dir, [DELETED, KEPT]) == [False, True]
    assert mem.retrain_stale(base_dir, **OPTS) is None  # nothing stale now


def test_update_marks_later_rounds_stale_and_retrain_learns_new_value(
        mem: Memory, base_dir: Path) -> None:
    ids = _write_facts(mem, FACTS[:2])
    mem.consolidate(base_dir, "replay", **OPTS)
    later = _write_facts(mem, FACTS[2:4])
    m2 = mem.consolidate(base_dir, **OPTS)  # method: the stored rounds' (replay)
    assert m2.round == 2 and m2.method == "replay" and sorted(m2.item_ids) == sorted(later)
    q, _ = FACTS[1]
    new_id = mem.update(ids[1], f"{q} lyon", metadata={"question": q, "answer": "lyon"})
    ad = mem.stats()["adapters"]
    # round 1 trained on the old version; round 2 started from round 1's weights
    assert ad["stale_rounds"] == [1, 2]
    assert [(s["item_id"], s["why"]) for s in ad["stale_items"]] == [(ids[1], "updated")]
    events = [(r["item_id"], r["reason"]) for r in mem.audit(limit=50)
              if r["op"] == "adapter_stale"]
    assert sorted(events) == [
        (ids[1], "adapter round 1 was trained on v1, now updated"),
        (ids[1], "adapter round 2 was trained on v1, now updated (builds on round 1)")]
    m = mem.retrain_stale(base_dir, **OPTS)
    assert m is not None and m.round == 1 and new_id in m.item_ids and ids[1] not in m.item_ids
    assert _produces(mem, base_dir, [(q, "lyon"), (q, FACTS[1][1])]) == [True, False]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "memkit.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.slow
def test_cli_consolidate_stats_retrain_stale(tmp_path: Path, base_dir: Path) -> None:
    mdir = tmp_path / "m"
    with Memory.open(mdir, embedder="hash") as mem:
        ids = _write_facts(mem, FACTS[:4])
    train = ["--epochs", "60", "--lr", "0.01", "--max-len", "32", "--method", "sequential"]
    out = _cli("consolidate", "--memory", str(mdir), "--base-model", str(base_dir), *train,
               "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["round"] == 1
    assert _cli("delete", str(ids[0]), "--memory", str(mdir)).returncode == 0
    stats = _cli("stats", "--memory", str(mdir))
    assert stats.returncode == 0, stats.stderr
    assert "STALE rounds [1]" in stats.stdout and "--retrain-stale" in stats.stdout
    out = _cli("consolidate", "--memory", str(mdir), "--base-model", str(base_dir), *train,
               "--retrain-stale", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["retrained"] and sorted(data["item_ids"]) == sorted(ids[1:])
    assert data["adapters"]["stale_rounds"] == []
    with Memory.open(mdir, embedder="hash") as mem:
        assert _produces(mem, base_dir, [DELETED, KEPT]) == [False, True]
    assert "none stale" in _cli("stats", "--memory", str(mdir)).stdout
