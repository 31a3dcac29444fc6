"""spaCy parsing in worker processes, shared by every backend of a process.

:class:`ParsePool` parses with a pool of *spawned* worker processes (each loads its own copy
of the pipeline once): spawned, not forked, so calling it from any thread of a
multi-threaded process (the write pipeline's index thread) is safe, which spaCy's own
``nlp.pipe(n_process=...)`` (it forks) is not. Workers send ``Doc.to_bytes()`` back and the
caller rebuilds the docs on its own vocabulary, so extraction code sees ordinary ``Doc``
objects, the same as an in-process parse gives.

:func:`parse_pool` hands out one pool per (model, disabled components, processes) in the
process, so HippoRAG's extractor and Panini's parse writer on one memory share workers
instead of starting a pool each; pools stop at interpreter exit, or at :func:`close_pools`.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from memkit.nlp.spacy_pipeline import load_spacy

#: pipeline components no memkit extractor reads (names a model lacks are ignored)
UNUSED_PIPES = ("lemmatizer", "trainable_lemmatizer", "senter", "textcat",
                "textcat_multilabel", "entity_linker", "spancat")

_WORKER_NLP: Any = None


def _init_worker(model: str, disable: list[str]) -> None:
    global _WORKER_NLP
    _WORKER_NLP = load_spacy(model, disable=disable)


def _parse_in_worker(bodies: list[str], batch_size: int) -> list[bytes]:
    return [doc.to_bytes() for doc in _WORKER_NLP.pipe(bodies, batch_size=batch_size)]


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


def worker_count(n_process: int | None) -> int:
    """Workers for a ``processes`` setting: None = one per CPU (at most 4), else at least 1."""
    return max(1, n_process if n_process is not None else min(cpu_count(), 4))


class ParsePool:
    """``n_process`` spawned workers parsing with ``model`` (``disable``: components off).

    Started on the first :meth:`parse`; :meth:`close` stops the workers (a later call starts
    them again)."""

    def __init__(self, model: str, disable: Sequence[str], n_process: int) -> None:
        if n_process < 1:
            raise ValueError(f"n_process must be >= 1, got {n_process}")
        self.model = model
        self.disable = tuple(disable)
        self.n_process = n_process
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def parse(self, bodies: Sequence[str], vocab: Any, batch_size: int = 32) -> list[Any]:
        """Parsed docs of ``bodies``, in order, rebuilt on ``vocab`` (the caller's
        pipeline's vocabulary, so its string store knows every token)."""
        from spacy.tokens import Doc

        bodies = list(bodies)
        if not bodies:
            return []
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.n_process, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker, initargs=(self.model, list(self.disable)))
            pool = self._pool
        step = max(1, -(-len(bodies) // (2 * self.n_process)))  # two chunks per worker
        chunks = [bodies[i:i + step] for i in range(0, len(bodies), step)]
        return [Doc(vocab).from_bytes(b)
                for part in pool.map(_parse_in_worker, chunks, [batch_size] * len(chunks))
                for b in part]

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_POOLS: dict[tuple[str, tuple[str, ...], int], ParsePool] = {}
_POOLS_LOCK = threading.Lock()


def parse_pool(model: str, disable: Sequence[str], n_process: int) -> ParsePool:
    """The process's shared pool for these settings (created on first use)."""
    key = (model, tuple(sorted(disable)), n_process)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = ParsePool(model, disable, n_process)
        return pool


def close_pools() -> None:
    """Stop every shared pool's workers (they start again when needed)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
    for pool in pools:
        pool.close()


atexit.register(close_pools)
