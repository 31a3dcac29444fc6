"""Stage 1 of MemSifter: a cheap embedding prefilter over memory units.

A *unit* is what the proxy ranks: a conversation session, a passage, or one memory item. The
prefilter embeds the query and the units, keeps the best-scoring units while their tokens fit
a budget, then restores chronological order (the proxy reads history in time order).

Long units are scored by their best chunk (:func:`unit_chunks`), so a session longer than the
embedder's window is not judged by its first 256 tokens only.

>>> from memkit.embed import HashEmbedder
>>> units = [Unit("a", "the cat sat on the mat", order=2), Unit("b", "stock prices fell", order=1),
...          Unit("c", "a cat and a mat", order=0)]
>>> r = prefilter("cat on a mat", units, HashEmbedder(64), budget_tokens=12)
>>> [u.uid for u in r.units]      # the two cat units, back in chronological order
['c', 'a']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memkit.embed.base import Embedder
from memkit.fusion import approx_tokens

__all__ = ["PrefilterResult", "Unit", "prefilter", "score_units", "select_units", "unit_chunks"]


@dataclass(frozen=True)
class Unit:
    """One rankable memory unit.

    ``uid``: caller's id (session id, passage id, memory item id). ``date``: shown to the proxy
    in the ``<date>`` tag. ``order``: chronological sort key.
    """

    uid: Any
    text: str
    date: str | None = None
    order: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class PrefilterResult:
    """The kept units (chronological), their indices into the input and their scores."""

    units: list[Unit]
    indices: list[int]
    scores: list[float]
    tokens: int
    all_scores: np.ndarray  # the score of every input unit, input order

    def ranking(self) -> list[int]:
        """Input indices of the kept units, best score first (the embedding-only ranking)."""
        return [i for _, i in sorted(zip(self.scores, self.indices, strict=True),
                                     key=lambda t: (-t[0], t[1]))]


def unit_chunks(text: str, max_words: int = 160, overlap: int = 20) -> list[str]:
    """Split ``text`` into word windows of ``max_words`` (overlapping by ``overlap``).

    >>> unit_chunks("a b c d e", max_words=2, overlap=0)
    ['a b', 'c d', 'e']
    """
    words = text.split()
    if len(words) <= max_words:
        return [text]
    step = max(1, max_words - overlap)
    out: list[str] = []
    start = 0
    while True:
        out.append(" ".join(words[start:start + max_words]))
        if start + max_words >= len(words):
            return out
        start += step


def score_units(
    query: str | np.ndarray,
    units: Sequence[Unit],
    embedder: Embedder,
    *,
    unit_vectors: np.ndarray | None = None,
    max_words: int = 160,
    progress: bool = False,
) -> np.ndarray:
    """Cosine of the query with each unit (max over the unit's chunks).

    ``unit_vectors`` (n, dim) skips embedding the units (callers cache them).
    """
    q = embedder.embed_query(query) if isinstance(query, str) else np.asarray(query)
    if unit_vectors is not None:
        if len(unit_vectors) != len(units):
            raise ValueError(f"{len(unit_vectors)} vectors for {len(units)} units")
        return np.asarray(unit_vectors, dtype=np.float32) @ q.astype(np.float32)
    owners: list[int] = []
    texts: list[str] = []
    for i, u in enumerate(units):
        for chunk in unit_chunks(u.text, max_words=max_words):
            owners.append(i)
            texts.append(chunk)
    sims = embedder.embed(texts, progress=progress) @ q.astype(np.float32) if texts else \
        np.zeros(0, dtype=np.float32)
    out = np.full(len(units), -np.inf, dtype=np.float32)
    np.maximum.at(out, np.asarray(owners, dtype=np.int64), sims.astype(np.float32))
    return out


def select_units(
    scores: Sequence[float] | np.ndarray,
    token_counts: Sequence[int],
    budget_tokens: int | None,
    *,
    max_units: int | None = None,
    must_keep: Sequence[int] = (),
) -> list[int]:
    """Indices to keep: ``must_keep`` first, then best score first while the budget allows.

    A unit that does not fit is skipped and smaller ones may still fill the budget. Returns
    indices in descending score order (must-keep ones first).

    >>> select_units([0.9, 0.1, 0.5], [10, 10, 10], budget_tokens=20)
    [0, 2]
    >>> select_units([0.9, 0.1, 0.5], [10, 10, 10], budget_tokens=20, must_keep=[1])
    [1, 0]
    """
    scores = np.asarray(scores, dtype=np.float64)
    kept: list[int] = []
    used = 0
    taken: set[int] = set()
    for i in must_keep:
        if i not in taken:
            kept.append(int(i))
            taken.add(int(i))
            used += int(token_counts[i])
    for i in sorted(range(len(scores)), key=lambda j: (-scores[j], j)):
        if max_units is not None and len(kept) >= max_units:
            break
        if i in taken:
            continue
        if budget_tokens is not None and used + int(token_counts[i]) > budget_tokens:
            continue
        kept.append(i)
        taken.add(i)
        used += int(token_counts[i])
    return kept


def prefilter(
    query: str,
    units: Sequence[Unit],
    embedder: Embedder,
    budget_tokens: int | None = 8192,
    *,
    max_units: int | None = None,
    count_tokens: Callable[[str], int] = approx_tokens,
    unit_vectors: np.ndarray | None = None,
    must_keep: Sequence[int] = (),
    scores: np.ndarray | None = None,
    progress: bool = False,
) -> PrefilterResult:
    """Keep the best units for ``query`` under ``budget_tokens``, in chronological order.

    ``must_keep`` forces units in (training data keeps the gold units, as the paper does).
    ``scores`` (precomputed similarities) skips embedding entirely.
    """
    if scores is None:
        scores = score_units(query, units, embedder, unit_vectors=unit_vectors,
                             progress=progress)
    counts = [count_tokens(u.text) for u in units]
    kept = select_units(scores, counts, budget_tokens, max_units=max_units, must_keep=must_keep)
    kept.sort(key=lambda i: (units[i].order, i))
    return PrefilterResult(
        units=[units[i] for i in kept],
        indices=kept,
        scores=[float(scores[i]) for i in kept],
        tokens=sum(counts[i] for i in kept),
        all_scores=np.asarray(scores),
    )
