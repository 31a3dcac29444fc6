"""Rows/s of a batch's vector writes on Postgres: the old row-by-row path (psycopg
``executemany``) vs COPY (memkit.store.bulk), measured in the same run, on one local Postgres.

    python benchmarks/pg_bulk_load.py                  # 20,000 vectors of dim 384
    python benchmarks/pg_bulk_load.py --vectors 5000 --dim 64

Each case writes the same seeded vectors into a fresh schema, one transaction per batch (as
``commit_batch`` does), for several batch sizes: ``item_vectors`` (the passage-vector store,
bytea), ``dense_pgvector`` (``PgVectorIndex.add``: each row also pays its HNSW insert),
and ``Memory.write_many`` end to end on a Postgres memory with the pgvector index (hash
embedder). The row-by-row figure is the same function with COPY switched off
(``bulk.COPY_MIN`` raised), i.e. exactly the executemany statement used before; the COPY
figure forces COPY at every batch size (``COPY_MIN`` = 1), which is how its threshold was
chosen. Prints a
markdown table and writes it to benchmarks/results/pg_bulk_load.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def vectors(n: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def timed(copy: bool, fn: Callable[[], int]) -> float:
    """Rows/s of ``fn`` (returns the rows it wrote) with COPY on or off."""
    from memkit.store import bulk

    saved = bulk.COPY_MIN
    bulk.COPY_MIN = 1 if copy else sys.maxsize  # COPY at every batch size, or never
    try:
        t0 = time.perf_counter()
        rows = fn()
        return rows / (time.perf_counter() - t0)
    finally:
        bulk.COPY_MIN = saved


def item_vectors_case(server: Any, vecs: np.ndarray, batch: int) -> Callable[[], int]:
    from memkit.embed import HashEmbedder
    from memkit.store.local_pg import dsn_for
    from memkit.store.postgres import PostgresStore
    from memkit.vectors.items import ItemVectors

    store = PostgresStore.open(dsn_for(server))
    iv = ItemVectors(store, HashEmbedder(vecs.shape[1]))

    def run() -> int:
        try:
            for start in range(0, len(vecs), batch):
                part = vecs[start:start + batch]
                iv.put(list(range(start + 1, start + 1 + len(part))), part)
            assert iv.count() == len(vecs)
            return len(vecs)
        finally:
            store.close()
    return run


def pgvector_case(server: Any, vecs: np.ndarray, batch: int) -> Callable[[], int]:
    from memkit.store.local_pg import dsn_for
    from memkit.store.postgres import PostgresStore
    from memkit.vectors.pgvector_index import PgVectorIndex

    store = PostgresStore.open(dsn_for(server))
    index = PgVectorIndex(store, vecs.shape[1])

    def run() -> int:
        try:
            for start in range(0, len(vecs), batch):
                part = vecs[start:start + batch]
                index.add(np.arange(start + 1, start + 1 + len(part)), part)
            assert index.ntotal == len(vecs)
            return len(vecs)
        finally:
            store.close()
    return run


def write_many_case(server: Any, n: int, dim: int, batch: int) -> Callable[[], int]:
    from memkit import Memory
    from memkit.embed import HashEmbedder
    from memkit.store.local_pg import dsn_for

    mem = Memory.open(dsn_for(server), embedder=HashEmbedder(dim),
                      backend_options={"dense": {"index": "pgvector"}})
    texts = [f"passage {i} about the harbour, the river and invoice {i * 7}" for i in range(n)]

    def run() -> int:
        try:
            report = mem.write_many(texts, batch_size=batch)
            assert len(report.added) == n and mem.vectors.count() == n
            return n
        finally:
            mem.close()
    return run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vectors", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--report", default=str(REPO / "benchmarks" / "results" /
                                            "pg_bulk_load.md"))
    args = ap.parse_args(argv)
    from memkit.store.local_pg import start_local_postgres

    server, _ = start_local_postgres()
    vecs = vectors(args.vectors, args.dim)
    n = args.vectors
    cases: list[tuple[str, int, Callable[[bool], Callable[[], int]]]] = []
    for batch in (64, 256, 512, 5000, n):
        cases.append(("item_vectors.put", batch,
                      lambda _c, b=batch: item_vectors_case(server, vecs, b)))
    for batch in (5000,):
        cases.append(("pgvector add (HNSW)", batch,
                      lambda _c, b=batch: pgvector_case(server, vecs, b)))
    for batch in (64,):
        cases.append(("Memory.write_many (pgvector)", batch,
                      lambda _c, b=batch: write_many_case(server, n, args.dim, b)))
    lines = [f"{n:,} vectors of dim {args.dim}, one local Postgres (pgserver), rows/s, "
             "one transaction per batch", "",
             "| what | batch | row by row (executemany) | COPY | speed-up |",
             "|---|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    try:
        for what, batch, make in cases:
            old = timed(False, make(False))
            new = timed(True, make(True))
            line = f"| {what} | {batch:,} | {old:,.0f} | {new:,.0f} | {new / old:.2f}x |"
            lines.append(line)
            print(line, flush=True)
    finally:
        server.cleanup()
    cmd = "python benchmarks/pg_bulk_load.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    Path(args.report).write_text("# Postgres bulk load of vectors\n\n`" + cmd + "`\n\n"
                                 + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.report}")


if __name__ == "__main__":
    main()
