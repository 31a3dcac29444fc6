from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from memkit.errors import InvalidInput, NotFound, StoreCorrupt
from memkit.store.migrations import CORE
from memkit.store.sqlite import NewItem, Store, content_hash
from memkit.types import Scope


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


def test_dedup_is_per_scope(store: Store) -> None:
    (a, new_a), = store.insert_items([NewItem("same text", Scope(user="u1"))])
    assert new_a
    assert store.insert_items([NewItem("same text", Scope(user="u1"))]) == [(a, False)]
    (b, new_b), = store.insert_items([NewItem("same text", Scope(user="u2"))])
    assert new_b and b != a
    # duplicates inside one batch collapse too
    res = store.insert_items([NewItem("t", Scope()), NewItem("t", Scope())])
    assert res[0][1] and res[1] == (res[0][0], False)


def test_supersede_keeps_history_and_validity(store: Store) -> None:
    (a, _), = store.insert_items([NewItem("v1", Scope())])
    t_mid = time.time()
    b = store.supersede(a, NewItem("v2", Scope()), reason="fix")
    old, new = store.get(a), store.get(b)
    assert old.valid_until is not None and old.valid_until >= t_mid
    assert new.valid_from == old.valid_until and new.supersedes == a and new.version == 2
    assert new.root_id == a and [v.id for v in store.versions(b)] == [a, b]
    assert list(store.allowed_ids(Scope())) == [b]
    assert list(store.allowed_ids(Scope(), as_of=t_mid - 1e-9)) == [a]
    with pytest.raises(InvalidInput, match="superseded"):
        store.supersede(a, NewItem("v3", Scope()))


def test_delete_is_all_or_nothing_and_audited(store: Store) -> None:
    ids = [i for i, _ in store.insert_items([NewItem(f"t{i}", Scope()) for i in range(3)])]
    with pytest.raises(NotFound, match="999"):
        store.delete([ids[0], 999])
    assert store.count() == 3  # nothing deleted
    v2 = store.supersede(ids[0], NewItem("t0 v2", Scope()))
    assert store.delete([v2], reason="gdpr") == sorted([ids[0], v2])  # the whole chain
    ops = [(r["op"], r["item_id"], r["reason"]) for r in store.audit_log()]
    assert ("delete", ids[0], "gdpr") in ops and ("delete", v2, "gdpr") in ops
    assert store.count() == 2


def test_allowed_ids_respects_scope_expiry_and_cache_invalidation(store: Store) -> None:
    now = time.time()
    rows = store.insert_items([
        NewItem("a", Scope(namespace="n1", user="u")),
        NewItem("b", Scope(namespace="n1", user="v")),
        NewItem("c", Scope(namespace="n2", user="u")),
        NewItem("d", Scope(namespace="n1", user="u"), expires_at=now + 100),
    ])
    a, b, c, d = (i for i, _ in rows)
    assert list(store.allowed_ids(Scope(namespace="n1"), now=now)) == [a, b, d]
    assert list(store.allowed_ids(Scope(namespace="n1", user="u"), now=now)) == [a, d]
    assert list(store.allowed_ids(Scope(namespace="n1", user="u"), now=now + 200)) == [a]
    (e, _), = store.insert_items([NewItem("e", Scope(namespace="n1", user="u"))])
    assert list(store.allowed_ids(Scope(namespace="n1", user="u"), now=now)) == [a, d, e]


def test_changes_feed_orders_every_mutation(store: Store) -> None:
    (a, _), = store.insert_items([NewItem("a", Scope())])
    b = store.supersede(a, NewItem("b", Scope()))
    store.delete([b])
    assert [(c.op, c.item_id) for c in store.changes_since(0)] == [
        ("write", a), ("update", b), ("delete", a), ("delete", b)]
    assert store.changes_since(store.last_seq()) == []


def test_open_rejects_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    bad = tmp_path / "memory.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreCorrupt, match="memory.db"):
        Store.open(bad)


def test_failed_transaction_rolls_back(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction() as conn:
            store.insert_items([NewItem("x", Scope())])
            conn.execute("INSERT INTO items (id, text) VALUES (1, NULL)")
    assert store.count() == 0 and store.last_seq() == 0
