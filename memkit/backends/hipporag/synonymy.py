"""Incremental synonymy edges: only new phrases are searched against the phrase index.

HippoRAG 2 links phrases whose embedding cosine is at least 0.8 (at most 100 neighbours per
phrase), skipping phrases with two or fewer letters/digits. The reference recomputes the
all-pairs KNN on every insert; here a batch of new phrases is added to the faiss index of all
phrases and only the new ones are queried, so the cost of an insert is proportional to the
number of new phrases (edges are symmetric, so an old phrase's new neighbours are found from
the new side).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memkit.nlp import alnum_count
from memkit.vectors import FaissIndex


def synonym_edges(index: FaissIndex, new_ids: np.ndarray, new_vecs: np.ndarray,
                  new_texts: Sequence[str], is_short: dict[int, bool] | None = None, *,
                  threshold: float = 0.8, max_neighbors: int = 100, min_alnum: int = 3
                  ) -> list[tuple[int, int, float]]:
    """Edges ``(a, b, sim)`` with ``a < b`` from each new phrase to any phrase in ``index``
    (which must already contain the new ones). ``is_short`` tells, for old phrase ids, which
    have fewer than ``min_alnum`` letters/digits (they get no synonymy edges); unknown ids are
    treated as long enough."""
    short = dict(is_short or {})
    for pid, text in zip(new_ids.tolist(), new_texts, strict=True):
        short[pid] = alnum_count(text) < min_alnum
    edges: dict[tuple[int, int], float] = {}
    todo = [i for i, pid in enumerate(new_ids.tolist()) if not short[pid]]
    k = min(max_neighbors + 1, max(index.ntotal, 1))
    for start in range(0, len(todo), 1024):  # batched search over the whole phrase index
        rows = todo[start:start + 1024]
        q = np.ascontiguousarray(new_vecs[rows], dtype=np.float32)
        sims_b, ids_b = index.index.search(q, k + len(index.dead))
        for row, ids, sims in zip(rows, ids_b, sims_b, strict=True):
            _link(int(new_ids[row]), ids, sims, index, short, threshold, max_neighbors, edges)
    return [(a, b, s) for (a, b), s in sorted(edges.items())]


def _link(pid: int, ids: np.ndarray, sims: np.ndarray, index: FaissIndex,
          short: dict[int, bool], threshold: float, max_neighbors: int,
          edges: dict[tuple[int, int], float]) -> None:
    """Keep the neighbours of one new phrase that pass the threshold."""
    kept = 0
    for other, sim in zip(ids.tolist(), sims.tolist(), strict=True):
        if other < 0 or other == pid or sim < threshold or short.get(other, False) \
                or (index.dead and other in index.dead):
            continue
        key = (min(pid, other), max(pid, other))
        edges[key] = max(edges.get(key, 0.0), float(sim))
        kept += 1
        if kept >= max_neighbors:
            break
