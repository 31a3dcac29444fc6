"""Rank fusion and budget trimming for reads over several backends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from memkit.tokens import approx_tokens
from memkit.types import Scored

__all__ = ["approx_tokens", "reciprocal_rank_fusion"]


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[Scored]], k: int, c: float = 60.0,
                           weights: dict[str, float] | None = None) -> list[Scored]:
    """Fuse rankings: score(id) = sum over backends of weight / (c + rank), rank from 1.

    >>> a = [Scored(1, .9), Scored(2, .8)]; b = [Scored(2, .7), Scored(3, .6)]
    >>> [s.id for s in reciprocal_rank_fusion({"a": a, "b": b}, k=3)]
    [2, 1, 3]
    """
    weights = weights or {}
    fused: dict[int, Scored] = {}
    for name, ranking in rankings.items():
        w = weights.get(name, 1.0)
        for rank, s in enumerate(ranking, start=1):
            entry = fused.setdefault(s.id, Scored(s.id, 0.0, {}))
            entry.score += w / (c + rank)
            entry.evidence[name] = {"rank": rank, "score": s.score, **s.evidence}
    return sorted(fused.values(), key=lambda s: (-s.score, s.id))[:k]
