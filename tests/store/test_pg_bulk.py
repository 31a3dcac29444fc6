"""Batch vector writes on Postgres go through COPY (memkit.store.bulk; binary for the
item- and string-vector tables, text for pgvector's): a loaded batch reads
back bit for bit, the first of rows sharing a key is kept (as row-by-row ON CONFLICT DO
NOTHING keeps it), and a failure anywhere in the batch's transaction leaves none of it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from memkit.embed import HashEmbedder
from memkit.store.bulk import COPY_MIN

pytest.importorskip("psycopg", reason="needs the [postgres] extra")

DIM = 8
N = 3 * COPY_MIN


def known_vectors(n: int) -> np.ndarray:
    """Values that a lossy text round trip would change: thirds, tiny and huge magnitudes,
    negative zero."""
    v = (np.arange(n * DIM, dtype=np.float64).reshape(n, DIM) - 100.0) / 3.0
    v[:, 0] = 1e-38
    v[:, 1] = -3.4e38
    v[:, 2] = -0.0
    return v.astype(np.float32)


@pytest.fixture
def store(pg_dsn: str) -> Iterator[object]:
    from memkit.store.postgres import PostgresStore

    s = PostgresStore.open(pg_dsn)
    copies: list[int] = []
    real = s.copy_insert

    def counting(table, columns, rows, *, conflict):  # type: ignore[no-untyped-def]
        copies.append(len(rows))
        return real(table, columns, rows, conflict=conflict)

    s.copy_insert = counting  # type: ignore[method-assign]
    s.copies = copies  # type: ignore[attr-defined]
    yield s
    s.close()


def test_item_vectors_loaded_by_copy_read_back_identical(store) -> None:  # type: ignore[no-untyped-def]
    from memkit.vectors.items import ItemVectors

    iv = ItemVectors(store, HashEmbedder(DIM))
    vecs = known_vectors(N)
    ids = list(range(1, N + 1))
    iv.put(ids, vecs)
    assert store.copies == [N]
    got = iv.get(ids)
    assert all(got[i].tobytes() == vecs[i - 1].tobytes() for i in ids)
    assert iv.count() == N
    # a second batch: ids already there keep their vector, a key repeated in the batch keeps
    # its first row, new ids are added
    again = np.ones((N, DIM), dtype=np.float32)
    iv.put([*range(N - 9, N + 1), *[N + 1] * 2, *range(N + 2, 2 * N - 10)], again)
    assert store.copies == [N, N - 1]
    got = iv.get(range(1, 2 * N))  # type: ignore[arg-type]
    assert got[N].tobytes() == vecs[N - 1].tobytes() and len(got) == 2 * N - 11
    assert got[N + 1].tobytes() == again[10].tobytes()


def test_pgvector_rows_loaded_by_copy_read_back_identical(store) -> None:  # type: ignore[no-untyped-def]
    """COPY in text format (pgvector's literals): psycopg has no binary form for vector."""
    from memkit.vectors.pgvector_index import TABLE, PgVectorIndex

    index = PgVectorIndex(store, DIM)
    vecs = known_vectors(N)
    index.add(np.arange(1, N + 1), vecs)
    assert store.copies == [N] and index.ntotal == N
    rows = store.conn.execute(f"SELECT item_id, emb::text FROM {TABLE} ORDER BY item_id"
                              ).fetchall()
    back = np.array([[float(x) for x in r[1].strip("[]").split(",")] for r in rows],
                    dtype=np.float32)
    assert [r[0] for r in rows] == list(range(1, N + 1))
    assert back.tobytes() == vecs.tobytes()


def test_string_vectors_loaded_by_copy_read_back_identical(store) -> None:  # type: ignore[no-untyped-def]
    from memkit.vectors.strings import StringVectors

    sv = StringVectors(store, HashEmbedder(DIM))
    texts = [f"phrase {i}" for i in range(N)]
    vecs = known_vectors(N)
    sv.put(texts, vecs)
    assert store.copies == [N]
    got = sv.lookup(texts)
    assert all(got[t].tobytes() == v.tobytes() for t, v in zip(texts, vecs, strict=True))


def test_a_failure_mid_batch_leaves_nothing(store) -> None:  # type: ignore[no-untyped-def]
    from memkit.store.sqlite import NewItem
    from memkit.types import Scope
    from memkit.vectors.items import ItemVectors
    from memkit.vectors.pgvector_index import PgVectorIndex

    iv = ItemVectors(store, HashEmbedder(DIM))
    index = PgVectorIndex(store, DIM)
    vecs = known_vectors(N)
    bad = vecs[:, :DIM - 1].copy()  # one row of the wrong dimension, half-way through
    with pytest.raises(Exception, match="dimensions"):
        with store.transaction():
            out = store.insert_items([NewItem(f"text {i}", Scope())
                                      for i in range(N)])
            ids = [iid for iid, _ in out]
            iv.put(ids, vecs)  # loaded (COPY) ...
            rows = [*vecs[:N // 2], bad[N // 2], *vecs[N // 2 + 1:]]
            index.add(np.array(ids), rows)  # type: ignore[arg-type]  # ... this COPY fails
    assert store.copies == [N, N]
    assert store.count() == 0 and iv.count() == 0 and index.ntotal == 0
    assert store.last_seq() == 0  # no change-feed entry either
    # the connection is usable and the temporary tables went with the rollback
    iv.put(list(range(1, N + 1)), vecs)
    index.add(np.arange(1, N + 1), vecs)
    assert iv.count() == N == index.ntotal
    assert store.copies == [N, N, N, N]
