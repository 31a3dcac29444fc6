"""Dense retrieval: item embeddings in a faiss index; the baseline every backend must beat.

Vectors are kept in the memory's SQLite (table ``dense_vectors``) in the same transaction that
records them, so the faiss file is a cache of that table: when the file is missing, corrupt or
older than the table (a crash before it was flushed), it is rebuilt from the table with no
re-embedding. Changing the embedder re-embeds everything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from memkit.backends.base import AllowedIds, Backend, BackendContext, Scored
from memkit.errors import StoreCorrupt
from memkit.types import MemoryItem
from memkit.vectors import FaissIndex

MIGRATIONS = [
    "CREATE TABLE dense_vectors (item_id INTEGER PRIMARY KEY, vec BLOB NOT NULL)",
]


class DenseBackend(Backend):
    """Options: ``hnsw_threshold`` (vectors above which HNSW replaces the exact index),
    ``hnsw_m``, ``ef_search``, ``batch_size`` (embedding batch), ``query_instruction``."""

    name = "dense"

    def __init__(self, ctx: BackendContext, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.embedder = ctx.embedder
        self.batch_size = int(options.get("batch_size", 64))
        self.query_instruction = options.get("query_instruction")
        self.index = FaissIndex(
            self.embedder.dim,
            hnsw_threshold=int(options.get("hnsw_threshold", 50_000)),
            hnsw_m=int(options.get("hnsw_m", 32)),
            ef_search=int(options.get("ef_search", 128)),
        )
        self.dirty = False
        self.last_embed_ms = 0.0
        ctx.store.migrate(self.name, MIGRATIONS)

    # ---- persistence --------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        d = self.ctx.directory
        return None if d is None else d / "vectors" / "dense.faiss"

    def _generation(self) -> int:
        return int(self.ctx.store.get_meta("dense.generation") or 0)

    def _bump(self) -> None:
        store = self.ctx.store
        store.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('dense.generation', '1') ON CONFLICT(key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def open(self) -> None:
        store = self.ctx.store
        config = {"embedder": self.embedder.name, "dim": self.embedder.dim}
        stored = store.get_meta("dense.config")
        if stored is not None and json.loads(stored) != config:
            # vectors from another model are meaningless here: re-embed from the record
            self.reset()
        store.set_meta("dense.config", json.dumps(config))
        path = self.path
        if path is not None and path.exists():
            try:
                if self.index.load(path) == self._generation():
                    return
            except StoreCorrupt:
                pass
        self._rebuild_from_table()

    def _rebuild_from_table(self) -> None:
        conn = self.ctx.store.conn
        n = conn.execute("SELECT COUNT(*) FROM dense_vectors").fetchone()[0]
        ids = np.zeros(n, dtype=np.int64)
        vecs = np.zeros((n, self.embedder.dim), dtype=np.float32)
        bar = tqdm(total=n, desc="rebuilding dense index", disable=not self.ctx.progress or n == 0)
        for row, (iid, blob) in enumerate(conn.execute(
                "SELECT item_id, vec FROM dense_vectors ORDER BY item_id")):
            ids[row] = iid
            vecs[row] = np.frombuffer(blob, dtype=np.float32)
        self.index.rebuild(ids, vecs, progress=bar.update)
        bar.close()
        self.dirty = True

    def flush(self) -> None:
        if self.dirty and self.path is not None:
            self.index.save(self.path, self._generation())
        self.dirty = False

    def reset(self) -> None:
        with self.ctx.store.transaction() as conn:
            conn.execute("DELETE FROM dense_vectors")
            self._bump()
            super().reset()
        self.index.rebuild(np.zeros(0, dtype=np.int64),
                           np.zeros((0, self.embedder.dim), dtype=np.float32))
        self.dirty = True

    # ---- indexing -----------------------------------------------------------------------
    def add(self, items: Sequence[MemoryItem]) -> None:
        todo = [it for it in items if it.id not in self.index]
        if not todo:
            return
        # vectors another process (or a run killed before its index flush) already stored
        stored = self.vectors([it.id for it in todo])
        fresh = [it for it in todo if it.id not in stored]
        if fresh:
            t0 = time.perf_counter()
            vecs = self.embedder.embed([it.text for it in fresh], batch_size=self.batch_size)
            self.last_embed_ms = (time.perf_counter() - t0) * 1000
            with self.ctx.store.transaction() as conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO dense_vectors (item_id, vec) VALUES (?, ?)",
                    [(it.id, v.tobytes()) for it, v in zip(fresh, vecs, strict=True)],
                )
                self._bump()
            stored.update({it.id: v for it, v in zip(fresh, vecs, strict=True)})
        ids = np.array([it.id for it in todo], dtype=np.int64)
        self.index.add(ids, np.vstack([stored[it.id] for it in todo]))
        self.dirty = True

    def remove(self, ids: Sequence[int]) -> None:
        ids = [int(i) for i in ids]
        if not ids:
            return
        with self.ctx.store.transaction() as conn:
            conn.executemany("DELETE FROM dense_vectors WHERE item_id = ?", [(i,) for i in ids])
            self._bump()
        self.index.remove(np.asarray(ids, dtype=np.int64))
        self.dirty = True

    # ---- reading ------------------------------------------------------------------------
    def retrieve(self, query: str, k: int, *, allowed: AllowedIds) -> list[Scored]:
        q = self.embedder.embed_query(query, self.query_instruction)
        return self.retrieve_vector(q, k, allowed=allowed)

    def retrieve_vector(self, q: np.ndarray, k: int, *, allowed: AllowedIds) -> list[Scored]:
        """Search with an already-embedded query (other backends reuse this)."""
        if len(allowed) == 0:
            return []
        ids, scores = self.index.search(q, k, allowed.ids)
        return [Scored(int(i), float(s))
                for i, s in zip(ids, scores, strict=True) if int(i) in allowed]

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors for these ids (missing ids left out)."""
        out: dict[int, np.ndarray] = {}
        conn = self.ctx.store.conn
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for iid, blob in conn.execute(
                f"SELECT item_id, vec FROM dense_vectors WHERE item_id IN "
                f"({','.join('?' * len(chunk))})", chunk):
                out[iid] = np.frombuffer(blob, dtype=np.float32)
        return out

    def stats(self) -> dict[str, Any]:
        size = self.path.stat().st_size if self.path is not None and self.path.exists() else 0
        return {"vectors": self.index.ntotal, "kind": self.index.kind,
                "embedder": self.embedder.name, "dim": self.embedder.dim, "file_bytes": size}
