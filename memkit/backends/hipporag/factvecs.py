"""Fact vectors embedded when a read first needs them (``fact_vectors="read"``).

The LLM-free defaults seed the walk without the fact channel, so embedding every fact while
indexing (about as many tokens again as the passages' phrases) buys nothing for them. With
deferred fact vectors a fact row is written with an empty vector; the first read that uses
the fact channel (the LLM filter, ``use_facts``) embeds the facts the fact index lacks,
through the memory's string cache, so that the next process, re-open or rebuild finds them
there instead of embedding them again. The rows keep their empty vectors: the string cache is
where the vectors live, and the tables stay as the indexing transaction wrote them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from memkit.vectors import FaissIndex

EmbedStrings = Callable[[Sequence[str]], np.ndarray]


class DeferredFacts:
    """Fills a fact index with the vectors of the facts it lacks, once per graph generation
    (a new generation may have brought new facts)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._filled_gen: int | None = None

    def invalidate(self) -> None:
        """The fact index was reloaded or reset: check it again on the next read."""
        self._filled_gen = None

    def ensure(self, gen: int, rows: Callable[[], list[tuple[int, str]]], index: FaissIndex,
               embed: EmbedStrings) -> int:
        """Add the vectors of ``rows()`` (the facts without a stored vector: id, text) that
        ``index`` lacks; returns how many were added. Concurrent readers fill once. ``gen``
        is the generation the caller's state matches; a negative one (unknown) is checked on
        every call."""
        if gen >= 0 and gen == self._filled_gen:
            return 0
        with self._lock:
            if gen >= 0 and gen == self._filled_gen:
                return 0
            todo = [(i, t) for i, t in rows() if i not in index]
            if todo:
                vecs = embed([t for _, t in todo])
                index.add(np.array([i for i, _ in todo], dtype=np.int64), vecs)
            self._filled_gen = gen if gen >= 0 else None
            return len(todo)


__all__ = ["DeferredFacts"]
