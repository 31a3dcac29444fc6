"""The indexer: keeps every derived index in step with the record's change feed.

The record's audit table is the change feed (``seq``, ``op``, ``item_id``). Each backend has,
in this process, a *position* - the last change its in-memory state reflects - and, shared by
every process, a persisted watermark. Catching a backend up replays the changes after its
position: ``prepare`` (embedding, extraction; slow) runs under the backend's *index lock*
only, and ``add``/``remove`` (fast) under its *write lock*, which is what readers of that
backend share. So:

* a write commits the record under a short lock and returns once its changes are indexed
  (``mode="sync"``, the default) - or at once, with a background thread indexing
  (``mode="async"``, for bulk ingest; ``wait()`` blocks until it is done);
* a read of backend A never waits for backend B's indexing, and waits for A's only when A
  lags the record (strong consistency, the default) - an ``eventual`` read does not wait;
* a crash anywhere leaves positions behind the record, and the next catch-up (on open, on a
  read, on a write) replays the missing changes: every ``add``/``remove`` is idempotent.

The item-vector store is caught up the same way (a stage named ``item_vectors`` that drops
the vectors of deleted items), so a deleted item's vector does not outlive it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from memkit._locks import RWLock
from memkit.backends.base import AllowedIds, Backend, BackendContext, Retrieval
from memkit.store.sqlite import EVENT_OPS, Store
from memkit.types import MemoryItem

log = logging.getLogger("memkit.indexer")

REMOVING_OPS = frozenset({"delete", "expire"})
VECTORS_STAGE = "item_vectors"


class _VectorStage(Backend):
    """The shared item vectors as an indexer stage: only removals need applying (vectors are
    added on demand by the backends that use them)."""

    name = VECTORS_STAGE

    def add(self, items: Sequence[MemoryItem], prepared: Any = None) -> None:
        return None

    def remove(self, ids: Sequence[int]) -> None:
        self.ctx.vectors.remove(ids)

    def retrieve(self, query: str, k: int, *, allowed: AllowedIds,
                 options: Any = None) -> Retrieval:
        raise NotImplementedError("the item-vector stage is not a read backend")

    def reset(self) -> None:
        self.ctx.vectors.clear()
        super().reset()


@dataclass
class _Slot:
    backend: Backend
    position: int
    index_lock: threading.RLock = field(default_factory=threading.RLock)
    rw: RWLock = field(default_factory=RWLock)
    error: str | None = None


class Indexer:
    """Per-backend positions, locks and catch-up over one store (thread-safe)."""

    def __init__(self, store: Store, ctx: BackendContext, backends: dict[str, Backend], *,
                 mode: str = "sync", batch_size: int = 256, progress: bool = False) -> None:
        if mode not in ("sync", "async"):
            raise ValueError(f"indexing mode must be 'sync' or 'async', got {mode!r}")
        self.store = store
        self.mode = mode
        self.batch_size = batch_size
        self.progress = progress
        self._slots: dict[str, _Slot] = {}
        stages: dict[str, Backend] = {VECTORS_STAGE: _VectorStage(ctx), **backends}
        for name, backend in stages.items():
            opened = backend.open()
            position = store.watermark(name) if opened is None else opened
            self._slots[name] = _Slot(backend, position)
        self._wake = threading.Condition()
        self._pending = False
        self._stop = False
        self._worker: threading.Thread | None = None
        if mode == "async":
            self._worker = threading.Thread(target=self._run, name="memkit-indexer",
                                            daemon=True)
            self._worker.start()

    # ---- positions ----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [n for n in self._slots if n != VECTORS_STAGE]

    def position(self, name: str) -> int:
        return self._slots[name].position

    def lag(self) -> dict[str, int]:
        """Changes each backend still has to apply in this process."""
        last = self.store.last_seq()
        return {name: max(0, last - slot.position) for name, slot in self._slots.items()}

    def errors(self) -> dict[str, str]:
        """The last indexing error of each backend that has one (retried on each catch-up)."""
        return {n: s.error for n, s in self._slots.items() if s.error is not None}

    # ---- catching up --------------------------------------------------------------------
    def catch_up(self, names: Sequence[str] | None = None, *, raise_errors: bool = False
                 ) -> dict[str, int]:
        """Apply the record's new changes to these backends (default: all, the item-vector
        stage first); returns the number of changes applied to each. A backend whose
        indexing fails keeps its position (the changes are retried next time); the error is
        logged and kept in :meth:`errors` - or raised, with ``raise_errors``."""
        order = list(self._slots) if names is None else [VECTORS_STAGE, *names]
        applied: dict[str, int] = {}
        try:
            for name in dict.fromkeys(order):
                try:
                    applied[name] = self._catch_up(name)
                except Exception as exc:
                    self._slots[name].error = f"{type(exc).__name__}: {exc}"
                    log.exception("indexing %s failed; it will be retried", name)
                    if raise_errors:
                        raise
        finally:
            self._persist_watermarks([n for n, c in applied.items() if c])
        return applied

    def _persist_watermarks(self, names: list[str]) -> None:
        """The shared watermarks of these backends, in one transaction (one fsync with
        ``durability="full"``); a watermark only ever moves forward."""
        if not names:
            return
        with self.store.transaction():
            ahead = {n: self._slots[n].position for n in names
                     if self._slots[n].position > self.store.watermark(n)}
            self.store.set_watermarks(ahead)

    def _catch_up(self, name: str) -> int:
        slot = self._slots[name]
        with slot.index_lock:
            changes = self.store.changes_since(slot.position)
            if not changes:
                return 0
            # event rows (e.g. "adapter_stale") note something about an item, change nothing
            touched = list(dict.fromkeys(c.item_id for c in changes if c.op not in EVENT_OPS))
            removed = {c.item_id for c in changes if c.op in REMOVING_OPS}
            backend = slot.backend
            bar = tqdm(total=len(touched), desc=f"indexing ({name})", unit="item",
                       disable=not self.progress or len(touched) < self.batch_size)
            for start in range(0, len(touched), self.batch_size):
                chunk = touched[start:start + self.batch_size]
                present = self.store.get_many([i for i in chunk if i not in removed])
                gone = [i for i in chunk if i not in present]
                items = [present[i] for i in chunk if i in present]
                prepared = backend.prepare(items) if items else None  # no reader waits here
                with slot.rw.write():
                    if gone:
                        backend.remove(gone)
                    if items:
                        backend.add(items, prepared)
                bar.update(len(chunk))
            bar.close()
            slot.position = changes[-1].seq
            slot.error = None
            return len(changes)

    def ensure(self, name: str, target: int) -> None:
        """Strong consistency for a read: make sure ``name`` reflects change ``target``."""
        if self._slots[name].position < target:
            self.catch_up([name])

    @contextmanager
    def reading(self, name: str) -> Iterator[Backend]:
        """Hold ``name``'s read lock (shared with other reads, excluded by its indexing)."""
        slot = self._slots[name]
        with slot.rw.read():
            yield slot.backend

    def expect(self, items: Sequence[Any]) -> None:
        """Tell every backend which items are about to be written (:meth:`Backend.expect`);
        a hint, so a backend that fails on it is logged and the write goes on."""
        for name in self.names:
            try:
                self._slots[name].backend.expect(items)
            except Exception:
                log.warning("backend %s failed on a write hint; ignored", name, exc_info=True)

    # ---- writes in the background -------------------------------------------------------
    def changed(self) -> None:
        """The record changed: index now (sync) or wake the background indexer (async)."""
        if self.mode == "sync":
            self.catch_up()
            return
        with self._wake:
            self._pending = True
            self._wake.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every backend reflects the record as it is now; False on timeout."""
        if self.mode == "sync":
            self.catch_up()
            return True
        target = self.store.last_seq()

        def caught_up() -> bool:
            return all(s.position >= target or s.error is not None
                       for s in self._slots.values())

        with self._wake:
            self._pending = True
            self._wake.notify_all()
            ok = self._wake.wait_for(caught_up, timeout=timeout)
        return bool(ok)

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending or self._stop)
                if self._stop and not self._pending:
                    return
                self._pending = False
            self.catch_up()
            with self._wake:
                self._wake.notify_all()

    # ---- files and lifecycle ------------------------------------------------------------
    def flush(self) -> None:
        """Persist each backend's files, labelled with the position they reflect."""
        for slot in self._slots.values():
            with slot.index_lock:
                slot.backend.flush(slot.position)

    def rebuild(self, names: Sequence[str]) -> dict[str, int]:
        """Drop these backends' derived state and rebuild it from the record."""
        for name in names:
            slot = self._slots[name]
            with slot.index_lock, slot.rw.write():
                slot.backend.reset()
                slot.position = 0
        return self.catch_up(names, raise_errors=True)

    def close(self) -> None:
        """Stop the background indexer, catch up, save files and close every backend. A
        process never saves an index older than the record it saw (no stale file is
        labelled current)."""
        if self._worker is not None:
            with self._wake:
                self._stop = True
                self._wake.notify_all()
            self._worker.join()
            self._worker = None
        self.catch_up()
        self.flush()
        for slot in self._slots.values():
            slot.backend.close()

    def backend(self, name: str) -> Backend:
        return self._slots[name].backend

    def replace(self, name: str, backend: Backend) -> None:
        """Put a wrapper around backend ``name`` (instrumentation, e.g. tracing spans); it
        must delegate to the backend it wraps. Positions and locks are kept."""
        slot = self._slots[name]
        with slot.index_lock, slot.rw.write():
            slot.backend = backend
