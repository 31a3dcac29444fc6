"""Consolidator: incremental rounds, adapter save/load round trip, crash safety."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from consolidate_data import FACTS

from memkit.consolidate import Consolidator, TrainConfig
from memkit.consolidate.methods import ILoRA, Replay
from memkit.consolidate.model import LoraSettings, lora_params
from memkit.consolidate.synthetic import SyntheticItem
from memkit.errors import ConfigError, InvalidInput, NotFound

FAST = TrainConfig(epochs=3, batch_size=4, lr=1e-2, max_len=32)
LORA = LoraSettings(r=4, alpha=8)


def make(tmp_path: Path, factory: Callable[[], Any], method: Any = "replay", **kw: Any
         ) -> Consolidator:
    return Consolidator(tmp_path, factory, method, lora=LORA, train=FAST, progress=False, **kw)


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@torch.no_grad()
def logits(model: Any, tok: Any) -> torch.Tensor:
    ids = torch.tensor([[tok.bos_token_id] + tok.encode(FACTS[0][0])])
    return model(input_ids=ids).logits


def test_round_trip_and_manifest(tmp_path: Path, factory: Callable[[], Any],
                                 fact_items: Callable[..., list[SyntheticItem]]) -> None:
    cons = make(tmp_path, factory)
    items = fact_items(FACTS)
    m = cons.consolidate(items)
    assert m.round == 1 and m.method == "replay" and m.item_ids == [it.id for it in items]
    assert m.n_items_covered == len(FACTS) and m.n_examples == len(FACTS)
    assert m.lora["r"] == 4 and m.train["epochs"] == 3
    assert m.method_options == {"ratio": 0.25, "capacity": 1000}
    assert 0.0 <= m.metrics["new_item_accuracy"] <= 1.0
    assert m.path == tmp_path / "consolidation" / "round-0001"
    assert (m.path / "adapter" / "adapter_config.json").exists()
    with cons.inference() as (live, tok):
        expected = logits(live, tok)
    base, tok = factory()
    loaded = make(tmp_path, factory).load_latest(base)
    assert torch.allclose(logits(loaded, tok), expected, atol=1e-6)
    fresh_base, _ = factory()
    assert not torch.allclose(logits(fresh_base, tok), expected, atol=1e-4)  # training mattered
    assert cons.history()[0].to_json() == m.to_json()


def test_rounds_are_incremental(tmp_path: Path, factory: Callable[[], Any],
                                fact_items: Callable[..., list[SyntheticItem]]) -> None:
    cons = make(tmp_path, factory)
    first = fact_items(FACTS[:3])
    m1 = cons.consolidate(first)
    assert cons.consolidate(first).round == 1  # nothing new: no new round
    both = first + fact_items(FACTS[3:], start_id=10, t0=100.0)
    # a new process: the state (covered ids, replay buffer) comes back from disk
    cons2 = make(tmp_path, factory)
    m2 = cons2.consolidate(both)
    assert m2.round == 2 and m2.item_ids == [10, 11, 12] and m2.n_items_covered == 6
    assert m1.path is not None and m1.path.exists()
    assert [h.round for h in cons2.history()] == [1, 2]
    later = fact_items([("what is the color of kemu ?", "green")], start_id=20, t0=50.0)
    assert make(tmp_path, factory).consolidate(later, since=60.0).round == 2  # too old


def test_restore_continues_from_saved_weights(tmp_path: Path, factory: Callable[[], Any],
                                              fact_items: Callable[..., list[SyntheticItem]]
                                              ) -> None:
    cons = make(tmp_path, factory)
    cons.consolidate(fact_items(FACTS))
    with cons.inference() as (live, _):
        live_w = {n: p.detach().clone() for n, p in lora_params(live).items()}
    buffer = [e.key for e in cons.method.buffer]  # type: ignore[attr-defined]
    again = make(tmp_path, factory)
    with again.inference() as (restored, _):
        for n, p in lora_params(restored).items():
            assert torch.equal(p, live_w[n])
    assert isinstance(again.method, Replay) and [e.key for e in again.method.buffer] == buffer


def test_crash_mid_training_keeps_previous_adapter(
        tmp_path: Path, factory: Callable[[], Any],
        fact_items: Callable[..., list[SyntheticItem]]) -> None:
    class Boom(Replay):
        armed = False

        def after_step(self, model: Any) -> None:
            if self.armed:
                raise RuntimeError("power cut")

    method = Boom()
    cons = make(tmp_path, factory, method)
    m1 = cons.consolidate(fact_items(FACTS[:3]))
    before = tree_digest(tmp_path)
    cons._pristine_method.armed = True  # type: ignore[attr-defined]
    cons.method.armed = True  # type: ignore[attr-defined]
    new = fact_items(FACTS[3:], start_id=10, t0=100.0)
    with pytest.raises(RuntimeError, match="power cut"):
        cons.consolidate(new)
    assert tree_digest(tmp_path) == before  # round-0001 untouched, no round-0002
    assert cons.latest_manifest().round == 1  # type: ignore[union-attr]
    base, tok = factory()
    with torch.no_grad():
        reloaded = cons.load_latest(base)
    assert m1.path is not None
    (tmp_path / "consolidation" / ".tmp-leftover").mkdir()  # as if killed while writing
    cons._pristine_method.armed = False  # type: ignore[attr-defined]
    m2 = cons.consolidate(new)  # restarts from round 1 on disk, not the half-trained weights
    assert m2.round == 2 and m2.item_ids == [10, 11, 12]
    assert not list((tmp_path / "consolidation").glob(".tmp-*"))
    assert reloaded is not None


def test_ilora_serves_the_slow_adapter(tmp_path: Path, factory: Callable[[], Any],
                                       fact_items: Callable[..., list[SyntheticItem]]) -> None:
    cons = make(tmp_path, factory, ILoRA(a=0.9))
    cons.consolidate(fact_items(FACTS))
    method = cons.method
    assert isinstance(method, ILoRA)
    base, tok = factory()
    served = cons.load_latest(base)
    for n, p in lora_params(served).items():
        assert torch.allclose(p, method.slow[n])
    with cons.inference() as (live, _):  # inference swaps the slow weights in
        assert all(torch.allclose(p, method.slow[n]) for n, p in lora_params(live).items())
    fast = {n: p for n, p in lora_params(cons._session.model).items()}  # type: ignore[union-attr]
    assert any(not torch.allclose(fast[n], method.slow[n]) for n in fast)


def test_errors(tmp_path: Path, factory: Callable[[], Any],
                fact_items: Callable[..., list[SyntheticItem]]) -> None:
    cons = make(tmp_path, factory)
    with pytest.raises(NotFound):
        cons.load_latest(factory()[0])
    with pytest.raises(InvalidInput):
        cons.consolidate([])
    cons.consolidate(fact_items(FACTS[:2]))
    with pytest.raises(ConfigError):
        make(tmp_path, factory, "ewc")


def test_text_items_train_next_token(tmp_path: Path, factory: Callable[[], Any]) -> None:
    items = [SyntheticItem(id=1, text="a farmer reads a book .", created_at=0.0),
             SyntheticItem(id=2, text="the owl sleeps near the lake .", created_at=1.0)]
    m = make(tmp_path, factory, "sequential").consolidate(items)
    assert m.item_ids == [1, 2] and m.metrics == {}  # no QA pairs to score
    assert m.stats["steps"] == 3 and m.stats["last_loss"] < m.stats["first_loss"]


def test_accepts_memkit_memory_items(tmp_path: Path, factory: Callable[[], Any]) -> None:
    from memkit.types import MemoryItem, Scope

    def item(i: int, q: str, a: str) -> MemoryItem:
        return MemoryItem(id=i, text=f"{q} {a}", scope=Scope(user="u1"), source=None,
                          created_at=float(i), confidence=1.0, expires_at=None,
                          metadata={"question": q, "answer": a}, content_hash=str(i))

    items = [item(i + 1, q, a) for i, (q, a) in enumerate(FACTS[:2])]
    m = make(tmp_path, factory).consolidate(items)
    assert m.item_ids == [1, 2] and m.until == 2.0
