"""StringVectors: a content-hash cache of the vectors of short strings, one per memory.

HippoRAG's phrases and facts and Panini's questions, answers and entities are short and
repeat: across passages, across backends, and every time an index is rebuilt. This cache
embeds each distinct string once per memory and embedder: rows of ``string_vectors`` are keyed
by (embedder identity, SHA-256 of the text), so a rebuild, a re-open or another process reuses
them, and a different embedder (another name or dimension) never sees another model's
vectors. Like every vector it is derived data: erasing an item purges the strings derived
from it (:meth:`purge`), and a change of the memory's embedder drops the old model's rows.

>>> from memkit.embed import HashEmbedder
>>> from memkit.store.sqlite import Store
>>> sv = StringVectors(Store.open(":memory:"), HashEmbedder(dim=8))
>>> sv.embed(["Paris", "Lyon", "Paris"]).shape, sv.count(), sv.embedded
((3, 8), 2, 2)
>>> _ = sv.embed(["Lyon"]); sv.embedded, sv.reused
(2, 2)
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from memkit.embed.base import Embedder
from memkit.store.bulk import insert_rows
from memkit.store.sqlite import Store

MIGRATIONS = [
    "CREATE TABLE string_vectors (model TEXT NOT NULL, hash TEXT NOT NULL, "
    "vec BLOB NOT NULL, PRIMARY KEY (model, hash))",
]
_META = "string_vectors.config"
_CHUNK = 500


def text_hash(text: str) -> str:
    """The cache key of a string: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def delete_by_text_hash(store: Store, table: str, texts: Sequence[str]) -> int:
    """Delete the rows of ``table`` whose ``hash`` column is one of these texts' hashes, in
    one transaction; returns how many rows."""
    hashes = list(dict.fromkeys(text_hash(t) for t in texts))
    removed = 0
    with store.transaction() as conn:
        for start in range(0, len(hashes), _CHUNK):
            chunk = hashes[start:start + _CHUNK]
            cur = conn.execute(f"DELETE FROM {table} WHERE hash IN "
                               f"({','.join('?' * len(chunk))})", chunk)
            removed += max(cur.rowcount, 0)
    return removed


def embedder_key(embedder: Embedder) -> str:
    """An embedder's identity in the cache: its name and dimension."""
    return f"{embedder.name}/{embedder.dim}"


class StringVectors:
    """Vectors of short strings by content hash, embedded once per memory and embedder
    (thread-safe: statements run on the store's locked connection; counters under a lock).

    ``embedded`` / ``reused`` count, in this process, the strings embedded and the strings
    served from the cache."""

    def __init__(self, store: Store, embedder: Embedder, batch_size: int = 64) -> None:
        self.store = store
        self.embedder = embedder
        self.batch_size = batch_size
        self.model = embedder_key(embedder)
        self.embedded = 0
        self.reused = 0
        self._count_lock = threading.Lock()
        store.migrate("string_vectors", MIGRATIONS)
        config = json.dumps({"model": self.model})
        if store.get_meta(_META) != config:
            with store.transaction() as conn:
                # another model's vectors are meaningless for this memory now
                conn.execute("DELETE FROM string_vectors WHERE model <> ?", (self.model,))
                conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                             "DO UPDATE SET value = excluded.value", (_META, config))

    def lookup(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors of these strings (strings not cached are left out)."""
        by_hash = {text_hash(t): t for t in dict.fromkeys(texts)}
        hashes = list(by_hash)
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), _CHUNK):
            chunk = hashes[start:start + _CHUNK]
            for h, blob in self.store.conn.execute(
                    f"SELECT hash, vec FROM string_vectors WHERE model = ? AND hash IN "
                    f"({','.join('?' * len(chunk))})", [self.model, *chunk]):
                out[by_hash[h]] = np.frombuffer(blob, dtype=np.float32)
        return out

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None,
              progress: bool = False, desc: str = "embedding strings") -> np.ndarray:
        """Vectors of ``texts`` (rows in order, duplicates allowed), embedding and storing only
        the distinct strings not cached yet. Safe without any lock held: two callers racing
        on one string store the same vector once (``ON CONFLICT DO NOTHING``)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        have = self.lookup(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in have]
        if missing:
            size = batch_size or self.batch_size
            vecs = self.embedder.embed(missing, batch_size=size,
                                       progress=progress and len(missing) > size,
                                       desc=desc)
            self.put(missing, vecs)
            have.update(zip(missing, vecs, strict=True))
        with self._count_lock:
            self.embedded += len(missing)
            self.reused += len(texts) - len(missing)
        return np.vstack([have[t] for t in texts]).astype(np.float32, copy=False)

    def put(self, texts: Sequence[str], vecs: np.ndarray) -> None:
        """Store vectors of strings embedded elsewhere (a Ray actor) by this memory's
        embedder; a string already cached keeps its vector."""
        if len(texts) != len(vecs):
            raise ValueError(f"{len(texts)} strings but {len(vecs)} vectors")
        insert_rows(self.store, "string_vectors", ("model", "hash", "vec"),
                    [(self.model, text_hash(t), np.ascontiguousarray(v, np.float32).tobytes())
                     for t, v in zip(texts, vecs, strict=True)], conflict=("model", "hash"))

    def purge(self, texts: Sequence[str]) -> int:
        """Drop the cached vectors of these strings (of every model); returns how many rows.
        Used when items are erased, so no vector of a deleted item's phrase outlives it."""
        return delete_by_text_hash(self.store, "string_vectors", texts)

    def count(self) -> int:
        """Strings cached for this memory's embedder."""
        return int(self.store.conn.execute(
            "SELECT COUNT(*) FROM string_vectors WHERE model = ?", (self.model,)).fetchone()[0])

    def clear(self) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM string_vectors")

    def stats(self) -> dict[str, Any]:
        return {"vectors": self.count(), "embedder": self.model,
                "embedded_this_process": self.embedded, "reused_this_process": self.reused}
