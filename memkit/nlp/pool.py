"""spaCy parsing in worker processes, shared by every backend of a process.

:class:`ParsePool` parses with worker processes, each a fresh ``python -m memkit.nlp.pool``
that loads its own copy of the pipeline once and answers parse requests on its stdin/stdout.
They are plain subprocesses, not ``multiprocessing`` children: spaCy's own
``nlp.pipe(n_process=...)`` forks (unsafe from the write pipeline's threads), and
``multiprocessing``'s spawn re-runs the caller's ``__main__`` in every child, so a user's
script without an ``if __name__ == "__main__":`` guard would ingest twice. Workers send
``Doc.to_bytes()`` back and the caller rebuilds the docs on its own vocabulary, so extraction
code sees ordinary ``Doc`` objects, the same as an in-process parse gives.

:func:`parse_pool` hands out one pool per (model, disabled components, processes) in the
process, so HippoRAG's extractor and Panini's parse writer on one memory share workers
instead of starting a pool each; workers stop at interpreter exit, or at :func:`close_pools`.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from memkit.nlp.spacy_pipeline import load_spacy

#: pipeline components no memkit extractor reads (names a model lacks are ignored)
UNUSED_PIPES = ("lemmatizer", "trainable_lemmatizer", "senter", "textcat",
                "textcat_multilabel", "entity_linker", "spancat")
_HEADER = struct.Struct("<Q")


def _send(stream: IO[bytes], obj: Any) -> None:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(blob)) + blob)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("the parse worker exited")
    (size,) = _HEADER.unpack(head)
    blob = stream.read(size)
    if len(blob) < size:
        raise EOFError("the parse worker exited mid-reply")
    return pickle.loads(blob)


def docs_from_bytes(blobs: Sequence[bytes], vocab: Any) -> list[Any]:
    """Docs a worker parsed, rebuilt on ``vocab``."""
    from spacy.tokens import Doc

    return [Doc(vocab).from_bytes(b) for b in blobs]


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


def worker_count(n_process: int | None) -> int:
    """Workers for a ``processes`` setting: None = one per CPU (at most 4), else at least 1."""
    return max(1, n_process if n_process is not None else min(cpu_count(), 4))


class _Worker:
    """One parse subprocess, used by one thread at a time."""

    def __init__(self, model: str, disable: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memkit.nlp.pool", model, json.dumps(list(disable))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ,
                                                                "OMP_NUM_THREADS": "1"})

    def parse(self, bodies: list[str], batch_size: int) -> list[bytes]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        _send(self.proc.stdin, (bodies, batch_size))
        reply = _receive(self.proc.stdout)
        if isinstance(reply, str):
            raise RuntimeError(f"the parse worker failed: {reply}")
        return list(reply)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # the worker exits at end of input
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class ParsePool:
    """``n_process`` worker subprocesses parsing with ``model`` (``disable``: components
    off). Started on the first use; :meth:`close` stops them (a later call starts them
    again). A worker that dies is replaced on the next request; the request that saw it die
    raises, and callers fall back to parsing in process or record the passage as failed."""

    def __init__(self, model: str, disable: Sequence[str], n_process: int) -> None:
        if n_process < 1:
            raise ValueError(f"n_process must be >= 1, got {n_process}")
        self.model = model
        self.disable = tuple(disable)
        self.n_process = n_process
        self._threads: ThreadPoolExecutor | None = None
        self._workers: list[_Worker] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def _run(self, bodies: list[str], batch_size: int) -> list[bytes]:
        worker: _Worker | None = getattr(self._local, "worker", None)
        if worker is None or worker.proc.poll() is not None:
            worker = _Worker(self.model, self.disable)
            self._local.worker = worker
            with self._lock:
                self._workers.append(worker)
        try:
            return worker.parse(bodies, batch_size)
        except (EOFError, OSError):
            self._local.worker = None
            worker.close()
            raise

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._threads is None:  # one thread per worker process
                self._threads = ThreadPoolExecutor(self.n_process,
                                                   thread_name_prefix="memkit-parse")
            return self._threads

    def submit(self, bodies: Sequence[str], batch_size: int = 32) -> Future[list[bytes]]:
        """Start parsing ``bodies`` in one worker now; the future holds ``Doc.to_bytes()``
        per body (rebuild with :func:`docs_from_bytes`). For overlapping a parse with other
        work: the caller goes on while a worker parses."""
        return self._executor().submit(self._run, list(bodies), batch_size)

    def parse(self, bodies: Sequence[str], vocab: Any, batch_size: int = 32) -> list[Any]:
        """Parsed docs of ``bodies``, in order, rebuilt on ``vocab`` (the caller's
        pipeline's vocabulary, so its string store knows every token), spread over the
        workers."""
        bodies = list(bodies)
        if not bodies:
            return []
        step = max(1, -(-len(bodies) // (2 * self.n_process)))  # two chunks per worker
        futures = [self.submit(bodies[i:i + step], batch_size)
                   for i in range(0, len(bodies), step)]
        return [doc for f in futures for doc in docs_from_bytes(f.result(), vocab)]

    def close(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, None
            workers, self._workers = self._workers, []
        if threads is not None:
            threads.shutdown(wait=True, cancel_futures=True)
        for worker in workers:
            worker.close()
        self._local = threading.local()


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


def _serve(model: str, disable: list[str]) -> None:
    """The worker's loop: (bodies, batch_size) in, ``Doc.to_bytes()`` per body out."""
    nlp = load_spacy(model, disable=disable)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the reply stream
    while True:
        try:
            bodies, batch_size = _receive(stdin)
        except EOFError:
            return
        try:
            # without the tok2vec tensor, which no extractor reads: 3/4 of the bytes
            reply: Any = [doc.to_bytes(exclude=["tensor"])
                          for doc in nlp.pipe(bodies, batch_size=batch_size)]
        except Exception as exc:  # report it; the parent decides
            reply = f"{type(exc).__name__}: {exc}"
        _send(stdout, reply)


if __name__ == "__main__":
    _serve(sys.argv[1], json.loads(sys.argv[2]))
