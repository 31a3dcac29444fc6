"""What is particular to the SQLite store (WAL, file checks); what every store must do is
in tests/store/test_conformance.py, run on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest

from memkit.errors import StoreCorrupt
from memkit.store.migrations import CORE
from memkit.store.sqlite import Store, content_hash


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "memory.db")
    yield s
    s.close()


def test_file_store_uses_wal_and_records_migrations(store: Store) -> None:
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute(
        "SELECT version FROM schema_migrations WHERE component='core'").fetchone()[0] == len(CORE)
    # a component's migrations apply once, in order, and only the new ones on upgrade
    assert store.migrate("x", ["CREATE TABLE x_a (v INT)"]) == 1
    assert store.migrate("x", ["CREATE TABLE x_a (v INT)", "CREATE TABLE x_b (v INT)"]) == 2
    assert {"x_a", "x_b"} <= set(store.table_names())
    with pytest.raises(StoreCorrupt, match="newer than this memkit"):
        store.migrate("x", ["CREATE TABLE x_a (v INT)"])


def test_content_hash_ignores_whitespace_reflow_only() -> None:
    assert content_hash("a  b\nc") == content_hash(" a b c ")
    assert content_hash("a b c") != content_hash("a b C")


def test_open_rejects_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    bad = tmp_path / "memory.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreCorrupt, match="memory.db"):
        Store.open(bad)
