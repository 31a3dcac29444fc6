"""Each method's hook checked on a tiny model or a hand-sized example."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import torch
from consolidate_data import FACTS, GENERAL

from memkit.consolidate import formulas as F
from memkit.consolidate.examples import TrainExample, collate
from memkit.consolidate.methods import (
    EWC,
    HFT,
    METHODS,
    GeRe,
    ILoRA,
    Method,
    Replay,
    RewarmReplay,
    make_method,
)
from memkit.consolidate.model import LoraSettings, attach_lora, lora_params, lora_units
from memkit.consolidate.trainer import (
    StepContext,
    TrainConfig,
    causal_lm_loss,
    forward,
    train_round,
)
from memkit.errors import ConfigError


def ex(i: int, key: str | None = None) -> TrainExample:
    return TrainExample(f"q{i}", f"a{i}", key or f"q{i}", i)


def peft_model(factory: Callable[[], tuple[Any, Any]]) -> tuple[Any, Any]:
    model, tok = factory()
    return attach_lora(model, LoraSettings(r=4, alpha=8), seed=0), tok


def qa(pairs: list[tuple[str, str]]) -> list[TrainExample]:
    return [TrainExample(q, a, q) for q, a in pairs]


def test_registry_names_and_unknown() -> None:
    assert set(METHODS) == {"sequential", "replay", "ewc", "ilora", "hft", "gere", "rewarm"}
    assert isinstance(make_method("replay", ratio=0.1), Replay)
    with pytest.raises(ConfigError):
        make_method("nope")
    with pytest.raises(ConfigError):
        make_method("replay", bogus=1)


def test_replay_ratio_respected_and_buffer_reservoir() -> None:
    rng = random.Random(0)
    m = Replay(ratio=0.25, capacity=50)
    m.end_round(None, None, [ex(i) for i in range(100)], rng)  # type: ignore[arg-type]
    assert len(m.buffer) == 50 and m.seen == 100
    new = [ex(1000 + i) for i in range(30)]
    mixed = m.training_set(new, rng)
    replayed = [e for e in mixed if e.replay]
    assert len(mixed) == 40 and len(replayed) == 10  # 10 / 40 = 25 %
    assert all(not e.replay for e in mixed[:30])
    assert {e.key for e in replayed} <= {e.key for e in m.buffer}


def test_replay_drops_stale_answers_of_updated_keys() -> None:
    rng = random.Random(0)
    m = Replay(ratio=0.5, capacity=10)
    m.end_round(None, None, [ex(1), ex(2)], rng)  # type: ignore[arg-type]
    update = TrainExample("q1", "new answer", "q1", 9)
    mixed = m.training_set([update], rng)
    assert [e.target for e in mixed if e.key == "q1"] == ["new answer"]
    assert [e.key for e in m.buffer] == ["q2"]


def test_replay_fewer_buffered_than_ratio_asks() -> None:
    m = Replay(ratio=0.5)
    m.end_round(None, None, [ex(1)], random.Random(0))  # type: ignore[arg-type]
    assert len(m.training_set([ex(i) for i in range(10, 20)], random.Random(0))) == 11


def test_ewc_fisher_and_penalty_on_model(factory: Callable[[], tuple[Any, Any]]) -> None:
    model, tok = peft_model(factory)
    with torch.no_grad():  # give B a value so both A and B receive gradient
        for n, p in lora_params(model).items():
            if "lora_B" in n:
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    m = EWC(lam=0.1)
    batch = collate(qa(FACTS), tok)
    ctx = StepContext(model, tok, batch, None, torch.tensor(0.0), 0, 1, random.Random(0), 32)
    assert m.extra_loss(ctx) is None  # nothing to protect before the first round
    m.end_round(model, tok, qa(FACTS), random.Random(0))
    assert set(m.fisher) == set(lora_params(model)) == set(m.anchors)
    assert all((f >= 0).all() for f in m.fisher.values())
    assert sum(float(f.sum()) for f in m.fisher.values()) > 0
    assert m.extra_loss(ctx).item() == pytest.approx(0.0)  # at the anchor
    name = next(n for n in m.fisher if float(m.fisher[n].max()) > 0)
    idx = int(m.fisher[name].argmax())
    with torch.no_grad():
        lora_params(model)[name].view(-1)[idx] += 2.0
    expected = 0.5 * 0.1 * float(m.fisher[name].view(-1)[idx]) * 4.0
    assert m.extra_loss(ctx).item() == pytest.approx(expected, rel=1e-5)


def test_ewc_fisher_is_mean_squared_gradient(factory: Callable[[], tuple[Any, Any]]) -> None:
    model, tok = peft_model(factory)
    examples = qa(FACTS[:2])
    m = EWC(fisher_samples=2)
    m.end_round(model, tok, examples, random.Random(0))
    grads = []
    for e in examples:
        model.zero_grad()
        b = collate([e], tok)
        causal_lm_loss(forward(model, b).logits, b.labels).backward()
        grads.append({n: p.grad.clone() for n, p in lora_params(model).items()})
    for n, f in m.fisher.items():
        assert torch.allclose(f, (grads[0][n] ** 2 + grads[1][n] ** 2) / 2, atol=1e-10)


def test_ilora_ema_after_one_step(factory: Callable[[], tuple[Any, Any]]) -> None:
    model, tok = peft_model(factory)
    m = ILoRA(a=0.25, lam=1.0)
    m.begin_round(model, tok, [], random.Random(0))
    slow0 = {n: t.clone() for n, t in m.slow.items()}
    with torch.no_grad():
        for p in lora_params(model).values():
            p.add_(1.0)
    m.after_step(model)
    for n, p in lora_params(model).items():
        assert torch.allclose(m.slow[n], 0.25 * slow0[n] + 0.75 * p.detach())
    assert m.serving_weights() is not None


def test_ilora_consistency_only_on_replayed_rows(factory: Callable[[], tuple[Any, Any]]) -> None:
    model, tok = peft_model(factory)
    m = ILoRA()
    m.begin_round(model, tok, [], random.Random(0))
    batch = collate([TrainExample(q, a, q, replay=(i == 1)) for i, (q, a) in enumerate(FACTS)],
                    tok)
    out = forward(model, batch, hidden=True)
    ctx = StepContext(model, tok, batch, out, torch.tensor(0.0), 0, 1, random.Random(0), 32)
    assert m.extra_loss(ctx).item() == pytest.approx(0.0, abs=1e-12)  # slow == fast
    with torch.no_grad():
        for n, p in lora_params(model).items():
            p.add_(0.05 if "lora_B" in n else 0.0)
    out = forward(model, batch, hidden=True)
    ctx = StepContext(model, tok, batch, out, torch.tensor(0.0), 0, 1, random.Random(0), 32)
    loss = m.extra_loss(ctx)
    sub = batch.select(torch.tensor([1]))
    with torch.no_grad():
        fast = forward(model, sub, hidden=True).hidden_states[-1]
        slow = torch.func.functional_call(model, m.slow, args=(), kwargs={
            "input_ids": sub.input_ids, "attention_mask": sub.attention_mask,
            "output_hidden_states": True}, strict=False).hidden_states[-1]
    assert loss.item() > 0
    assert loss.item() == pytest.approx(F.consistency_mse(fast, slow, sub.attention_mask).item(),
                                        rel=1e-4)
    no_replay = collate(qa(FACTS), tok)
    ctx.batch = no_replay
    assert m.extra_loss(ctx) is None


@pytest.mark.parametrize("p", [0.5, 0.25])
def test_hft_freezes_stated_fraction(factory: Callable[[], tuple[Any, Any]], p: float) -> None:
    model, tok = peft_model(factory)
    units = lora_units(model)
    m = HFT(p=p)
    m.begin_round(model, tok, [], random.Random(0))
    params = lora_params(model)
    frozen = {u for u, names in units.items() if not any(params[n].requires_grad for n in names)}
    trainable = {u for u, names in units.items() if all(params[n].requires_grad for n in names)}
    assert len(units) == 7  # q k v o gate up down of the one layer
    assert frozen == set(m.frozen_units) and len(frozen) == round(p * len(units))
    assert frozen | trainable == set(units)
    m.end_round(model, tok, [], random.Random(0))
    assert all(p.requires_grad for p in params.values())


def test_hft_frozen_matrices_do_not_move(factory: Callable[[], tuple[Any, Any]]) -> None:
    model, tok = peft_model(factory)
    before = {n: p.detach().clone() for n, p in lora_params(model).items()}

    class Spy(HFT):
        def end_round(self, model: Any, tok: Any, new: Any, rng: Any) -> None:
            self.snapshot = {n: p.detach().clone() for n, p in lora_params(model).items()}
            super().end_round(model, tok, new, rng)

    m = Spy(p=0.5)
    train_round(model, tok, m, qa(FACTS), TrainConfig(epochs=2, batch_size=3, lr=1e-2))
    units = lora_units(model)
    for u, names in units.items():
        moved = any(not torch.equal(before[n], m.snapshot[n]) for n in names)
        assert moved == (u not in m.frozen_units)


def test_gere_margin_is_zero_before_training(factory: Callable[[], tuple[Any, Any]]) -> None:
    model, tok = peft_model(factory)
    m = GeRe(general_texts=GENERAL, batch_size=4)
    m.begin_round(model, tok, [], random.Random(0))
    assert m.mean is not None and m.std is not None and m.mean.shape == (32,)
    batch = collate(qa(FACTS[:2]), tok)
    ctx = StepContext(model, tok, batch, None, torch.tensor(1.0), 0, 1, random.Random(0), 32)
    loss = m.extra_loss(ctx)
    assert loss is not None and m.last_margin == 0.0  # LoRA B = 0: the model is the base
    with torch.no_grad():
        for n, p in lora_params(model).items():
            if "lora_B" in n:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    m.extra_loss(ctx)
    assert m.last_margin > 0


def test_gere_needs_texts() -> None:
    with pytest.raises(ConfigError):
        GeRe()


def test_rewarm_lr_factor_follows_schedule() -> None:
    m = RewarmReplay(warmup=0.1, min_factor=0.1)
    assert [m.lr_factor(s, 100) for s in (0, 5, 10, 100)] == pytest.approx([0.1, 0.5, 1.0, 0.1])
    assert Method().lr_factor(5, 100) == 1.0
