"""Pure functions behind the consolidation methods and the continual-learning metrics.

Every formula the methods use lives here so it can be checked on a hand-sized example.

>>> import torch
>>> ewc_penalty({"w": torch.tensor([1.0, 3.0])}, {"w": torch.tensor([0.0, 1.0])},
...             {"w": torch.tensor([2.0, 0.5])}, lam=0.1).item()  # 0.1/2*(2*1+0.5*4), float32
0.20000000298023224
>>> ema_update(torch.tensor([1.0]), torch.tensor([5.0]), a=0.25).item()  # 0.25*1 + 0.75*5
4.0
>>> replay_count(30, 0.25)  # 30 new + 10 replayed -> 10/40 = 25 % replay
10
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import TypeVar

import torch

T = TypeVar("T")


# ---------------------------------------------------------------- regularisers
def ewc_penalty(
    params: Mapping[str, torch.Tensor],
    anchors: Mapping[str, torch.Tensor],
    fisher: Mapping[str, torch.Tensor],
    lam: float,
) -> torch.Tensor:
    """Elastic weight consolidation: ``lam / 2 * sum_i F_i * (theta_i - theta*_i) ** 2``.

    Only names present in all three mappings contribute; an empty overlap gives 0.
    """
    total: torch.Tensor | None = None
    for name, theta in params.items():
        if name not in anchors or name not in fisher:
            continue
        term = (fisher[name] * (theta - anchors[name]) ** 2).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return 0.5 * lam * total


def ema_update(slow: torch.Tensor, fast: torch.Tensor, a: float) -> torch.Tensor:
    """I-LoRA slow-learner update ``slow <- a * slow + (1 - a) * fast`` (returns a new tensor)."""
    return a * slow + (1.0 - a) * fast


def tm_margin_loss(
    pred: torch.Tensor,
    frozen: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """GeRe threshold-based margin loss on last-layer activations.

    Each activation of the frozen model is labelled by the band it falls in, with bands
    ``(-inf, mean - std]``, ``(mean - std, mean + std)``, ``[mean + std, inf)`` per hidden unit.
    The trained model's activation is penalised (hinge, linearly) only for leaving that band.
    The sum is divided by the number of penalised entries, so the loss is the mean violation
    (0 when nothing leaves its band). ``mask`` (batch, length) drops padding positions.
    """
    lo = mean - std
    hi = mean + std
    neg = frozen <= lo
    pos = frozen >= hi
    neu = ~(neg | pos)
    loss = (
        neg * torch.relu(pred - lo)
        + neu * (torch.relu(pred - hi) + torch.relu(lo - pred))
        + pos * torch.relu(hi - pred)
    )
    if mask is not None:
        loss = loss * mask.unsqueeze(-1).to(device=loss.device, dtype=loss.dtype)
    violated = (loss != 0).sum()
    return loss.sum() / (violated + 1e-8)


def consistency_mse(fast_hidden: torch.Tensor, slow_hidden: torch.Tensor,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared difference of hidden states over unmasked positions (I-LoRA consistency)."""
    diff = (fast_hidden - slow_hidden) ** 2
    if mask is None:
        return diff.mean()
    m = mask.unsqueeze(-1).to(device=diff.device, dtype=diff.dtype)
    return (diff * m).sum() / (m.sum() * diff.shape[-1] + 1e-8)


# ---------------------------------------------------------------- replay
def replay_count(n_new: int, ratio: float) -> int:
    """How many replayed examples make ``ratio`` of a set that holds ``n_new`` new ones.

    ``r = k / (n + k)``  =>  ``k = round(n * r / (1 - r))``.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"replay ratio must be in [0, 1), got {ratio}")
    return int(round(n_new * ratio / (1.0 - ratio)))


def reservoir_offer(
    buffer: list[T], item: T, seen: int, capacity: int, rng: random.Random
) -> int:
    """Algorithm R: offer ``item`` as the ``seen + 1``-th element of a stream.

    Keeps ``buffer`` a uniform sample of everything offered so far (at most ``capacity``).
    Returns the new ``seen`` count. Mutates ``buffer`` in place.
    """
    seen += 1
    if len(buffer) < capacity:
        buffer.append(item)
    else:
        j = rng.randrange(seen)
        if j < capacity:
            buffer[j] = item
    return seen


# ---------------------------------------------------------------- HFT
def hft_frozen_units(units: Sequence[str], p: float, rng: random.Random) -> list[str]:
    """Choose ``round(p * len(units))`` parameter matrices to freeze this round (sorted)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"HFT freeze fraction must be in [0, 1], got {p}")
    k = int(round(p * len(units)))
    return sorted(rng.sample(list(units), k))


# ---------------------------------------------------------------- schedules
def rewarm_cosine_factor(step: int, total: int, warmup_frac: float, min_factor: float) -> float:
    """LR multiplier: linear re-warm from 0 over ``warmup_frac`` of the round, then cosine decay.

    >>> rewarm_cosine_factor(0, 100, 0.1, 0.1), rewarm_cosine_factor(10, 100, 0.1, 0.1)
    (0.1, 1.0)
    >>> round(rewarm_cosine_factor(100, 100, 0.1, 0.1), 6)
    0.1
    """
    warm = max(1, int(round(warmup_frac * total)))
    if step < warm:
        return max(min_factor, step / warm) if step > 0 else min_factor
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------- metrics
def average_accuracy(r: Sequence[Sequence[float]]) -> float:
    """Mean accuracy over all tasks after the last round: ``mean_j R[T][j]``."""
    last = r[-1]
    return float(sum(last) / len(last))


def backward_transfer(r: Sequence[Sequence[float]]) -> float:
    """``BWT = mean_{j<T} (R[T][j] - R[j][j])``; negative means forgetting (Lopez-Paz 2017)."""
    t = len(r) - 1
    if t == 0:
        return 0.0
    return float(sum(r[t][j] - r[j][j] for j in range(t)) / t)


def forward_transfer(r: Sequence[Sequence[float]], baseline: Sequence[float],
                     first: int = 1) -> float:
    """``FWT = mean_{j>=first} (R[j-1][j] - b_j)``, ``b_j`` the accuracy before any training."""
    js = range(max(1, first), len(r))
    if not js:
        return 0.0
    return float(sum(r[j - 1][j] - baseline[j] for j in js) / len(js))


def new_task_accuracy(r: Sequence[Sequence[float]], first: int = 1) -> float:
    """Plasticity: mean of the diagonal ``R[i][i]`` for rounds ``i >= first``."""
    diag = [r[i][i] for i in range(first, len(r))]
    return float(sum(diag) / len(diag)) if diag else 0.0


# ---------------------------------------------------------------- MER / gradient alignment
def reptile_interpolate(start: torch.Tensor, end: torch.Tensor, beta: float) -> torch.Tensor:
    """MER's (Reptile) meta-update ``theta <- theta_0 + beta * (theta_k - theta_0)`` after ``k``
    inner steps on batches mixing new and replayed examples. To first order it adds a term
    that maximises the dot product of the gradients of those batches (gradient alignment).

    >>> reptile_interpolate(torch.tensor([1.0]), torch.tensor([5.0]), 0.5).item()
    3.0
    """
    return start + beta * (end - start)


# ---------------------------------------------------------------- subspace-constrained LoRA
def top_singular_bases(weight: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U_k, V_k)``: the left and right singular vectors of the ``k = round(fraction *
    min(m, n))`` largest singular values of ``weight`` (m x n)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"subspace fraction must be in [0, 1], got {fraction}")
    u, _s, vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
    k = int(round(fraction * min(weight.shape)))
    return u[:, :k].contiguous(), vh[:k, :].T.contiguous()


def project_out_left(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``(I - U U^T) x``: ``x`` with its component in the span of ``U``'s columns removed."""
    return x - u @ (u.T @ x)


def project_out_right(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``x (I - V V^T)``: ``x``'s rows with their component in the span of ``V`` removed."""
    return x - (x @ v) @ v.T


def constrain_lora_update(b0: torch.Tensor, a0: torch.Tensor, b: torch.Tensor, a: torch.Tensor,
                          u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sculpting-subspaces constraint on a LoRA update since the round started.

    ``B = B0 + (I - UU^T)(B - B0)``, ``A = A0 + (A - A0)(I - VV^T)``; then the change of
    ``Delta W = B A`` satisfies ``U^T (B A - B0 A0) V = 0``: the update has no component on
    the pairs of dominant singular directions of the earlier weight.
    """
    return b0 + project_out_left(b - b0, u), a0 + project_out_right(a - a0, v)


# ---------------------------------------------------------------- spaced review
def next_review(round_index: int, interval: int, factor: float = 2.0) -> tuple[int, int]:
    """After reviewing an example at ``round_index`` with rest ``interval`` (rounds): the next
    review is due at ``round_index + interval`` and the rest grows to ``ceil(interval *
    factor)`` (expanding intervals).

    >>> next_review(3, 1), next_review(4, 2), next_review(6, 4)
    ((4, 2), (6, 4), (10, 8))
    """
    if interval < 1 or factor < 1.0:
        raise ValueError("interval must be >= 1 and factor >= 1")
    return round_index + interval, int(math.ceil(interval * factor))


# ---------------------------------------------------------------- low-rank Fisher
def lowrank_fisher_factor(grads: torch.Tensor, rank: int) -> torch.Tensor:
    """``M`` (k x P) with ``M^T M`` the best rank-``k`` approximation of the empirical Fisher
    ``F = G^T G / N`` of the per-sample gradients ``G`` (N x P): ``M = S_k V_k^T / sqrt(N)``.
    ``grads`` may also be a stack of earlier factors and new rows (they combine the same way:
    ``F_old + F_new = [M_old; M_new]^T [M_old; M_new]``) -- pass ``n=1`` then via
    :func:`lowrank_refactor`."""
    n = grads.shape[0]
    return lowrank_refactor(grads / math.sqrt(max(1, n)), rank)


def lowrank_refactor(rows: torch.Tensor, rank: int) -> torch.Tensor:
    """The rank-``k`` factor ``S_k V_k^T`` of ``rows^T rows`` (no rescaling)."""
    if rank < 1:
        raise ValueError(f"Fisher rank must be >= 1, got {rank}")
    _u, s, vh = torch.linalg.svd(rows.float(), full_matrices=False)
    k = min(rank, s.shape[0])
    return s[:k, None] * vh[:k, :]


def lowrank_ewc_penalty(delta: torch.Tensor, factor: torch.Tensor, lam: float) -> torch.Tensor:
    """``lam / 2 * delta^T M^T M delta = lam / 2 * ||M delta||^2`` (delta: the flattened
    parameter change from the anchor)."""
    return 0.5 * lam * ((factor @ delta) ** 2).sum()


# ---------------------------------------------------------------- GRPO
def answer_reward(completion: Sequence[int], target: Sequence[int], kind: str = "exact") -> float:
    """The verifiable reward of one sampled answer against the memory's answer tokens.

    ``exact``: 1 if the completion (cut after its eos) equals the target, else 0.
    ``prefix``: partial credit, the length of the common prefix over the target's length --
    1 exactly when it is an exact match, and > 0 as soon as the first answer token is right,
    so a group on a fact the policy does not know yet is not all zeros.

    >>> answer_reward([5, 6, 9], [5, 6, 7, 2], "prefix"), answer_reward([5, 6, 9], [5, 6, 7, 2])
    (0.5, 0.0)
    """
    if kind == "exact":
        return 1.0 if list(completion) == list(target) else 0.0
    if kind == "prefix":
        n = 0
        for a, b in zip(completion, target, strict=False):
            if a != b:
                break
            n += 1
        return n / len(target) if target else 0.0
    raise ValueError(f"unknown answer reward {kind!r}: use 'exact' or 'prefix'")


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantages: each reward minus its group's mean over the group's std (rows =
    groups of completions sampled for one prompt). A group with equal rewards gets zeros.

    >>> [round(x, 3) for x in group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))[0].tolist()]
    [0.866, -0.866, -0.866, 0.866]
    """
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(mean)
    return (rewards - mean) / (std + eps)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, clip: float = 0.2,
              beta: float = 0.0) -> torch.Tensor:
    """The GRPO objective (to minimise) over sampled completions (rows) and their tokens.

    Per token ``-min(rho * A, clip(rho, 1 - clip, 1 + clip) * A) + beta * KL`` with ``rho =
    exp(logp - old_logp)`` and the k3 estimator ``KL = exp(ref - logp) - (ref - logp) - 1``;
    averaged over each completion's tokens, then over completions.
    """
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    per_token = -torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
    if beta and ref_logp is not None:
        d = ref_logp - logp
        per_token = per_token + beta * (torch.exp(d) - d - 1)
    m = mask.to(per_token.dtype)
    per_row = (per_token * m).sum(-1) / m.sum(-1).clamp_min(1)
    return per_row.mean()
