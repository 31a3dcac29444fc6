"""BM25 over the graph's passages: a lexical seed source for the walk (``[lexical]`` extra).

The backend keeps no lexical state on disk: the tokens of the graph's passages are read from
the record on the first read that asks for lexical seeds, and brought up to date by
difference whenever the graph's generation moves (only new passages are tokenised). Scoped
reads are scored over the scope's passages only (see :class:`memkit.lexical.BM25Index`).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from memkit.backends.base import AllowedIds
from memkit.lexical import BM25Index
from memkit.store.sqlite import Store


class PassageLexicon:
    """A :class:`~memkit.lexical.BM25Index` that follows the graph's passage set."""

    def __init__(self) -> None:
        self.index: BM25Index | None = None
        self.generation: Any = None
        self._lock = threading.Lock()

    def sync(self, store: Store, generation: Any, passage_ids: np.ndarray) -> BM25Index:
        """The index over exactly ``passage_ids`` (the graph of ``generation``)."""
        with self._lock:
            if self.index is None:
                self.index = BM25Index()
            ix = self.index
            if generation != self.generation:
                want = {int(i) for i in passage_ids}
                have = set(ix.docs)
                ix.remove(have - want)
                new = sorted(want - have)
                for start in range(0, len(new), 512):
                    chunk = new[start:start + 512]
                    items = store.get_many(chunk)
                    got = [i for i in chunk if i in items]
                    ix.add(got, ix.tokenize([items[i].text for i in got]))
                self.generation = generation
            return ix

    def top(self, store: Store, generation: Any, passage_ids: np.ndarray, query: str,
            k: int, allowed: AllowedIds) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of the ``k`` best allowed passages by BM25, best first."""
        hits = self.sync(store, generation, passage_ids).top(query, k, allowed)
        return (np.array([i for i, _ in hits], dtype=np.int64),
                np.array([s for _, s in hits], dtype=np.float64))
