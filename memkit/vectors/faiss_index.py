"""A faiss vector index keyed by item id, exact (flat) when small and HNSW when large.

Inner product over L2-normalised vectors (= cosine). Scope filtering is pushed into the search
with a bitmap selector, so a filtered search still returns ``k`` results when most vectors are
out of scope. HNSW graphs cannot remove vectors, so removals there are tombstones (never
returned, since the selector excludes them) and the graph is rebuilt when they pile up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from memkit._files import private_tmp, replace_from
from memkit.errors import InvalidInput, StoreCorrupt

# faiss's bundled stubs describe the C++ API, not the Python wrapper (numpy overloads,
# SearchParametersHNSW), so treat the module as untyped
faiss: Any = _faiss

# Searches of one query run on one OpenMP thread: a full thread team spin-waits on a busy
# machine (measured under load: 29 ms vs 1 ms per read). Builds use every core. Each path
# sets what it needs, so concurrent callers never leave the wrong setting behind.
_BUILD_THREADS = os.cpu_count() or 1


def _omp_threads(n: int) -> None:
    if faiss.omp_get_max_threads() != n:
        faiss.omp_set_num_threads(n)


# a filter that keeps fewer than this many ids is searched exactly over those ids
_EXACT_SUBSET = 4096


def id_bitmap(ids: np.ndarray, exclude: set[int] | None = None) -> np.ndarray:
    """Little-endian bitmap over ids (bit i set when id i is in ``ids`` and not excluded), the
    layout of faiss's IDSelectorBitmap.

    >>> np.flatnonzero(np.unpackbits(id_bitmap(np.array([1, 4, 9]), {4}), bitorder="little"))
    array([1, 9])
    """
    ids = np.asarray(ids, dtype=np.int64)
    bits = np.zeros(int(ids.max()) + 1 if len(ids) else 1, dtype=bool)
    bits[ids] = True
    if exclude:
        gone = np.fromiter(exclude, dtype=np.int64, count=len(exclude))
        bits[gone[gone < len(bits)]] = False
    return np.packbits(bits, bitorder="little")


class FaissIndex:
    """Vectors by int64 id. ``kind`` is "flat" below ``hnsw_threshold`` vectors, else "hnsw"."""

    def __init__(self, dim: int, *, hnsw_threshold: int = 50_000, hnsw_m: int = 32,
                 ef_construction: int = 80, ef_search: int = 128) -> None:
        if dim <= 0:
            raise InvalidInput(f"vector dimension must be positive, got {dim}")
        self.dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.dead: set[int] = set()
        self.present: set[int] = set()  # every id in the faiss structure, tombstoned or not
        self.index = self._new("flat")
        self.kind = "flat"

    def _new(self, kind: str) -> Any:
        if kind == "flat":
            inner = faiss.IndexFlatIP(self.dim)
        else:
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
        return faiss.IndexIDMap2(inner)

    # ---- size ---------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Live vectors (tombstones excluded)."""
        return int(self.index.ntotal) - len(self.dead)

    def ids(self) -> np.ndarray:
        all_ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        if self.dead:
            all_ids = all_ids[~np.isin(all_ids, np.fromiter(self.dead, dtype=np.int64))]
        return np.sort(all_ids)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of ``ids`` (each must be live), one row each."""
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for row, i in enumerate(np.asarray(ids, dtype=np.int64).tolist()):
            if i not in self:
                raise InvalidInput(f"no vector for id {i}")
            out[row] = self.index.reconstruct(int(i))
        return out

    def __contains__(self, item_id: int) -> bool:
        return int(item_id) in self.present and int(item_id) not in self.dead

    # ---- mutation -----------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; ids already present are left as they are (vectors of an id never
        change: an updated memory gets a new id)."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(ids) != len(vectors):
            raise InvalidInput(
                f"expected {len(ids)} vectors of dimension {self.dim}, got shape {vectors.shape}"
            )
        keep = np.array([int(i) not in self.present for i in ids], dtype=bool)
        for i in ids[~keep]:
            self.dead.discard(int(i))
        ids, vectors = ids[keep], vectors[keep]
        if len(ids) == 0:
            return
        if self.kind == "flat" and self.index.ntotal + len(ids) > self.hnsw_threshold:
            self._convert("hnsw", extra=(ids, vectors))
            return
        _omp_threads(_BUILD_THREADS)
        self.index.add_with_ids(vectors, ids)
        self.present.update(int(i) for i in ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (unknown ids are ignored); returns how many were live."""
        present = [int(i) for i in ids if int(i) in self]
        if not present:
            return 0
        if self.kind == "flat":
            self.index.remove_ids(np.asarray(present, dtype=np.int64))
            self.present.difference_update(present)
        else:
            self.dead.update(present)
            self._scrub(present)
            if len(self.dead) > max(1000, self.index.ntotal // 5):
                self._convert("hnsw")
        return len(present)

    def _scrub(self, ids: list[int]) -> None:
        """Zero the stored vectors of tombstoned ids in the HNSW storage: a deleted item's
        vector must not survive in memory or in the saved file (its graph node stays, as a
        zero vector no search returns)."""
        inner = faiss.downcast_index(self.index.index)
        storage = faiss.downcast_index(inner.storage)
        if not hasattr(storage, "get_xb"):  # pragma: no cover - flat storage is what we build
            return
        flat = faiss.rev_swig_ptr(storage.get_xb(), int(storage.ntotal) * self.dim)
        positions = np.flatnonzero(np.isin(faiss.vector_to_array(self.index.id_map),
                                           np.asarray(ids, dtype=np.int64)))
        for pos in positions.tolist():
            flat[pos * self.dim:(pos + 1) * self.dim] = 0.0

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        ids = self.ids()
        vecs = np.vstack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else \
            np.zeros((0, self.dim), dtype=np.float32)
        return ids, vecs

    def _convert(self, kind: str, extra: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        ids, vecs = self._all_vectors()
        if extra is not None:
            ids, vecs = np.concatenate([ids, extra[0]]), np.vstack([vecs, extra[1]])
        self.rebuild(ids, vecs, kind=kind)

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray, kind: str | None = None,
                progress: Callable[[int], None] | None = None) -> None:
        """Replace the whole index with these vectors."""
        n = len(ids)
        kind = kind or ("hnsw" if n > self.hnsw_threshold else "flat")
        index = self._new(kind)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        _omp_threads(_BUILD_THREADS)
        step = 20_000
        for start in range(0, n, step):
            index.add_with_ids(vectors[start:start + step], ids[start:start + step])
            if progress:
                progress(min(step, n - start))
        self.index, self.kind, self.dead = index, kind, set()
        self.present = {int(i) for i in ids}

    # ---- search -------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (ids, scores) by inner product, restricted to the ``allowed`` ids when
        given."""
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, self.dim))
        _omp_threads(1)
        if self.index.ntotal == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if allowed is not None and len(allowed) < _EXACT_SUBSET and self.kind == "hnsw":
            return self._exact_subset(q[0], k, allowed)
        if allowed is None and not self.dead:
            scores, labels = self.index.search(q, k)
        else:
            if allowed is None:
                allowed = self.ids()
            if len(allowed) == 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            bitmap = id_bitmap(allowed, exclude=self.dead)
            sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
            if self.kind == "hnsw":
                params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.ef_search, 2 * k))
            else:
                params = faiss.SearchParameters(sel=sel)
            scores, labels = self.index.search(q, k, params=params)
        keep = labels[0] >= 0
        return labels[0][keep].astype(np.int64), scores[0][keep]

    def _exact_subset(self, q: np.ndarray, k: int, allowed: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array([int(i) for i in allowed if int(i) in self], dtype=np.int64)
        if len(ids) == 0:
            return ids, np.zeros(0, dtype=np.float32)
        vecs = np.vstack([self.index.reconstruct(int(i)) for i in ids])
        scores = vecs @ q
        order = np.argsort(-scores, kind="stable")[:k]
        return ids[order], scores[order]

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: Path, generation: int) -> None:
        """Write ``path`` (faiss) and ``path.json`` (kind, dim, tombstones, generation),
        each to a temporary name then renamed; the json goes last, so a crash between the
        two leaves a generation mismatch that forces a rebuild on open."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = private_tmp(path)
        faiss.write_index(self.index, str(tmp))
        replace_from(tmp, path)
        meta = {"kind": self.kind, "dim": self.dim, "dead": sorted(self.dead),
                "generation": generation, "ntotal": int(self.index.ntotal)}
        side = path.with_name(path.name + ".json")
        tmp_side = private_tmp(side)
        tmp_side.write_text(json.dumps(meta))
        replace_from(tmp_side, side)

    def load(self, path: Path) -> int:
        """Load from ``path``; returns the saved generation. Raises StoreCorrupt if unreadable."""
        side = path.with_name(path.name + ".json")
        try:
            meta = json.loads(side.read_text())
            index = faiss.read_index(str(path))
        except Exception as exc:  # faiss raises RuntimeError; json ValueError; missing OSError
            raise StoreCorrupt(f"vector index {path} is missing or unreadable: {exc}") from exc
        if not isinstance(index, faiss.IndexIDMap2) or index.d != self.dim or \
                int(index.ntotal) != meta.get("ntotal"):
            raise StoreCorrupt(f"vector index {path} does not match its metadata")
        self.index = index
        self.kind = meta["kind"]
        self.dead = set(meta.get("dead", []))
        self.present = {int(i) for i in faiss.vector_to_array(index.id_map)}
        if self.kind == "hnsw":
            faiss.downcast_index(index.index).hnsw.efSearch = self.ef_search
        return int(meta["generation"])
