"""Known answers for the formulas behind the methods and the CL metrics."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from memkit.consolidate import formulas as F


def test_ewc_penalty_hand_value() -> None:
    params = {"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([[2.0]]), "only_here": torch.ones(2)}
    anchors = {"a": torch.tensor([0.0, 1.0]), "b": torch.tensor([[-1.0]])}
    fisher = {"a": torch.tensor([2.0, 0.5]), "b": torch.tensor([[4.0]])}
    # lam/2 * (2*1^2 + 0.5*2^2 + 4*3^2) = 0.05 * (2 + 2 + 36) = 2.0
    assert F.ewc_penalty(params, anchors, fisher, lam=0.1).item() == pytest.approx(2.0)
    assert F.ewc_penalty(params, {}, {}, lam=0.1).item() == 0.0


def test_ewc_penalty_gradient_is_lam_f_delta() -> None:
    theta = torch.tensor([1.0, 3.0], requires_grad=True)
    F.ewc_penalty({"w": theta}, {"w": torch.zeros(2)}, {"w": torch.tensor([2.0, 0.5])},
                  lam=0.1).backward()
    assert theta.grad is not None
    assert theta.grad.tolist() == pytest.approx([0.1 * 2.0 * 1.0, 0.1 * 0.5 * 3.0])


def test_ema_update_value() -> None:
    slow, fast = torch.tensor([1.0, -2.0]), torch.tensor([5.0, 2.0])
    assert F.ema_update(slow, fast, a=0.25).tolist() == pytest.approx([4.0, 1.0])
    assert F.ema_update(slow, fast, a=1.0).tolist() == slow.tolist()


@given(st.integers(0, 500), st.floats(0.0, 0.9))
def test_replay_count_hits_ratio(n_new: int, ratio: float) -> None:
    k = F.replay_count(n_new, ratio)
    if n_new + k:
        # rounding to a whole example moves the share by less than one example's worth
        assert abs(k / (n_new + k) - ratio) <= 1.0 / (n_new + k) + 1e-9


def test_replay_count_rejects_bad_ratio() -> None:
    with pytest.raises(ValueError):
        F.replay_count(10, 1.0)


def test_reservoir_is_uniform() -> None:
    counts: Counter[int] = Counter()
    rng = random.Random(0)
    trials, capacity, stream = 4000, 5, 20
    for _ in range(trials):
        buf: list[int] = []
        seen = 0
        for x in range(stream):
            seen = F.reservoir_offer(buf, x, seen, capacity, rng)
        assert len(buf) == capacity and len(set(buf)) == capacity
        counts.update(buf)
    expected = trials * capacity / stream  # every element kept with probability 5/20
    for x in range(stream):
        assert abs(counts[x] - expected) < 5 * math.sqrt(expected)


def test_tm_margin_loss_hand_value() -> None:
    mean, std = torch.tensor([0.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 1.0])
    frozen = torch.tensor([[[-2.0, 0.5, 3.0]]])  # states: negative, neutral, positive
    inside = torch.tensor([[[-1.5, -0.9, 1.2]]])
    assert F.tm_margin_loss(inside, frozen, mean, std).item() == pytest.approx(0.0)
    pred = torch.tensor([[[-0.5, 1.5, 0.25]]])
    # neg: relu(-0.5 - -1) = 0.5; neu: relu(1.5 - 1) = 0.5; pos: relu(1 - 0.25) = 0.75
    # mean over the 3 violated entries = 1.75 / 3
    assert F.tm_margin_loss(pred, frozen, mean, std).item() == pytest.approx(1.75 / 3)
    mask = torch.tensor([[0]])
    assert F.tm_margin_loss(pred, frozen, mean, std, mask).item() == pytest.approx(0.0)


def test_consistency_mse_masks_padding() -> None:
    a = torch.tensor([[[1.0, 1.0], [9.0, 9.0]]])
    b = torch.zeros(1, 2, 2)
    assert F.consistency_mse(a, b, torch.tensor([[1, 0]])).item() == pytest.approx(1.0)


def test_hft_frozen_units_fraction() -> None:
    units = [f"u{i}" for i in range(14)]
    frozen = F.hft_frozen_units(units, 0.5, random.Random(3))
    assert len(frozen) == 7 and set(frozen) <= set(units)
    assert len(F.hft_frozen_units(units, 0.25, random.Random(3))) == round(0.25 * 14)
    assert F.hft_frozen_units(units, 0.5, random.Random(3)) == frozen  # seeded


def test_rewarm_schedule_shape() -> None:
    total = 50
    lrs = [F.rewarm_cosine_factor(s, total, 0.2, 0.1) for s in range(total + 1)]
    warm = 10
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[5] == pytest.approx(0.5)
    assert lrs[warm] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(lrs[1:warm], lrs[2:warm + 1], strict=True))
    assert all(a >= b for a, b in zip(lrs[warm:-1], lrs[warm + 1:], strict=True))
    assert lrs[-1] == pytest.approx(0.1)
    midpoint = warm + (total - warm) // 2  # cosine at half way: min + (1-min)/2
    assert lrs[midpoint] == pytest.approx(0.55)


def test_cl_metrics_hand_matrix() -> None:
    r = [[0.9, 0.1, 0.0],
         [0.6, 0.8, 0.2],
         [0.3, 0.7, 1.0]]
    assert F.average_accuracy(r) == pytest.approx((0.3 + 0.7 + 1.0) / 3)
    assert F.backward_transfer(r) == pytest.approx(((0.3 - 0.9) + (0.7 - 0.8)) / 2)
    fwt = ((0.1 - 0.1) + (0.2 - 0.05)) / 2
    assert F.forward_transfer(r, [0.9, 0.1, 0.05]) == pytest.approx(fwt)
    assert F.forward_transfer(r, [0.9, 0.1, 0.05], first=2) == pytest.approx(0.15)
    assert F.new_task_accuracy(r) == pytest.approx(0.9)
