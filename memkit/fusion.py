"""Fusion of several backends' rankings for one read, and budget trimming.

Two learned-free methods, each with per-channel weights (``Memory.read(..., fusion=...,
weights={...})``):

* ``"rrf"`` (default) - reciprocal rank fusion (Cormack et al. 2009):
  ``score(d) = Σ_c w_c / (C + rank_c(d))``, rank from 1, ``C`` = 60. Uses ranks only, so
  channels with incomparable scores (cosine, BM25, PPR mass) need no calibration.
* ``"minmax"`` - score fusion (CombSUM over min-max normalised scores, Fox & Shaw 1994;
  Lee 1997): each channel's returned scores are mapped to [0, 1] by
  ``(s - min) / (max - min)`` (a constant list maps to 1), then
  ``score(d) = Σ_c w_c · s'_c(d)``; a channel that did not return ``d`` adds 0. Keeps how
  *much* better a channel's first hit is than its tenth, which ranks throw away.

Ties break by item id, so fusion is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pydantic
from pydantic import Field

from memkit.errors import InvalidInput
from memkit.options import Options
from memkit.tokens import approx_tokens
from memkit.types import Scored

__all__ = ["FusionOptions", "approx_tokens", "fuse", "fusion_options", "minmax_fusion",
           "reciprocal_rank_fusion"]


class FusionOptions(Options):
    """How one read fuses several backends."""

    method: Literal["rrf", "minmax"] = Field("rrf", description="rank or score fusion")
    c: float = Field(60.0, ge=0.0, description="the RRF constant C")


def fusion_options(value: str | Mapping[str, Any] | FusionOptions | None) -> FusionOptions:
    """A method name (``"rrf"``, ``"minmax"``), a dict of :class:`FusionOptions`, or None.

    >>> fusion_options("minmax").method, fusion_options({"c": 10}).c
    ('minmax', 10.0)
    """
    if value is None:
        return FusionOptions.model_validate({})
    if isinstance(value, FusionOptions):
        return value
    raw = {"method": value} if isinstance(value, str) else value
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"fusion must be a method name or a dict, got {type(value).__name__}")
    try:
        return FusionOptions.model_validate(dict(raw))
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "fusion"
        raise InvalidInput(f"fusion option {field!r}: {err['msg']}") from None


def _check_weights(rankings: Mapping[str, Sequence[Scored]],
                   weights: Mapping[str, float] | None) -> dict[str, float]:
    weights = dict(weights or {})
    stray = [n for n in weights if n not in rankings]
    if stray:
        raise InvalidInput(f"weights for backend(s) {stray} not read here: {list(rankings)}")
    for name, w in weights.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) \
                or w < 0:
            raise InvalidInput(f"weights[{name!r}] must be a finite number >= 0, got {w!r}")
    return {n: float(weights.get(n, 1.0)) for n in rankings}


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[Scored]], k: int, c: float = 60.0,
                           weights: Mapping[str, float] | None = None) -> list[Scored]:
    """Fuse rankings: score(id) = sum over backends of weight / (c + rank), rank from 1.

    >>> a = [Scored(1, .9), Scored(2, .8)]; b = [Scored(2, .7), Scored(3, .6)]
    >>> [s.id for s in reciprocal_rank_fusion({"a": a, "b": b}, k=3)]
    [2, 1, 3]
    >>> [s.id for s in reciprocal_rank_fusion({"a": a, "b": b}, k=3, weights={"b": 3})]
    [2, 3, 1]
    """
    w = _check_weights(rankings, weights)
    fused: dict[int, Scored] = {}
    for name, ranking in rankings.items():
        for rank, s in enumerate(ranking, start=1):
            entry = fused.setdefault(s.id, Scored(s.id, 0.0, {}))
            entry.score += w[name] / (c + rank)
            entry.evidence[name] = {"rank": rank, "score": s.score, **s.evidence}
    return sorted(fused.values(), key=lambda s: (-s.score, s.id))[:k]


def minmax_fusion(rankings: Mapping[str, Sequence[Scored]], k: int,
                  weights: Mapping[str, float] | None = None) -> list[Scored]:
    """CombSUM over min-max normalised scores (see the module docstring).

    >>> a = [Scored(1, 0.9), Scored(2, 0.5), Scored(3, 0.1)]   # -> 1.0, 0.5, 0.0
    >>> b = [Scored(3, 12.0), Scored(1, 2.0)]                  # -> 1.0, 0.0
    >>> [(s.id, round(s.score, 3)) for s in minmax_fusion({"a": a, "b": b}, k=3)]
    [(1, 1.0), (3, 1.0), (2, 0.5)]
    """
    w = _check_weights(rankings, weights)
    fused: dict[int, Scored] = {}
    for name, ranking in rankings.items():
        if not ranking:
            continue
        lo = min(s.score for s in ranking)
        hi = max(s.score for s in ranking)
        for rank, s in enumerate(ranking, start=1):
            norm = 1.0 if hi - lo < 1e-12 else (s.score - lo) / (hi - lo)
            entry = fused.setdefault(s.id, Scored(s.id, 0.0, {}))
            entry.score += w[name] * norm
            entry.evidence[name] = {"rank": rank, "score": s.score, "norm": norm, **s.evidence}
    return sorted(fused.values(), key=lambda s: (-s.score, s.id))[:k]


def fuse(rankings: Mapping[str, Sequence[Scored]], k: int,
         fusion: str | Mapping[str, Any] | FusionOptions | None = None,
         weights: Mapping[str, float] | None = None) -> list[Scored]:
    """Fuse several rankings by ``fusion`` (see :func:`fusion_options`) with ``weights``."""
    o = fusion_options(fusion)
    if o.method == "minmax":
        return minmax_fusion(rankings, k, weights)
    return reciprocal_rank_fusion(rankings, k, c=o.c, weights=weights)
