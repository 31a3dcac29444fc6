"""MemSifter reward functions (ALGORITHMS.md §3), all pure.

The proxy writes ``<think>…</think><ranking>i,j,…</ranking>``. A completion whose format is
wrong earns 0 (:func:`format_gate`). Otherwise the ranking is cut at the tiers
K = {0} ∪ Fibonacci ∪ {N} (:func:`reward_cutoffs`); the working LLM answers from the top k of
each tier and its answer is scored by token F1 against the gold answer, giving s_k. The
outcome reward is

    R = −s₀ + Σₙ wₙ·s_{kₙ},   wₙ = 1/log2(kₙ+1) − 1/log2(kₙ₊₁+1),   w_last = 1/log2(k_last+1)

(:func:`tier_weights`, :func:`marginal_utility_reward`). The weights telescope to
1/log2(k₁+1) = 1, so R = Σₙ wₙ·(s_{kₙ} − s₀): the DCG-weighted net gain of the memories over
answering with none. The warm-up (retrieval) reward is the DCG of the gold units' positions
divided by the number of gold units (:func:`retrieval_reward`).

>>> [round(w, 4) for w in tier_weights([1, 2, 3, 5, 8, 10])]
[0.3691, 0.1309, 0.1131, 0.0714, 0.0264, 0.2891]
>>> reward_cutoffs(10)
[0, 1, 2, 3, 5, 8, 10]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from memkit.backends.sifter.parse import parse_ranking
from memkit.eval.metrics import ndcg_at_k as _ndcg
from memkit.eval.metrics import normalize_answer, token_f1
from memkit.eval.metrics import recall_at_k as _recall

__all__ = [
    "cold_start_weight",
    "curriculum_priority",
    "dcg",
    "fibonacci_cutoffs",
    "format_gate",
    "marginal_utility_reward",
    "mixed_reward",
    "ndcg_at_k",
    "normalize_answer",
    "outcome_reward",
    "recall_at_k",
    "retrieval_reward",
    "reward_cutoffs",
    "tier_weights",
    "token_f1",
]

DEFAULT_TOP_N = 10


# ----- format gate -----------------------------------------------------------------------------


def format_gate(text: str, n_candidates: int, top_n: int = DEFAULT_TOP_N) -> bool:
    """True when ``text`` is a well-formed proxy output for ``n_candidates`` units.

    Well formed: a ``</think>`` (the opening ``<think>`` may live in the prompt, as with
    thinking chat templates), then ``<ranking>…</ranking>`` holding only comma-separated
    integers, each in ``[0, n_candidates)``, with exactly ``min(top_n, n_candidates)``
    distinct ids after de-duplication.

    >>> format_gate("<think>x</think><ranking>2,0,1</ranking>", 3)
    True
    >>> format_gate("<think>x</think><ranking>2,2,1</ranking>", 3)
    False
    """
    parsed = parse_ranking(text, n_candidates)
    if not (parsed.has_think and parsed.has_ranking and parsed.closed and parsed.integers_only):
        return False
    if parsed.out_of_range:
        return False
    return len(parsed.ranked) == min(top_n, n_candidates)


# ----- cut-offs and weights --------------------------------------------------------------------


def fibonacci_cutoffs(n: int) -> list[int]:
    """The Fibonacci cut-offs 1, 2, 3, 5, 8, … up to ``n``, with ``n`` itself appended.

    >>> fibonacci_cutoffs(10), fibonacci_cutoffs(8), fibonacci_cutoffs(1), fibonacci_cutoffs(0)
    ([1, 2, 3, 5, 8, 10], [1, 2, 3, 5, 8], [1], [])
    """
    if n < 1:
        return []
    fib = [1, 2]
    while fib[-1] < n:
        fib.append(fib[-1] + fib[-2])
    out = [f for f in fib if f <= n]
    if out[-1] != n:
        out.append(n)
    return out


def reward_cutoffs(n: int) -> list[int]:
    """K = {0} ∪ :func:`fibonacci_cutoffs` (``n``): 0 is "answer with no memory" (s₀)."""
    return [0, *fibonacci_cutoffs(n)]


def _position_gain(k: int) -> float:
    return 1.0 / math.log2(k + 1)


def tier_weights(cutoffs: Sequence[int]) -> list[float]:
    """DCG-difference weights of the positive cut-offs ``k₁ < k₂ < …``.

    ``wₙ = 1/log2(kₙ+1) − 1/log2(kₙ₊₁+1)`` and ``w_last = 1/log2(k_last+1)``; they sum to
    ``1/log2(k₁+1)``.
    """
    ks = list(cutoffs)
    if any(k < 1 for k in ks) or any(b <= a for a, b in zip(ks, ks[1:], strict=False)):
        raise ValueError(f"cut-offs must be positive and strictly increasing, got {ks}")
    weights = [_position_gain(a) - _position_gain(b) for a, b in zip(ks, ks[1:], strict=False)]
    if ks:
        weights.append(_position_gain(ks[-1]))
    return weights


def marginal_utility_reward(scores: Mapping[int, float]) -> float:
    """R = −s₀ + Σₙ wₙ·s_{kₙ} over the positive cut-offs present in ``scores`` (``{k: s_k}``).

    ``scores`` must hold ``0`` (the no-memory baseline s₀).

    >>> round(marginal_utility_reward({0: 0.0, 1: 1.0, 2: 1.0}), 6)
    1.0
    >>> marginal_utility_reward({0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0})
    0.0
    """
    if 0 not in scores:
        raise ValueError("scores need the no-memory baseline s_0 (key 0)")
    ks = sorted(k for k in scores if k > 0)
    if not ks:
        return 0.0
    weights = tier_weights(ks)
    return -float(scores[0]) + sum(w * float(scores[k]) for w, k in zip(weights, ks, strict=True))


def outcome_reward(
    text: str,
    n_candidates: int,
    score_at: Callable[[list[int]], float],
    top_n: int = DEFAULT_TOP_N,
) -> tuple[float, dict[int, float]]:
    """The full answer reward of one completion: gate, parse, s_k per cut-off, R.

    ``score_at(unit_indices)`` returns the working LLM's score (token F1) when given those
    candidate units (``[]`` for s₀). Returns ``(R, {k: s_k})``; ``(0.0, {})`` when the format
    gate fails.
    """
    if not format_gate(text, n_candidates, top_n):
        return 0.0, {}
    ranking = parse_ranking(text, n_candidates, top_n=top_n).ranked
    scores = {k: float(score_at(ranking[:k])) for k in reward_cutoffs(len(ranking))}
    return marginal_utility_reward(scores), scores


# ----- ranking metrics -------------------------------------------------------------------------


def dcg(ranking: Sequence[int], gold: Iterable[int], k: int | None = None) -> float:
    """Σ over positions p (from 0) of the top ``k`` holding a gold id: 1/log2(p+2)."""
    gold_set = set(gold)
    cut = ranking if k is None else ranking[:k]
    return sum(1.0 / math.log2(p + 2) for p, u in enumerate(cut) if u in gold_set)


def retrieval_reward(text: str, n_candidates: int, gold: Sequence[int],
                     top_n: int = DEFAULT_TOP_N) -> float:
    """Warm-up reward: gated DCG of the gold units' positions / number of gold units.

    >>> round(retrieval_reward("<think></think><ranking>1,0</ranking>", 2, [0]), 4)
    0.6309
    """
    if not gold or not format_gate(text, n_candidates, top_n):
        return 0.0
    ranking = parse_ranking(text, n_candidates, top_n=top_n).ranked
    return dcg(ranking, gold) / len(set(gold))


def ndcg_at_k(ranking: Sequence[int], gold: Iterable[int], k: int) -> float:
    """Binary-relevance NDCG@k over unit ids (memkit.eval.metrics' formula); 0 when there is
    no gold.

    >>> ndcg_at_k([3, 1, 2], [1], 1), round(ndcg_at_k([3, 1, 2], [1], 3), 4)
    (0.0, 0.6309)
    """
    if k < 1:
        return 0.0
    return _ndcg([[str(u)] for u in ranking], [str(g) for g in gold], k) or 0.0


def recall_at_k(ranking: Sequence[int], gold: Iterable[int], k: int) -> float:
    """Fraction of the gold ids found in the top ``k`` (memkit.eval.metrics' formula)."""
    if k < 1:
        return 0.0
    return _recall([[str(u)] for u in ranking], [str(g) for g in gold], k) or 0.0


def curriculum_priority(ndcg10: float, anchor: float = 0.2) -> float:
    """Training priority of an example: 1 − |NDCG@10 − anchor| (hard-but-not-hopeless first).

    >>> curriculum_priority(0.2), round(curriculum_priority(1.0), 6), curriculum_priority(0.0)
    (1.0, 0.2, 0.8)
    """
    return 1.0 - abs(ndcg10 - anchor)


# ----- cold start ------------------------------------------------------------------------------


def cold_start_weight(epoch: float, start: float = 1.0, anneal_epochs: float = 1.0) -> float:
    """Weight of the retrieval reward at training time ``epoch`` (fractional epochs).

    Linear from ``start`` at epoch 0 to 0 at ``anneal_epochs``, then 0.

    >>> cold_start_weight(0.0), cold_start_weight(0.25), cold_start_weight(1.0)
    (1.0, 0.75, 0.0)
    """
    if anneal_epochs <= 0:
        return 0.0
    return start * max(0.0, 1.0 - epoch / anneal_epochs)


def mixed_reward(answer_reward: float, retrieval: float, weight: float) -> float:
    """(1 − weight)·answer + weight·retrieval."""
    return (1.0 - weight) * answer_reward + weight * retrieval


# ----- token F1: the one implementation, in memkit.eval.metrics ------------------------------
__all__ = ["normalize_answer", "token_f1"]  # re-exported for the training lab
