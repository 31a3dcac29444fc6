"""pgvector as the dense index: the same neighbours and scores as faiss on the same vectors,
scope filtering in SQL that still returns k hits for a selective scope, and an index that
every process on the database shares (nothing rebuilt on open)."""

from __future__ import annotations

from pathlib import Path

import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.errors import ConfigError

pytest.importorskip("psycopg", reason="needs the [postgres] extra")
PG = {"dense": {"index": "pgvector"}}
TEXTS = [f"note {i} about {['cats', 'trains', 'tea', 'rain', 'jazz'][i % 5]} and item {i * 7}"
         for i in range(300)]
QUERIES = ["cats", "a note about trains", "item 49", "jazz and rain"]


def _hits(mem: Memory, q: str, scope: object = None, k: int = 5) -> list[tuple[int, float]]:
    return [(h.id, h.score) for h in mem.read(q, k=k, scope=scope).hits]  # type: ignore[arg-type]


def _tied(hits: list[tuple[int, float]]) -> list[set[int]]:
    """The ranking as groups of ids with equal scores (float32 vs float64 rounding)."""
    groups: list[tuple[float, set[int]]] = []
    for i, s in hits:
        if groups and abs(groups[-1][0] - s) < 1e-5:
            groups[-1][1].add(i)
        else:
            groups.append((s, {i}))
    return [g for _, g in groups]


def test_pgvector_finds_what_faiss_finds(tmp_path: Path, pg_dsn: str) -> None:
    users = [{"user": f"u{i % 30}"} for i in range(len(TEXTS))]
    with Memory.open(tmp_path / "faiss", embedder=HashEmbedder(64)) as ref, \
            Memory.open(pg_dsn, embedder=HashEmbedder(64), backend_options=PG) as pg:
        for m in (ref, pg):
            for text, scope in zip(TEXTS, users, strict=True):
                m.write(text, scope=scope)
        assert pg.stats()["backends"]["dense"]["kind"] == "pgvector-hnsw"
        for q in QUERIES:
            for scope in (None, {"user": "u7"}):  # the whole memory, and 10 of 300 items
                want, got = _hits(ref, q, scope), _hits(pg, q, scope)
                assert len(got) == 5  # a selective scope still fills k (iterative scan)
                assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
                # the same ids, ties in any order (a tie at the k-th place may go either way)
                assert _tied(got)[:-1] == _tied(want)[:-1], (q, scope)
        doomed = _hits(pg, "cats")[0][0]
        pg.delete([doomed])
        assert doomed not in [i for i, _ in _hits(pg, "cats", k=20)]


def test_the_index_is_shared_not_rebuilt(pg_dsn: str) -> None:
    with Memory.open(pg_dsn, embedder=HashEmbedder(64), backend_options=PG) as a:
        a.write_many(TEXTS[:50])
        with Memory.open(pg_dsn) as b:  # a second process's view: the same table
            assert b.stats()["backends"]["dense"]["vectors"] == 50
            a.write("a brand new note about owls")
            assert b.read("owls", k=1)[0].text == "a brand new note about owls"


def test_pgvector_needs_postgres(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a Postgres memory"):
        Memory.open(tmp_path / "m", embedder=HashEmbedder(64), backend_options=PG)


def test_a_missing_extension_names_the_fix(pg_server: object) -> None:
    import uuid

    name = f"app_{uuid.uuid4().hex[:8]}"
    pg_server.psql(f"CREATE ROLE {name} LOGIN; CREATE DATABASE {name} OWNER {name};")  # type: ignore[attr-defined]
    uri = pg_server.get_uri()  # type: ignore[attr-defined]
    dsn = uri.replace("postgres:@/postgres", f"{name}@/{name}") + "&schema=m"
    assert dsn != uri + "&schema=m"
    with pytest.raises(ConfigError, match="CREATE EXTENSION vector as a superuser"):
        Memory.open(dsn, embedder=HashEmbedder(8), backend_options=PG)
    with Memory.open(dsn, embedder=HashEmbedder(8)) as mem:  # faiss needs no extension
        mem.write("x")
        assert mem.stats()["items"] == 1
