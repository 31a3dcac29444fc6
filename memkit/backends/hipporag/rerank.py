"""Read-time reshaping of a HippoRAG read, LLM-free: session-diverse ranking and Rocchio PRF.

* :func:`session_diverse` - a conversation's multi-hop question needs evidence turns from
  several sessions, while a walk seeded in one session ranks that session's turns first.
  The top ``k`` keep at most ``per_session`` items of any one session (in rank order);
  the items this holds back follow, in their order, after the top ``k``.
* :func:`rocchio` - pseudo-relevance feedback in dense space: the query vector plus
  ``beta`` times the mean of the first pass's top passage vectors, re-normalised. The
  expanded query carries the first hop's vocabulary (the bridge entity a second-hop passage
  shares with the first), LLM-free.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

import numpy as np

from memkit.errors import InvalidInput

T = TypeVar("T")


def session_diverse(ranked: Sequence[T], session_of: Callable[[T], Hashable | None], k: int,
                    per_session: int) -> list[T]:
    """``ranked`` reordered so that its first ``k`` items hold at most ``per_session`` of
    any one session (``session_of`` returning None: no session, never held back); the
    held-back items follow in rank order, then the rest. ``per_session`` <= 0: unchanged.

    >>> s = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "x": None, "c1": "C"}
    >>> session_diverse(["a1", "a2", "a3", "b1", "x", "c1"], s.get, 4, 1)
    ['a1', 'b1', 'x', 'c1', 'a2', 'a3']
    >>> session_diverse(["a1", "a2", "a3", "b1"], s.get, 3, 2)
    ['a1', 'a2', 'b1', 'a3']
    """
    if per_session <= 0:
        return list(ranked)
    top: list[T] = []
    held: list[T] = []
    seen: dict[Hashable, int] = {}
    rest_from = len(ranked)
    for i, item in enumerate(ranked):
        if len(top) >= k:
            rest_from = i
            break
        key = session_of(item)
        if key is not None and seen.get(key, 0) >= per_session:
            held.append(item)
            continue
        if key is not None:
            seen[key] = seen.get(key, 0) + 1
        top.append(item)
    return top + held + list(ranked[rest_from:])


def rocchio(query: np.ndarray, feedback: np.ndarray, beta: float) -> np.ndarray:
    """``query + beta * mean(feedback rows)``, scaled to unit length (the query itself when
    there is no feedback or ``beta`` is 0).

    >>> q = np.array([1.0, 0.0])
    >>> rocchio(q, np.array([[0.0, 1.0], [0.0, 1.0]]), 1.0).astype(float).round(4).tolist()
    [0.7071, 0.7071]
    >>> rocchio(q, np.array([[0.6, 0.8], [0.0, 1.0]]), 0.5).astype(float).round(4).tolist()
    [0.9312, 0.3644]
    """
    if beta < 0:
        raise InvalidInput(f"the feedback weight must be >= 0, got {beta!r}")
    q = np.asarray(query, dtype=np.float64).ravel()
    fb = np.asarray(feedback, dtype=np.float64).reshape(-1, len(q))
    if len(fb) == 0 or beta == 0:
        return np.asarray(query, dtype=np.float32)
    v = q + beta * fb.mean(axis=0)
    norm = float(np.linalg.norm(v))
    if norm == 0:
        return np.asarray(query, dtype=np.float32)
    return (v / norm).astype(np.float32)
