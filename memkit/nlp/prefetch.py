"""Parsing ahead: start the spaCy parses of texts a later call will ask for, in the shared
worker processes (:mod:`memkit.nlp.pool`), and hand the docs out when that call comes
(:meth:`ParsePrefetcher.parse` parses whatever was not asked for ahead).

``Memory.write_many`` knows a group's passages before it embeds them; the extractors are
asked for them only after the commit, by the index stage. :class:`ParsePrefetcher` lets the
parse run in a worker from the moment the passages are known, so on two cores the parse of
group g runs beside the embedding of group g instead of after it. A parse asked for and never
taken is dropped once more than ``limit`` bodies wait (oldest first), so a hint that turns out
wrong (a batch that fails to commit) costs a parse, not memory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from memkit.nlp.pool import docs_from_bytes, parse_pool

#: a write hint of fewer texts starts no parse ahead: they are parsed in process when
#: indexed, as a single write is (a worker's start, loading the pipeline, takes seconds)
AHEAD_MIN = 32


class ParsePrefetcher:
    """Parses started ahead for one (model, disabled components, processes) setting.

    :meth:`ahead` submits bodies not already waiting, ``piece`` bodies per worker task (so a
    reader of the first bodies waits for one piece, not for the whole group);
    :meth:`take` hands out the docs of the bodies that were asked for ahead (None for the
    others, which the caller parses itself). Thread-safe."""

    def __init__(self, model: str, disable: Sequence[str], n_process: int, *,
                 piece: int = 256, limit: int = 8192) -> None:
        self.model = model
        self.disable = tuple(disable)
        self.n_process = n_process
        self.piece = max(1, piece)
        self.limit = max(1, limit)
        self._waiting: dict[str, tuple[Future[list[bytes]], int]] = {}
        self._lock = threading.Lock()

    def ahead(self, bodies: Sequence[str], batch_size: int) -> int:
        """Start parsing the bodies that are not waiting yet; returns how many were new."""
        with self._lock:
            new = list(dict.fromkeys(b for b in bodies if b not in self._waiting))
            if not new:
                return 0
            pool = parse_pool(self.model, self.disable, self.n_process)
            for start in range(0, len(new), self.piece):
                part = new[start:start + self.piece]
                future = pool.submit(part, batch_size)
                for n, body in enumerate(part):
                    self._waiting[body] = (future, n)
            for body in list(self._waiting)[:max(0, len(self._waiting) - self.limit)]:
                del self._waiting[body]  # the oldest hints: never taken
            return len(new)

    def take(self, bodies: Sequence[str], vocab: Any) -> list[Any | None]:
        """The parsed doc of each body asked for ahead (built on ``vocab``), None for the
        rest - and for bodies whose worker failed. Taken bodies stop waiting."""
        with self._lock:
            found = {b: self._waiting[b] for b in bodies if b in self._waiting}
            for body in found:
                del self._waiting[body]
        blobs: dict[str, bytes] = {}
        for body, (future, n) in found.items():
            try:
                blobs[body] = future.result()[n]
            except Exception:  # a worker died: the caller parses these itself
                continue
        if not blobs:
            return [None] * len(bodies)
        order = list(blobs)
        docs = dict(zip(order, docs_from_bytes([blobs[b] for b in order], vocab),
                        strict=True))
        return [docs.get(b) for b in bodies]

    def parse(self, bodies: Sequence[str], nlp: Any, batch_size: int, parallel_min: int
              ) -> list[Any]:
        """The docs of ``bodies``, in order: those asked for ahead taken (:meth:`take`), the
        rest parsed now - spread over the worker processes when there are several and at
        least ``parallel_min`` bodies are left, else in this process with ``nlp`` (whose
        vocabulary every doc is built on)."""
        docs = self.take(bodies, nlp.vocab)
        missing = [n for n, doc in enumerate(docs) if doc is None]
        if missing:
            rest = [bodies[n] for n in missing]
            if self.n_process > 1 and len(rest) >= parallel_min:
                pool = parse_pool(self.model, self.disable, self.n_process)
                parsed = pool.parse(rest, nlp.vocab, batch_size)
            else:
                parsed = list(nlp.pipe(rest, batch_size=batch_size))
            for n, doc in zip(missing, parsed, strict=True):
                docs[n] = doc
        return docs

    def waiting(self) -> int:
        """Bodies asked for ahead and not taken yet."""
        with self._lock:
            return len(self._waiting)

    def clear(self) -> None:
        """Forget every waiting parse (running worker tasks finish; their docs are dropped)."""
        with self._lock:
            self._waiting.clear()
