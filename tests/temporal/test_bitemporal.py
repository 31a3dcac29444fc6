"""Event time beside system time, against a reference model of random update sequences.

The model keeps, per version, its system interval [sys_from, sys_until) and event interval
[ev_from, ev_until); a read with ``as_of=S`` and ``valid_at=E`` must see exactly the versions
whose system interval contains S (or that are current, without as_of) and whose event interval
contains E (E = now by default, or S when only as_of is given)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pgtools import memory_target

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.errors import InvalidInput
from memkit.store.migrations import CORE
from memkit.store.sqlite import Store


@dataclass
class Version:
    id: int
    chain: int
    text: str
    sys_from: float
    ev_from: float | None
    ev_until: float | None
    sys_until: float | None = None

    def seen(self, as_of: float | None, valid_at: float | None) -> bool:
        if as_of is None:
            if self.sys_until is not None:
                return False
        elif not (self.sys_from <= as_of and (self.sys_until is None or as_of < self.sys_until)):
            return False
        if valid_at is None:
            return True
        return (self.ev_from is None or self.ev_from <= valid_at) and \
            (self.ev_until is None or valid_at < self.ev_until)


class Model:
    def __init__(self, mem: Memory) -> None:
        self.mem = mem
        self.versions: list[Version] = []
        self.times: list[float] = []
        self.n = 0

    def head(self, chain: int) -> Version:
        return next(v for v in self.versions if v.chain == chain and v.sys_until is None)

    def _record(self, new_id: int, chain: int, old: Version | None) -> None:
        item = self.mem.get(new_id)
        if old is not None:
            old.sys_until = self.mem.get(old.id).valid_until
            assert old.sys_until == item.valid_from
        self.versions.append(Version(new_id, chain, item.text, item.valid_from,
                                     item.event_from, item.event_until))
        self.times.append(item.valid_from)

    def write(self, ev_from: float | None, length: float | None) -> None:
        self.n += 1
        until = None if length is None or ev_from is None else ev_from + length
        iid = self.mem.write(f"fact number {self.n}", event_from=ev_from, event_until=until)
        self._record(iid, iid, None)

    def update(self, pick: int) -> None:
        chains = sorted({v.chain for v in self.versions})
        if not chains:
            return
        old = self.head(chains[pick % len(chains)])
        self.n += 1
        self._record(self.mem.update(old.id, f"fact number {self.n}"), old.chain, old)

    def invalidate(self, pick: int, at: float) -> None:
        heads = [self.head(c) for c in sorted({v.chain for v in self.versions})]
        heads = [h for h in heads if (h.ev_from is None or h.ev_from <= at)
                 and (h.ev_until is None or at < h.ev_until)]
        if not heads:
            return
        old = heads[pick % len(heads)]
        self._record(self.mem.invalidate(old.id, at=at), old.chain, old)

    def revert(self, pick: int) -> None:
        chains = sorted({v.chain for v in self.versions
                         if sum(w.chain == v.chain for w in self.versions) > 1})
        if not chains:
            return
        chain = chains[pick % len(chains)]
        head = self.head(chain)
        before = [v for v in self.versions if v.chain == chain and v.sys_until is not None]
        prev = max(before, key=lambda v: v.sys_until or 0)
        new_id = self.mem.revert(head.id)
        self._record(new_id, chain, head)
        got = self.versions[-1]
        assert (got.text, got.ev_from, got.ev_until) == (prev.text, prev.ev_from, prev.ev_until)

    def expected(self, as_of: float | None, valid_at: float | None) -> set[int]:
        return {v.id for v in self.versions if v.seen(as_of, valid_at)}


event_t = st.one_of(st.none(), st.integers(0, 20).map(float))
ops = st.lists(st.one_of(
    st.tuples(st.just("write"), event_t, st.one_of(st.none(), st.integers(1, 10).map(float))),
    st.tuples(st.just("update"), st.integers(0, 50)),
    st.tuples(st.just("invalidate"), st.integers(0, 50), st.integers(0, 30).map(float)),
    st.tuples(st.just("revert"), st.integers(0, 50)),
), min_size=1, max_size=14)


def _read_ids(mem: Memory, **kw: object) -> set[int]:
    return set(mem.read("fact number", k=1000, **kw).ids)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, probes=st.lists(st.integers(-1, 31).map(float), min_size=1, max_size=4))
def test_reads_agree_with_the_reference_model(ops: list[tuple], probes: list[float]) -> None:
    with Memory.open(memory_target(), embedder=HashEmbedder(dim=64)) as mem:
        model = Model(mem)
        model.write(5.0, None)
        for op in ops:
            getattr(model, op[0])(*op[1:])
        now = time.time()
        # default: current versions that hold now
        assert _read_ids(mem) == model.expected(None, now)
        # include_invalidated: every current version
        assert _read_ids(mem, include_invalidated=True) == model.expected(None, None)
        for e in probes:
            assert _read_ids(mem, valid_at=e) == model.expected(None, e)
        cuts = sorted(set(model.times))
        mids = [(a + b) / 2 for a, b in zip(cuts, cuts[1:], strict=False)]
        sys_probes = [cuts[0] - 1.0, *mids, cuts[-1] + 1.0]
        for s in sys_probes:
            # as_of alone: what memkit believed, at s, held at s
            assert _read_ids(mem, as_of=s) == model.expected(s, s)
            for e in probes:
                assert _read_ids(mem, as_of=s, valid_at=e) == model.expected(s, e)


def test_hand_worked_timeline() -> None:
    """Alice: Paris from 2020, Lyon from 2024 (told in 2024), a typo fixed later."""
    with Memory.open(memory_target(), embedder=HashEmbedder(dim=64)) as mem:
        paris = mem.write("Alice lives in Paris.", event_from="2020-01-01")
        t_told_paris = time.time()
        ended = mem.invalidate(paris, at="2024-03-01T00:00:00Z", reason="moved to Lyon")
        lyon = mem.write("Alice lives in Lyon.", event_from="2024-03-01T00:00:00Z")
        q = "Where does Alice live?"
        assert [h.text for h in mem.read(q)] == ["Alice lives in Lyon."]
        assert [h.text for h in mem.read(q, valid_at="2022-06-01")] == ["Alice lives in Paris."]
        old = mem.read(q, valid_at="2022-06-01")[0]
        assert old.invalidated and old.id == ended
        assert not mem.read(q)[0].invalidated
        # before anything was true: nothing
        assert mem.read(q, valid_at="2019-01-01").hits == []
        # what memkit knew right after the first write: Paris, still true then
        assert mem.read(q, as_of=t_told_paris, valid_at="2025-01-01").ids == [paris]
        both = mem.read(q, include_invalidated=True, k=5)
        assert sorted(both.ids) == sorted([ended, lyon])
        assert mem.audit(ended)[0]["reason"] == "moved to Lyon"


def test_event_time_bad_input_writes_nothing() -> None:
    with Memory.open(memory_target(), embedder=HashEmbedder(dim=64)) as mem:
        with pytest.raises(InvalidInput, match="event_until .* must be after event_from"):
            mem.write("x happened", event_from=10.0, event_until=5.0)
        with pytest.raises(InvalidInput, match="event_from: '2023-13-01' is not a valid ISO"):
            mem.write("x happened", event_from="2023-13-01")
        with pytest.raises(InvalidInput, match="valid_at"):
            mem.read("x", valid_at="next tuesday")
        with pytest.raises(InvalidInput, match="pass one of them"):
            mem.read("x", valid_at=1.0, include_invalidated=True)
        i = mem.write("y happened", event_from=10.0)
        with pytest.raises(InvalidInput, match="before its event_from"):
            mem.invalidate(i, at=5.0)
        with pytest.raises(InvalidInput, match="single version"):
            mem.revert(i)
        assert mem.stats()["versions"] == 1


def test_migration_keeps_existing_memories(tmp_path) -> None:
    """A database at core version 1 (before event time) opens, and its items stay valid."""
    import sqlite3

    db = tmp_path / "memory.db"
    conn = sqlite3.connect(db)
    conn.executescript(CORE[0])
    conn.execute("CREATE TABLE schema_migrations (component TEXT PRIMARY KEY, "
                 "version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_migrations VALUES ('core', 1)")
    conn.execute("INSERT INTO items (text, content_hash, namespace, scope_key, created_at, "
                 "valid_from, root_id) VALUES ('old memory', 'h', 'default', "
                 "'[\"default\", null, null, null]', 1.0, 1.0, 1)")
    conn.commit()
    conn.close()
    store = Store.open(db)
    item = store.get(1)
    assert (item.event_from, item.event_until, item.invalidated) == (None, None, False)
    from memkit.types import Scope

    assert list(store.allowed_ids(Scope(), holds_now=True)) == [1]
    assert list(store.allowed_ids(Scope(), valid_at=-5e9)) == [1]
    store.close()


def test_export_import_keeps_event_time() -> None:
    from memkit.portable import export_lines, import_lines

    with Memory.open(memory_target(), embedder=HashEmbedder(dim=64)) as src, \
            Memory.open(memory_target(), embedder=HashEmbedder(dim=64)) as dst:
        paris = src.write("Alice lives in Paris.", event_from="2020-01-01")
        src.invalidate(paris, at="2024-03-01")
        src.write("Alice lives in Lyon.", event_from="2024-03-01")
        import_lines(dst, list(export_lines(src)))
        q = "Where does Alice live?"
        assert [h.text for h in dst.read(q)] == ["Alice lives in Lyon."]
        assert [h.text for h in dst.read(q, valid_at="2021-01-01")] == ["Alice lives in Paris."]
        assert [(v.event_from, v.event_until) for v in dst.versions(dst.read(
            q, valid_at="2021-01-01")[0].id)] == \
            [(v.event_from, v.event_until) for v in src.versions(paris)]


def test_update_keeps_or_replaces_event_time() -> None:
    with Memory.open(memory_target(), embedder=HashEmbedder(dim=64)) as mem:
        i = mem.write("Alice lives in Paris.", event_from=100.0)
        j = mem.update(i, "Alice lives in Paris, France.")
        assert (mem.get(j).event_from, mem.get(j).event_until) == (100.0, None)
        k = mem.update(j, "Alice lived in Paris.", event=(100.0, 200.0))
        assert (mem.get(k).event_from, mem.get(k).event_until) == (100.0, 200.0)
        with pytest.raises(InvalidInput, match="event must be a tuple"):
            mem.update(k, "x", event=[1.0, 2.0])  # type: ignore[arg-type]
