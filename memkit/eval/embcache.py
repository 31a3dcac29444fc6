"""A persistent embedding cache for benchmark builds.

Building the same corpus for another backend (or another backend combination) re-embeds every
text; on a CPU that is most of the build time. :class:`CachingEmbedder` keeps document vectors in
a SQLite file keyed by (embedder name, text hash), so each text is embedded once per model.
Query embeddings are *not* cached: they are part of the read latency being measured.
Vectors come back byte-identical, so cached and uncached builds give the same results.
An ensemble embedder (``onnx+e5``) is cached part by part, so its builds reuse the vectors
of runs made with either model alone.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from memkit.embed import Embedder
from memkit.embed.ensemble import EnsembleEmbedder


class CachingEmbedder(Embedder):
    """Wraps ``inner``; ``hits``/``misses`` count texts served from / added to the cache."""

    def __init__(self, inner: Embedder, path: str | Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, "
                          "hash TEXT NOT NULL, vec BLOB NOT NULL, PRIMARY KEY (model, hash))")
        self.conn.commit()
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    @staticmethod
    def _hash(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        inner = self.inner
        if isinstance(inner, EnsembleEmbedder):
            return inner.combine([self._cached(texts, p.name, p.dim, p.embed_batch)
                                  for p in inner.parts])
        return self._cached(texts, self.name, self.dim, inner.embed_batch)

    def _cached(self, texts: Sequence[str], model: str, dim: int,
                embed: Callable[[Sequence[str]], np.ndarray]) -> np.ndarray:
        """``embed(texts)`` through the cache rows of ``model``."""
        keys = [self._hash(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 500):
                chunk = unique[start:start + 500]
                rows = self.conn.execute(
                    f"SELECT hash, vec FROM vectors WHERE model = ? AND hash IN "
                    f"({','.join('?' * len(chunk))})", [model, *chunk])
                for h, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.shape == (dim,):
                        found[h] = vec
        todo = [i for i, k in enumerate(keys) if k not in found]
        todo_unique = list(dict.fromkeys(keys[i] for i in todo))
        if todo_unique:
            first = {keys[i]: i for i in reversed(todo)}
            vecs = np.asarray(embed([texts[first[h]] for h in todo_unique]), dtype=np.float32)
            with self._lock:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO vectors (model, hash, vec) VALUES (?, ?, ?)",
                    [(model, h, v.tobytes()) for h, v in zip(todo_unique, vecs, strict=True)])
                self.conn.commit()
            found.update(zip(todo_unique, vecs, strict=True))
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out

    def embed_queries(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray:
        return self.inner.embed_queries(texts, instruction)

    def close(self) -> None:
        with self._lock:
            self.conn.close()
