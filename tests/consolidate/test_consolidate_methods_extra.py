"""MER, subspace-constrained LoRA, spaced review, low-rank EWC and GRPO: each defining formula
on hand-computed values, each hook on the tiny model."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest
import torch
from consolidate_data import FACTS

from memkit.consolidate import formulas as F
from memkit.consolidate.examples import TrainExample, collate
from memkit.consolidate.methods import CONSOLIDATION_METHODS, make_method
from memkit.consolidate.methods_extra import GRPO, MER, LowRankEWC, SpacedReplay, SubspaceLoRA
from memkit.consolidate.model import LoraSettings, attach_lora, lora_params, snapshot
from memkit.consolidate.trainer import (
    StepContext,
    TrainConfig,
    causal_lm_loss,
    forward,
    train_round,
)
from memkit.errors import ConfigError


def peft_model(factory: Callable[[], tuple[Any, Any]]) -> tuple[Any, Any]:
    model, tok = factory()
    return attach_lora(model, LoraSettings(r=4, alpha=8), seed=0), tok


def qa(pairs: list[tuple[str, str]]) -> list[TrainExample]:
    return [TrainExample(q, a, q) for q, a in pairs]


def ex(i: int) -> TrainExample:
    return TrainExample(f"q{i}", f"a{i}", f"q{i}", i)


def test_new_methods_are_registered() -> None:
    for name, cls in [("mer", MER), ("subspace", SubspaceLoRA), ("spaced", SpacedReplay),
                      ("ewc-lowrank", LowRankEWC), ("grpo", GRPO)]:
        assert name in CONSOLIDATION_METHODS.names()
        assert isinstance(make_method(name), cls)
    with pytest.raises(ConfigError):
        make_method("grpo", group=1)
    with pytest.raises(ConfigError):
        make_method("subspace", fraction=1.5)


# ---------------------------------------------------------------- MER
def test_reptile_interpolation_hand_value() -> None:
    out = F.reptile_interpolate(torch.tensor([1.0, -2.0]), torch.tensor([5.0, 2.0]), 0.25)
    assert out.tolist() == pytest.approx([2.0, -1.0])  # 1 + .25*4, -2 + .25*4


def test_mer_meta_update_every_k_steps(factory: Callable[[], tuple[Any, Any]]) -> None:
    model, tok = peft_model(factory)
    m = MER(beta=0.5, k=2)
    m.begin_round(model, tok, [], random.Random(0))
    start = snapshot(lora_params(model))
    name = next(iter(start))
    p = lora_params(model)[name]
    with torch.no_grad():
        p.add_(1.0)
    m.after_step(model)  # step 1 of 2: no meta-update yet
    assert torch.allclose(p, start[name] + 1.0)
    with torch.no_grad():
        p.add_(1.0)
    m.after_step(model)  # step 2: theta_0 + 0.5 * (theta_2 - theta_0) = theta_0 + 1
    assert torch.allclose(p, start[name] + 1.0)
    assert torch.allclose(m._start[name], p)  # the next meta-batch starts here


# ---------------------------------------------------------------- Sculpting subspaces
def test_constrained_lora_update_hand_value() -> None:
    u = torch.tensor([[1.0], [0.0], [0.0]])  # dominant left direction e1 (out = 3)
    v = torch.tensor([[1.0], [0.0]])  # dominant right direction e1 (in = 2)
    b0, a0 = torch.tensor([[1.0], [0.0], [0.0]]), torch.tensor([[1.0, 0.0]])
    b, a = torch.tensor([[2.0], [1.0], [0.0]]), torch.tensor([[3.0, 4.0]])
    b1, a1 = F.constrain_lora_update(b0, a0, b, a, u, v)
    assert b1.tolist() == [[1.0], [1.0], [0.0]]  # dB = (1,1,0) -> (0,1,0)
    assert a1.tolist() == [[1.0, 4.0]]  # dA = (2,4) -> (0,4)
    delta = b1 @ a1 - b0 @ a0
    assert delta.tolist() == [[0.0, 4.0], [1.0, 4.0], [0.0, 0.0]]
    assert (u.T @ delta @ v).item() == 0.0


def test_top_singular_bases_of_a_diagonal() -> None:
    u, v = F.top_singular_bases(torch.diag(torch.tensor([1.0, 3.0])), 0.5)
    assert u.shape == (2, 1) and v.shape == (2, 1)
    assert u.abs().flatten().tolist() == pytest.approx([0.0, 1.0])  # sigma = 3 on e2
    assert v.abs().flatten().tolist() == pytest.approx([0.0, 1.0])


def test_subspace_round_leaves_dominant_pairs_untouched(
        factory: Callable[[], tuple[Any, Any]]) -> None:
    model, tok = peft_model(factory)
    m = SubspaceLoRA(fraction=0.5)
    with torch.no_grad():  # a non-zero earlier adapter, so B0 A0 != 0
        for p in lora_params(model).values():
            p.copy_(torch.randn_like(p) * 0.1)
    before = snapshot(lora_params(model))
    train_round(model, tok, m, qa(FACTS), TrainConfig(epochs=3, batch_size=3, lr=1e-2,
                                                      max_len=32), seed=0)
    assert m._bases
    after = lora_params(model)
    moved = 0.0
    for a_name, b_name, u, v in m._bases.values():
        delta = (after[b_name] @ after[a_name] - before[b_name] @ before[a_name]).detach()
        moved += float(delta.abs().sum())
        assert float((u.T @ delta @ v).abs().max()) < 1e-5
    assert moved > 1e-3  # it did learn, outside the protected block


# ---------------------------------------------------------------- spaced review
def test_next_review_expands_and_validates() -> None:
    assert F.next_review(3, 1) == (4, 2)
    assert F.next_review(4, 2) == (6, 4)
    assert F.next_review(2, 3, factor=1.5) == (5, 5)  # ceil(4.5)
    with pytest.raises(ValueError):
        F.next_review(1, 0)


def test_spaced_replay_reviews_only_due_examples() -> None:
    rng = random.Random(0)
    m = SpacedReplay(ratio=0.5, first_interval=1, factor=2.0)
    m.begin_round(None, None, [], rng)  # type: ignore[arg-type]
    m.training_set([ex(1), ex(2)], rng)  # round 1: nothing buffered
    m.end_round(None, None, [ex(1), ex(2)], rng)  # type: ignore[arg-type]
    assert m.schedule == {"q1": [2, 1], "q2": [2, 1]}
    m.begin_round(None, None, [], rng)  # type: ignore[arg-type]
    r2 = m.training_set([ex(3), ex(4)], rng)  # round 2: q1, q2 due, budget 2
    assert sorted(e.key for e in r2 if e.replay) == ["q1", "q2"]
    m.end_round(None, None, [ex(3), ex(4)], rng)  # type: ignore[arg-type]
    assert m.schedule["q1"] == [3, 2] and m.schedule["q3"] == [3, 1]
    m.begin_round(None, None, [], rng)  # type: ignore[arg-type]
    r3 = m.training_set([ex(5)], rng)  # round 3: q1..q4 due, budget 1: most overdue first
    assert [e.key for e in r3 if e.replay] == ["q1"]
    m.end_round(None, None, [ex(5)], rng)  # type: ignore[arg-type]
    assert m.schedule["q1"] == [5, 4]  # rests 2 rounds now
    m.begin_round(None, None, [], rng)  # type: ignore[arg-type]
    m.schedule = {k: ([9, 4] if k != "q2" else v) for k, v in m.schedule.items()}
    r4 = m.training_set([ex(6), ex(7), ex(8)], rng)  # only q2 is due
    assert [e.key for e in r4 if e.replay] == ["q2"]
    restored = SpacedReplay()
    restored.load_state({}, m.state_json())
    assert restored.schedule == m.schedule and restored.round == 4


# ---------------------------------------------------------------- low-rank Fisher EWC
def test_lowrank_fisher_hand_value() -> None:
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # F = G^T G / 2 = diag(0.5, 2)
    m1 = F.lowrank_fisher_factor(g, rank=1)
    assert (m1.T @ m1).flatten().tolist() == pytest.approx([0.0, 0.0, 0.0, 2.0], abs=1e-6)
    m2 = F.lowrank_fisher_factor(g, rank=2)
    assert (m2.T @ m2).flatten().tolist() == pytest.approx([0.5, 0.0, 0.0, 2.0], abs=1e-6)
    delta = torch.tensor([1.0, 1.0])
    assert F.lowrank_ewc_penalty(delta, m1, lam=2.0).item() == pytest.approx(2.0)  # 1*(2)
    assert F.lowrank_ewc_penalty(delta, m2, lam=2.0).item() == pytest.approx(2.5)  # .5+2


def test_lowrank_factors_of_two_rounds_add_up() -> None:
    g1, g2 = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, -1.0]])
    f1, f2 = F.lowrank_fisher_factor(g1, 2), F.lowrank_fisher_factor(g2, 2)
    both = F.lowrank_refactor(torch.cat([f1, f2]), 2)
    assert (both.T @ both).flatten().tolist() == pytest.approx([2.0, 0.0, 0.0, 2.0], abs=1e-6)


def test_lowrank_ewc_full_rank_equals_explicit_fisher(
        factory: Callable[[], tuple[Any, Any]]) -> None:
    model, tok = peft_model(factory)
    examples = qa(FACTS[:3])
    m = LowRankEWC(lam=2.0, rank=3, fisher_samples=3)
    m.end_round(model, tok, examples, random.Random(0))
    params = lora_params(model)
    names = sorted(params)
    rows = []
    for e in examples:
        model.zero_grad(set_to_none=True)
        batch = collate([e], tok)
        causal_lm_loss(forward(model, batch).logits, batch.labels).backward()
        rows.append(torch.cat([params[n].grad.reshape(-1) for n in names]))  # type: ignore[union-attr]
    g = torch.stack(rows)
    fisher = g.T @ g / 3
    delta = torch.randn(g.shape[1], generator=torch.Generator().manual_seed(0)) * 0.01
    assert m.factor is not None and m.factor.shape == (3, g.shape[1])
    want = 0.5 * 2.0 * float(delta @ fisher @ delta)
    got = float(F.lowrank_ewc_penalty(delta, m.factor, 2.0))
    assert got == pytest.approx(want, rel=1e-3)
    ctx = StepContext(model, tok, collate(examples, tok), None, torch.zeros(()), 0, 1,
                      random.Random(0), 32)
    penalty = m.extra_loss(ctx)
    assert penalty is not None and penalty.requires_grad
    assert float(penalty.detach()) == pytest.approx(0.0, abs=1e-10)  # at the anchor


# ---------------------------------------------------------------- GRPO
def test_group_advantages_hand_values() -> None:
    adv = F.group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
    s = 0.5 / math.sqrt(1 / 3)  # mean 0.5, unbiased std sqrt(1/3)
    assert adv[0].tolist() == pytest.approx([s, -s, -s, s], rel=1e-3)
    assert adv[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # nothing to learn from a tied group


def test_grpo_loss_clips_and_averages_per_completion() -> None:
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    logp = torch.zeros(2, 3, requires_grad=True)
    adv = torch.tensor([2.0, 0.5])
    # on-policy: ratio 1, loss = -mean_rows(A) = -(2 + 0.5) / 2
    loss = F.grpo_loss(logp, logp.detach(), None, adv, mask)
    assert loss.item() == pytest.approx(-1.25)
    loss.backward()  # d/dlogp = -A / (|o| * rows)
    assert logp.grad is not None
    assert logp.grad.flatten().tolist() == pytest.approx([-0.5, -0.5, 0.0, -0.25, 0.0, 0.0])
    up = torch.full((1, 1), 0.5)  # ratio e^0.5 = 1.649 > 1.2
    one = torch.ones(1, 1)
    assert F.grpo_loss(up, torch.zeros(1, 1), None, torch.tensor([1.0]), one).item() == \
        pytest.approx(-1.2)  # clipped for a positive advantage
    assert F.grpo_loss(up, torch.zeros(1, 1), None, torch.tensor([-1.0]), one).item() == \
        pytest.approx(math.exp(0.5))  # not clipped for a negative one (pessimistic bound)
    # k3 KL: ref - logp = d  ->  e^d - d - 1; with d = 1 and A = 0: beta * (e - 2)
    kl = F.grpo_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1),
                     torch.tensor([0.0]), one, beta=0.1)
    assert kl.item() == pytest.approx(0.1 * (math.e - 2))


def test_grpo_exact_match_reward(factory: Callable[[], tuple[Any, Any]],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    model, tok = peft_model(factory)
    q, a = FACTS[0]
    target = tok.encode(" " + a) + [tok.eos_token_id]
    wrong = tok.encode(" blue") + [tok.eos_token_id]
    m = GRPO(group=4)
    samples = torch.tensor([target + [0], wrong + [0], target[:1] + [5, 6], target + [7]])
    monkeypatch.setattr(m, "_sample", lambda *args: samples)
    ctx = StepContext(model, tok, collate([TrainExample(q, a, q)], tok), None,
                      torch.zeros(()), 0, 1, random.Random(0), 32)
    loss = m.extra_loss(ctx)
    assert loss is not None and loss.requires_grad
    assert m.last_reward == 0.5  # rows 1 and 4 match up to their eos


def test_answer_reward_exact_and_prefix_credit() -> None:
    target = [5, 6, 7, 2]  # three answer tokens + eos
    assert F.answer_reward(target, target) == 1.0
    assert F.answer_reward(target, target, "prefix") == 1.0
    assert F.answer_reward([5, 6, 9], target) == 0.0
    assert F.answer_reward([5, 6, 9], target, "prefix") == 0.5  # 2 of 4 tokens from the start
    assert F.answer_reward([9, 6, 7, 2], target, "prefix") == 0.0  # a wrong first token: 0
    assert F.answer_reward([5, 6, 7], target, "prefix") == 0.75  # no eos: not the whole answer
    with pytest.raises(ValueError, match="unknown answer reward"):
        F.answer_reward(target, target, "f1")
    with pytest.raises(ConfigError, match="reward must be"):
        GRPO(reward="f1")


def test_grpo_prefix_reward_gives_partial_credit(factory: Callable[[], tuple[Any, Any]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The same four samples as the exact-match test: with ``reward="prefix"`` the sample
    that starts right earns its share instead of 0."""
    model, tok = peft_model(factory)
    q, a = FACTS[0]
    target = tok.encode(" " + a) + [tok.eos_token_id]
    wrong = tok.encode(" blue") + [tok.eos_token_id]
    m = GRPO(group=4, reward="prefix")
    samples = torch.tensor([target + [0], wrong + [0], target[:1] + [5, 6], target + [7]])
    monkeypatch.setattr(m, "_sample", lambda *args: samples)
    ctx = StepContext(model, tok, collate([TrainExample(q, a, q)], tok), None,
                      torch.zeros(()), 0, 1, random.Random(0), 32)
    assert m.extra_loss(ctx) is not None
    assert wrong[0] != target[0]
    assert m.last_reward == pytest.approx((1 + 0 + 1 / len(target) + 1) / 4)
    assert m.options()["reward"] == "prefix"


def test_grpo_round_moves_policy_towards_rewarded_answer(
        factory: Callable[[], tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Half the sampled answers are right: the policy-gradient step makes the right one more
    likely and the wrong one less (no SFT loss involved)."""
    model, tok = peft_model(factory)
    q, a = FACTS[0]
    target = tok.encode(" " + a) + [tok.eos_token_id]
    wrong = tok.encode(" blue") + [tok.eos_token_id]
    m = GRPO(group=4)
    monkeypatch.setattr(m, "_sample", lambda *args: torch.tensor([target, wrong] * 2))

    def logp(answer: str) -> float:
        batch = collate([TrainExample(q, answer, q)], tok)
        with torch.no_grad():
            return -float(causal_lm_loss(forward(model, batch).logits, batch.labels))

    right0, wrong0 = logp(a), logp("blue")
    stats = train_round(model, tok, m, qa([(q, a)]), TrainConfig(epochs=5, batch_size=1,
                                                                 lr=1e-2, max_len=32), seed=0)
    assert stats.steps == 5 and m.last_reward == 0.5
    assert logp(a) > right0 + 0.1 and logp("blue") < wrong0 - 0.1


def test_grpo_sampling_over_the_cache_draws_what_full_recompute_draws(
        factory: Callable[[], tuple[Any, Any]]) -> None:
    """The key/value-cached sampler equals the reference loop that reruns the whole sequence
    for every token: same distribution per step, so the same draws from the same generator."""
    model, tok = peft_model(factory)
    model.eval()
    prompt = tok.encode(FACTS[0][0])
    m = GRPO(group=4, temperature=1.0)

    @torch.no_grad()
    def reference(n_new: int, gen: torch.Generator) -> torch.Tensor:
        seq = torch.tensor([prompt] * m.group)
        for _ in range(n_new):
            probs = torch.softmax(model(input_ids=seq).logits[:, -1, :].float(), -1)
            seq = torch.cat([seq, torch.multinomial(probs, 1, generator=gen)], dim=1)
        return seq[:, len(prompt):]

    got = m._sample(model, prompt, 6, torch.Generator().manual_seed(3))
    want = reference(6, torch.Generator().manual_seed(3))
    assert got.shape == (4, 6)
    assert torch.equal(got, want)
