"""Insert many rows at once, a row whose key is there already left as it is: what the vector
stores (item vectors, string vectors, pgvector) write a batch with.

On SQLite an ``executemany``; on Postgres a batch of at least :data:`COPY_MIN` rows is loaded
with ``COPY`` straight into the table, the rows whose key is there already left out first
(:meth:`~memkit.store.postgres.PostgresStore.copy_insert`). Either way it runs in the
caller's write transaction (or its own): a failure anywhere leaves none of the rows.

>>> from memkit.store.sqlite import Store
>>> store = Store.open(":memory:")
>>> _ = store.conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
>>> insert_rows(store, "t", ("k", "v"), [(1, "a"), (2, "b"), (1, "c")], conflict=("k",))
>>> store.conn.execute("SELECT k, v FROM t ORDER BY k").fetchall()
[(1, 'a'), (2, 'b')]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COPY_MIN = 256  # rows: below this COPY measured no faster (benchmarks/results/pg_bulk_load.md)


def insert_rows(store: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                *, conflict: Sequence[str], casts: Mapping[str, str] | None = None) -> None:
    """``INSERT INTO table (columns) ... ON CONFLICT (conflict) DO NOTHING`` for each row; of
    rows sharing a key (within the batch, or with a row already there) the first is kept.
    ``casts``: SQL types to cast parameters to in the row-by-row statement (``{"emb":
    "vector"}``: pgvector's text form)."""
    rows = list(rows)
    if not rows:
        return
    if store.kind == "postgres" and len(rows) >= COPY_MIN:
        store.copy_insert(table, columns, first_per_key(rows, columns, conflict),
                          conflict=conflict)
        return
    casts = casts or {}
    values = ", ".join(f"CAST(? AS {casts[c]})" if c in casts else "?" for c in columns)
    with store.transaction() as conn:
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "
                         f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING", rows)


def first_per_key(rows: Sequence[Sequence[Any]], columns: Sequence[str],
                  conflict: Sequence[str]) -> list[Sequence[Any]]:
    """The rows, without any whose key an earlier row has (what row-by-row ``ON CONFLICT DO
    NOTHING`` keeps, made explicit for a set-based insert).

    >>> first_per_key([(1, "a"), (2, "b"), (1, "c")], ("k", "v"), ("k",))
    [(1, 'a'), (2, 'b')]
    """
    at = [list(columns).index(c) for c in conflict]
    seen: set[tuple[Any, ...]] = set()
    out = []
    for row in rows:
        key = tuple(row[i] for i in at)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out
