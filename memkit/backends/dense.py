"""Dense retrieval: item embeddings in a faiss index; the baseline every backend must beat.

Vectors come from the shared item-vector store (``ctx.vectors``), so the faiss file is only a
cache: it is saved labelled with the change-feed position it reflects, and on open it is
loaded and the changes after that position replayed (no re-embedding). A missing or corrupt
file is rebuilt from the stored vectors. Changing the embedder re-embeds everything.

Options (``backend_options={"dense": {...}}``): see :class:`DenseOptions`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from memkit.backends.base import AllowedIds, Backend, BackendContext, Retrieval
from memkit.errors import ConfigError, StoreCorrupt
from memkit.options import Options
from memkit.types import MemoryItem, Scored
from memkit.vectors import FaissIndex
from memkit.vectors.pgvector_index import PgVectorIndex


class DenseOptions(Options):
    """Settings of the dense backend."""

    index: Literal["faiss", "pgvector"] = Field(
        "faiss", description="faiss (in each process) or pgvector (in the Postgres record)")
    hnsw_threshold: int = Field(50_000, ge=1,
                                description="vectors above which HNSW replaces the exact index")
    hnsw_m: int = Field(32, ge=2, le=256, description="HNSW graph degree")
    pgvector_m: int = Field(16, ge=2, le=100, description="pgvector HNSW graph degree "
                            "(pgvector's default: each insert costs about m distance steps)")
    ef_construction: int = Field(64, ge=4, le=1000,
                                 description="pgvector HNSW build breadth")
    ef_search: int = Field(128, ge=1, description="HNSW search breadth")
    batch_size: int = Field(64, ge=1, le=4096, description="embedding batch")
    query_instruction: str | None = Field(None, description="prefix for queries (e5-style)")


class DenseBackend(Backend):
    """Nearest neighbours of the query among the allowed items' vectors."""

    name = "dense"
    options_model = DenseOptions

    def __init__(self, ctx: BackendContext, options: Options | None = None) -> None:
        super().__init__(ctx, options)
        o: DenseOptions = self.options  # type: ignore[assignment]
        self.opts = o
        self.embedder = ctx.embedder
        self.index = FaissIndex(self.embedder.dim, hnsw_threshold=o.hnsw_threshold,
                                hnsw_m=o.hnsw_m, ef_search=o.ef_search)
        self.pg: PgVectorIndex | None = None
        if o.index == "pgvector":
            self.pg = PgVectorIndex(ctx.store, self.embedder.dim, m=o.pgvector_m,
                                    ef_construction=o.ef_construction, ef_search=o.ef_search)
        self.dirty = False
        self._saved_position = -1

    # ---- persistence --------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        d = self.ctx.directory
        return None if d is None or self.pg is not None else d / "vectors" / "dense.faiss"

    def _epoch(self) -> int:
        """Bumped by every reset: a file from before it is never trusted."""
        return int(self.ctx.store.get_meta("dense.epoch") or 0)

    def open(self) -> int | None:
        store = self.ctx.store
        config = json.dumps({"embedder": self.embedder.name, "dim": self.embedder.dim})
        if store.get_meta("dense.config") not in (None, config):
            self.reset()  # vectors of another model: rebuild from the record
        store.set_meta("dense.config", config)
        if self.pg is not None:
            return None  # the index is the database's: replay from the shared watermark
        path = self.path
        if path is not None and path.exists():
            try:
                label = self.index.load(path)
                epoch, position = divmod(label, 1 << 40)
                if epoch == self._epoch() and position <= store.last_seq():
                    self._saved_position = position
                    return position
            except StoreCorrupt:
                pass
        return self._rebuild_from_vectors()

    def _rebuild_from_vectors(self) -> int:
        """Index every item that has a stored vector, in one consistent read; returns the
        position to replay from (read first: what came after is replayed, idempotently)."""
        store = self.ctx.store
        position = store.last_seq()
        ids, vecs = self.ctx.vectors.all(live_only=True)
        self.index.rebuild(ids, vecs)
        self.dirty = True
        # items without a vector yet (another backend never embedded them) are replayed
        missing = store.conn.execute(
            "SELECT MIN(seq) FROM audit WHERE op NOT IN ('delete', 'expire') AND item_id IN "
            "(SELECT id FROM items) AND item_id NOT IN (SELECT item_id FROM item_vectors)"
        ).fetchone()[0]
        return position if missing is None else min(position, int(missing) - 1)

    def flush(self, position: int) -> None:
        if self.path is None or (not self.dirty and position == self._saved_position):
            return
        self.index.save(self.path, self._epoch() * (1 << 40) + position)
        self.dirty = False
        self._saved_position = position

    def reset(self) -> None:
        store = self.ctx.store
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('dense.epoch', '1') ON CONFLICT(key) "
                "DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)")
        super().reset()
        if self.pg is not None:
            self.pg.clear()
        self.index.rebuild(np.zeros(0, dtype=np.int64),
                           np.zeros((0, self.embedder.dim), dtype=np.float32))
        self.dirty = True

    # ---- indexing -----------------------------------------------------------------------
    def _unindexed(self, items: Sequence[MemoryItem]) -> list[MemoryItem]:
        if self.pg is not None:
            have = self.pg.present([it.id for it in items])
            return [it for it in items if it.id not in have]
        return [it for it in items if it.id not in self.index]

    def prepare(self, items: Sequence[MemoryItem]) -> Any:
        todo = self._unindexed(items)
        return dict(zip([it.id for it in todo], self.ctx.vectors.ensure(todo), strict=True))

    def add(self, items: Sequence[MemoryItem], prepared: Any = None) -> None:
        # prepare found what is not indexed yet (the indexer runs both under this backend's
        # index lock, so nothing else indexes in between); without it, look now
        todo = [it for it in items if it.id in prepared] if prepared is not None \
            else self._unindexed(items)
        if not todo:
            return
        vecs: dict[int, np.ndarray] = dict(prepared or {})
        missing = [it for it in todo if it.id not in vecs]
        if missing:
            vecs.update(zip([it.id for it in missing], self.ctx.vectors.ensure(missing),
                            strict=True))
        target = self.pg if self.pg is not None else self.index
        target.add(np.array([it.id for it in todo], dtype=np.int64),
                   np.vstack([vecs[it.id] for it in todo]))
        self.dirty = True

    def remove(self, ids: Sequence[int]) -> None:
        ids = [int(i) for i in ids]
        if ids and self.pg is not None:
            self.pg.remove(ids)
        elif ids:
            self.index.remove(np.asarray(ids, dtype=np.int64))
            self.dirty = True

    # ---- reading ------------------------------------------------------------------------
    def retrieve(self, query: str, k: int, *, allowed: AllowedIds,
                 options: Options | None = None) -> Retrieval:
        q = self.embedder.embed_query(query, self.opts.query_instruction)
        if self.pg is not None and allowed.scope is not None:
            ids, scores = self.pg.search(q, k, allowed.scope, allowed.as_of,
                                         allowed.now if allowed.now is not None else time.time(),
                                         allowed.event_at)
            return Retrieval([Scored(int(i), float(s)) for i, s in
                              zip(ids, scores, strict=True) if int(i) in allowed])
        return Retrieval(self.retrieve_vector(q, k, allowed=allowed))

    def retrieve_vector(self, q: np.ndarray, k: int, *, allowed: AllowedIds) -> list[Scored]:
        """Search with an already-embedded query."""
        if len(allowed) == 0:
            return []
        if self.pg is not None:
            raise ConfigError("a pgvector dense index is searched by scope: go through "
                              "Memory.read (AllowedIds with its scope)")
        ids, scores = self.index.search(q, k, allowed.ids)
        return [Scored(int(i), float(s))
                for i, s in zip(ids, scores, strict=True) if int(i) in allowed]

    def stats(self) -> dict[str, Any]:
        size = self.path.stat().st_size if self.path is not None and self.path.exists() else 0
        if self.pg is not None:
            return {"vectors": self.pg.ntotal, "kind": self.pg.kind,
                    "embedder": self.embedder.name, "dim": self.embedder.dim}
        return {"vectors": self.index.ntotal, "kind": self.index.kind,
                "embedder": self.embedder.name, "dim": self.embedder.dim, "file_bytes": size}
