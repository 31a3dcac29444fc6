"""ItemVectors: the one store of item (passage) vectors, shared by every backend.

It owns the table ``item_vectors`` in the memory's SQLite: one vector per record item for the
memory's embedder. Dense, HippoRAG and Panini all ask it for passage vectors (``ensure``), so a
passage is embedded once however many backends index it, and no backend reads another's
tables. Short strings (phrases, facts, questions) go through its :class:`StringVectors` cache
(``embed_strings``): each distinct string is embedded once per memory and embedder.
Vectors are derived data: the indexer drops those of deleted items (``remove``), and a
change of embedder clears the table (every vector is re-embedded on demand).

>>> from memkit.embed import HashEmbedder
>>> from memkit.store.sqlite import Store
>>> from memkit.types import MemoryItem, Scope
>>> iv = ItemVectors(Store.open(":memory:"), HashEmbedder(dim=8))
>>> item = MemoryItem(7, "hello", Scope(), None, 0.0, 1.0, None, {}, "h")
>>> iv.ensure([item]).shape, iv.ensure([item]).shape, iv.count()
((1, 8), (1, 8), 1)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from memkit.embed.base import Embedder
from memkit.store.bulk import insert_rows
from memkit.store.sqlite import Store
from memkit.types import MemoryItem
from memkit.vectors.strings import StringVectors

MIGRATIONS = [
    "CREATE TABLE item_vectors (item_id INTEGER PRIMARY KEY, vec BLOB NOT NULL)",
]
_META = "item_vectors.config"
_CHUNK = 500


class ItemVectors:
    """Passage vectors by item id, embedded once, shared by every backend (thread-safe: every
    statement runs on the store's locked connection)."""

    def __init__(self, store: Store, embedder: Embedder, batch_size: int = 64) -> None:
        self.store = store
        self.embedder = embedder
        self.batch_size = batch_size
        store.migrate("item_vectors", MIGRATIONS)
        self.strings = StringVectors(store, embedder, batch_size=batch_size)
        self._adopt_legacy_dense_table()
        config = json.dumps({"embedder": embedder.name, "dim": embedder.dim})
        if store.get_meta(_META) != config:
            with store.transaction() as conn:
                conn.execute("DELETE FROM item_vectors")  # another model's vectors: meaningless
                conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                             "SET value = excluded.value", (_META, config))

    def _adopt_legacy_dense_table(self) -> None:
        """Memories written before this store kept passage vectors in ``dense_vectors``
        (tagged by ``dense.config``): move them here once, then drop that table."""
        if "dense_vectors" not in self.store.table_names():
            return
        with self.store.transaction() as tx:
            legacy = tx.execute("SELECT value FROM meta WHERE key = 'dense.config'").fetchone()
            if legacy is not None and tx.execute(
                    "SELECT COUNT(*) FROM item_vectors").fetchone()[0] == 0:
                tx.execute("INSERT INTO item_vectors SELECT item_id, vec FROM dense_vectors "
                           "ON CONFLICT (item_id) DO NOTHING")
                tx.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                           "SET value = excluded.value", (_META, legacy[0]))
            tx.execute("DROP TABLE dense_vectors")

    # ---- reading ------------------------------------------------------------------------
    def get(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors for these ids (ids without one are left out)."""
        out: dict[int, np.ndarray] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            for iid, blob in self.store.conn.execute(
                    f"SELECT item_id, vec FROM item_vectors WHERE item_id IN "
                    f"({','.join('?' * len(chunk))})", chunk):
                out[int(iid)] = np.frombuffer(blob, dtype=np.float32)
        return out

    def all(self, live_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Every stored (id, vector), ids ascending, read in one statement (a consistent
        snapshot even while another process writes); ``live_only``: only items the record
        still holds (a vector whose removal is not yet applied is left out)."""
        rows = self.store.conn.execute(
            "SELECT v.item_id, v.vec FROM item_vectors v JOIN items i ON i.id = v.item_id "
            "ORDER BY v.item_id" if live_only else
            "SELECT item_id, vec FROM item_vectors ORDER BY item_id").fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, self.embedder.dim), dtype=np.float32)
        return ids, np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def count(self) -> int:
        return int(self.store.conn.execute("SELECT COUNT(*) FROM item_vectors").fetchone()[0])

    # ---- writing ------------------------------------------------------------------------
    def ensure(self, items: Sequence[MemoryItem], progress: bool = False) -> np.ndarray:
        """The vectors of ``items`` (rows in order), embedding and storing only those that no
        backend, process or earlier run has stored yet. Safe to call without any lock held:
        two callers racing on one item store the same vector (``ON CONFLICT DO NOTHING``)."""
        if not items:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        have = self.get([it.id for it in items])
        fresh = [it for it in items if it.id not in have]
        if fresh:
            vecs = self.embedder.embed([it.text for it in fresh], batch_size=self.batch_size,
                                       progress=progress and len(fresh) > self.batch_size,
                                       desc="embedding passages")
            insert_rows(self.store, "item_vectors", ("item_id", "vec"),
                        [(it.id, v.tobytes()) for it, v in zip(fresh, vecs, strict=True)],
                        conflict=("item_id",))
            have.update({it.id: v for it, v in zip(fresh, vecs, strict=True)})
        return np.vstack([have[it.id] for it in items])

    def put(self, ids: Sequence[int], vecs: np.ndarray) -> None:
        """Store vectors embedded elsewhere (the ingest pipeline, a Ray actor) by this
        memory's embedder; an id that already has one keeps it."""
        if len(ids) != len(vecs):
            raise ValueError(f"{len(ids)} ids but {len(vecs)} vectors")
        insert_rows(self.store, "item_vectors", ("item_id", "vec"),
                    [(int(i), np.ascontiguousarray(v, dtype=np.float32).tobytes())
                     for i, v in zip(ids, vecs, strict=True)], conflict=("item_id",))

    def embed_strings(self, texts: Sequence[str], *, batch_size: int | None = None,
                      progress: bool = False, desc: str = "embedding strings") -> np.ndarray:
        """Vectors of short strings (rows in order), through the memory's content-hash
        cache: a string any backend, process or earlier build embedded is not embedded
        again."""
        return self.strings.embed(texts, batch_size=batch_size, progress=progress, desc=desc)

    def remove(self, ids: Sequence[int]) -> None:
        """Drop the vectors of these (deleted) items."""
        ids = [int(i) for i in ids]
        with self.store.transaction() as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start:start + _CHUNK]
                conn.execute(f"DELETE FROM item_vectors WHERE item_id IN "
                             f"({','.join('?' * len(chunk))})", chunk)

    def clear(self) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM item_vectors")

    def stats(self) -> dict[str, Any]:
        return {"vectors": self.count(), "embedder": self.embedder.name,
                "dim": self.embedder.dim, "strings": self.strings.stats()}
