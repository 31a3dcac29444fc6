"""``Memory.write_many`` as a pipeline: admit -> embed -> commit -> index, in batches.

Three threads work at once on different batches::

    caller thread:  admit group g+2, skip what is already in  -> commit group g batch by
                                                                 batch (record + passage
                                                                 vectors, one txn each)
    embed thread:   embed the new passages of group g+1
    index thread:   catch every backend up with what is committed (extraction, phrase and
                    fact embedding, graph writes) - group g-1 while g+1 is being embedded

so extraction (spaCy, an LLM) and passage embedding overlap instead of running as two passes.
Before a group is embedded, every backend gets a hint with its items
(:meth:`~memkit.backends.base.Backend.expect`): HippoRAG's and Panini's spaCy parses of the
group start then, in a worker process, beside the group's embedding.
A *group* is consecutive commit batches of at least ``EMBED_WINDOW`` records (fewer only at
the end); its new passages are embedded in one call, so the embedder sorts a few thousand
texts by length instead of one batch's 64 (MuSiQue-200's passages, sorted in windows of 64
texts, run with 55 % padding tokens on top of their own; in windows of 2,048, with 4 %), while
the commit (and so what a kill can lose) stays one ``batch_size`` batch. At most ``depth``
embedded groups wait for their commit (bounded memory). With ``index="async"`` the memory's
own background indexer is the index stage. Guarantees are those of the stage functions
(:mod:`memkit.ingest.stages`): the record is the commit point, a batch's items and vectors
commit together, and a rerun after a kill skips (and does not even re-embed) what is already
in; the change feed brings every index up to date on the next open.
One progress bar per stage (items/s).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from memkit.ingest.stages import (
    Batch,
    admit_batch,
    commit_batch,
    drop_unembeddable,
    embed_texts,
    fresh,
)
from memkit.types import WriteReport

#: records per embedding group (see the module docstring)
EMBED_WINDOW = 2048

if TYPE_CHECKING:
    from memkit.memory import Memory


def _batches(records: Iterable[Any], batch_size: int) -> Iterator[list[tuple[int, Any]]]:
    chunk: list[tuple[int, Any]] = []
    for n, record in enumerate(records):
        chunk.append((n, record))
        if len(chunk) >= batch_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Bars:
    """One progress bar per stage."""

    def __init__(self, show: bool, total: int | None, desc: str) -> None:
        kw: dict[str, Any] = {"disable": not show, "unit": "item", "dynamic_ncols": True}
        self.read = tqdm(total=total, desc=desc, position=0, **kw)
        self.embed = tqdm(total=total, desc="  embedding", position=1, **kw)
        self.index = tqdm(total=total, desc="  indexing", position=2, **kw)

    def close(self) -> None:
        for bar in (self.read, self.embed, self.index):
            bar.close()


def write_many(mem: Memory, records: Iterable[Any], *, scope: Any, batch_size: int,
               show: bool, total: int | None, desc: str, depth: int = 2,
               embed_window: int | None = None) -> WriteReport:
    """Run the pipeline over ``records`` into ``mem`` (see the module docstring);
    ``embed_window``: records per embedding group (default :data:`EMBED_WINDOW`)."""
    window = EMBED_WINDOW if embed_window is None else embed_window
    report = WriteReport()
    bars = _Bars(show, total, desc)
    sync = mem.indexer.mode == "sync"
    embed_pool = ThreadPoolExecutor(1, thread_name_prefix="memkit-embed")
    index_pool = ThreadPoolExecutor(1, thread_name_prefix="memkit-index") if sync else None
    waiting: deque[tuple[list[Batch], Future[list[np.ndarray | str]]]] = deque()
    group: list[Batch] = []
    index_jobs: list[Future[None]] = []
    committed = 0

    def index_job(upto: int) -> None:
        with mem._op():
            mem.indexer.catch_up()
        bars.index.update(max(0, upto - bars.index.n))

    def submit_group() -> None:
        todo = [it for batch in group for it in batch.todo]
        texts = [it.text for it in todo]
        mem.indexer.expect(todo)  # e.g. parsing starts now, beside this group's embedding
        waiting.append((list(group), embed_pool.submit(
            embed_texts, mem.embedder, texts, batch_size)))
        group.clear()

    def commit(batch: Batch, got: list[np.ndarray | str]) -> None:
        nonlocal committed
        vecs, unembeddable = drop_unembeddable(batch, got)
        report.rejected.extend(unembeddable)
        bars.embed.update(len(batch.items) + len(batch.rejected) + len(unembeddable))
        with mem._op():
            with mem._record_lock:
                out = commit_batch(mem.store, mem.vectors, batch.items, batch.todo, vecs)
        for iid, created in out:
            if created:
                report.added.append(iid)
            else:
                report.skipped_duplicates += 1
        committed += len(batch.items) + len(batch.rejected) + len(unembeddable)
        if index_pool is None:
            mem.indexer.changed()  # wakes the memory's background indexer
            bars.index.update(len(batch.items) + len(batch.rejected))
            return
        # one queued catch-up covers every commit before it starts: never queue two
        index_jobs[:] = [j for j in index_jobs if not j.done() or _raise(j)]
        if len(index_jobs) < 2:
            index_jobs.append(index_pool.submit(index_job, committed))

    def commit_next() -> None:
        batches, future = waiting.popleft()
        got, start = future.result(), 0
        for batch in batches:  # rows of ``got`` follow the batches' todo lists
            end = start + len(batch.todo)  # before commit() drops what failed from todo
            commit(batch, got[start:end])
            start = end

    try:
        for number, chunk in enumerate(_batches(records, batch_size)):
            batch = admit_batch(number, chunk, default_scope=scope,
                                max_chars=mem.config.max_item_chars)
            report.rejected.extend(batch.rejected)
            bars.read.update(len(chunk))
            batch.todo = fresh(mem.store, batch.items)
            group.append(batch)
            if sum(len(b.items) + len(b.rejected) for b in group) >= window:
                submit_group()
            while len(waiting) > depth:
                commit_next()
        if group:
            submit_group()
        while waiting:
            commit_next()
        for job in index_jobs:
            job.result()
        if sync:
            mem.indexer.changed()  # whatever the last queued catch-up did not see
            bars.index.update(max(0, committed - bars.index.n))
    finally:
        embed_pool.shutdown(wait=True, cancel_futures=True)
        if index_pool is not None:
            index_pool.shutdown(wait=True, cancel_futures=True)
        bars.close()
    return report


def _raise(job: Future[None]) -> bool:
    """A finished index job: re-raise what it raised (catch-up logs indexing errors and keeps
    them in ``Memory.stats()``; anything else is a bug worth surfacing)."""
    job.result()
    return False
