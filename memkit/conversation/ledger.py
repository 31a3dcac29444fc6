"""The fact ledger: which items assert which (subject, relation, object), and the rule that
keeps one object at a time for a single-valued relation, in event time.

Tables (component ``conversation``, portable SQL): ``conv_facts(root_id, scope_key, subject,
relation, object, single_valued)`` keyed by the fact item's chain (its ``root_id``, which
survives invalidation versions), and ``conv_fact_sources(fact_root, turn_id, observed_at)``
linking each fact to the turns that said it, and when (a re-added fact adds a source, not an
item). Subject, relation and object are stored normalised.

:func:`place` inserts a new fact for one key into the key's timeline, Graphiti-style but
with no deletion and with out-of-order arrivals handled:

* the same object already holding at the new fact's time ``t``: a no-op (a re-added fact
  never deletes or duplicates anything);
* facts with a conflicting object that hold at ``t`` end at ``t`` (a new system-time
  version with ``event_until = t``; audited with both ids); one that was said again after
  ``t`` resumes then (a continuation item from that later mention to its old end);
* the new fact holds from ``t`` until the earliest later start or mention of a conflicting
  fact, so a fact learnt late ("I lived in Berlin in 2019") slots into the past without
  ending what is true now. Ties go to the newcomer.

So for one key the value holding at event time ``e`` is always the object of the latest
mention at or before ``e`` (ties: the later arrival) -- the reference model the property
tests check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memkit.nlp import normalise_phrase
from memkit.store.sqlite import NewItem, Store
from memkit.temporal.truth import invalidate
from memkit.types import MemoryItem

MIGRATIONS = [
    """
    CREATE TABLE conv_facts (
        root_id INTEGER NOT NULL,
        scope_key TEXT NOT NULL,
        subject TEXT NOT NULL,
        relation TEXT NOT NULL,
        object TEXT NOT NULL,
        single_valued INTEGER NOT NULL,
        PRIMARY KEY (root_id, subject, relation, object)
    );
    CREATE INDEX conv_facts_key ON conv_facts(scope_key, subject, relation);
    CREATE TABLE conv_fact_sources (
        fact_root INTEGER NOT NULL,
        turn_id INTEGER NOT NULL,
        observed_at REAL NOT NULL,
        PRIMARY KEY (fact_root, turn_id)
    );
    """,
]


def ensure_tables(store: Store) -> None:
    store.migrate("conversation", MIGRATIONS)


def norm(text: str) -> str:
    return normalise_phrase(text) or text.strip().casefold()


@dataclass(frozen=True)
class Known:
    """A fact already in the record: the current version of its chain, its triple, and the
    times it was said within its event interval."""

    item: MemoryItem
    subject: str
    relation: str
    obj: str
    observed: tuple[float, ...] = ()

    def holds(self, t: float) -> bool:
        return self.item.holds_at(t)

    @property
    def start(self) -> float:
        return float("-inf") if self.item.event_from is None else self.item.event_from

    @property
    def end(self) -> float:
        return float("inf") if self.item.event_until is None else self.item.event_until

    def mentions_after(self, t: float) -> list[float]:
        return [o for o in self.observed if t < o < self.end]


def known_facts(store: Store, scope_key: str, subject: str,
                relation: str | None = None) -> list[Known]:
    """Current versions of the facts in scope about ``subject`` (and ``relation``)."""
    sql = ("SELECT f.root_id, f.subject, f.relation, f.object FROM conv_facts f "
           "WHERE f.scope_key = ? AND f.subject = ?")
    params: list[Any] = [scope_key, norm(subject)]
    if relation is not None:
        sql += " AND f.relation = ?"
        params.append(norm(relation))
    rows = store.conn.execute(sql + " ORDER BY f.root_id", params).fetchall()
    if not rows:
        return []
    roots = sorted({r[0] for r in rows})
    marks = ",".join("?" * len(roots))
    heads = {r[0]: r[1] for r in store.conn.execute(
        f"SELECT root_id, id FROM items WHERE root_id IN ({marks}) AND valid_until IS NULL",
        roots)}
    seen: dict[int, list[float]] = {}
    for root, at in store.conn.execute(
            f"SELECT fact_root, observed_at FROM conv_fact_sources WHERE fact_root IN ({marks})",
            roots):
        seen.setdefault(root, []).append(at)
    items = store.get_many(list(heads.values()))
    return [Known(items[heads[root]], subj, rel, obj, tuple(sorted(seen.get(root, []))))
            for root, subj, rel, obj in rows if root in heads and heads[root] in items]


def record_fact(store: Store, item: MemoryItem, scope_key: str,
                triples: tuple[tuple[str, str, str], ...], single_valued: frozenset[str],
                turn_ids: list[int], observed_at: float) -> None:
    root = item.root_id or item.id
    for subj, rel, obj in triples:
        store.conn.execute(
            "INSERT INTO conv_facts (root_id, scope_key, subject, relation, object, "
            "single_valued) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (root_id, subject, relation, "
            "object) DO NOTHING",
            (root, scope_key, norm(subj), norm(rel), norm(obj), int(rel in single_valued)))
    for tid in turn_ids:
        store.conn.execute(
            "INSERT INTO conv_fact_sources (fact_root, turn_id, observed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (fact_root, turn_id) DO NOTHING", (root, tid, observed_at))


def sources_of(store: Store, item_id: int) -> list[int]:
    """The turn ids that said a fact (any version of it), in id order."""
    root = store.get(item_id).root_id
    return [r[0] for r in store.conn.execute(
        "SELECT turn_id FROM conv_fact_sources WHERE fact_root = ? ORDER BY turn_id", (root,))]


@dataclass
class Placement:
    """Where a new fact goes: a duplicate (``duplicate_of``), or its end in event time and
    the facts it ends."""

    duplicate_of: MemoryItem | None = None
    until: float | None = None
    ends: tuple[Known, ...] = ()
    why: str = ""


def plan(t: float, obj: str, same_key: list[Known], rivals: list[Known]) -> Placement:
    """The placement of a fact with object ``obj`` at ``t``: ``same_key`` are the known
    facts with its subject and relation, ``rivals`` the known facts it contradicts (see the
    module docstring)."""
    o = norm(obj)
    same = [k for k in same_key if k.obj == o and k.holds(t)]
    if same:
        return Placement(duplicate_of=same[0].item,
                         why=f"already known: item {same[0].item.id} holds at this time")
    rivals = [k for k in rivals if k.obj != o]
    ends = tuple(k for k in rivals if k.holds(t))
    limits = [k.start for k in rivals if k.start > t] + [k.end for k in ends]
    limits += [m for k in ends for m in k.mentions_after(t)]
    until = min(limits) if limits else None
    if until == float("inf"):
        until = None
    return Placement(until=until, ends=ends)


def apply_ends(store: Store, placement: Placement, t: float, new_id: int, why: str,
               scope_key: str) -> list[dict[str, Any]]:
    """End the facts the placement cuts (each one audited naming ``new_id``); one that was
    mentioned again after ``t`` continues from that mention in a new item."""
    done = []
    for k in placement.ends:
        explanation = f"{why}: '{k.obj}' ends at the new fact's event time"
        later = k.mentions_after(t)
        version = invalidate(store, k.item, t, reason="contradicted", by=new_id,
                             explanation=explanation)
        done.append({"action": "invalidated", "item": k.item.id, "new_version": version,
                     "by": new_id, "at": t, "why": explanation})
        if later:
            done.append(_continue(store, k, min(later), scope_key, new_id))
        done.extend(_end_spent_turns(store, k.item.root_id or k.item.id, t, new_id))
    return done


def _continue(store: Store, k: Known, resume: float, scope_key: str, new_id: int
              ) -> dict[str, Any]:
    """The part of ``k`` after its next mention, as its own fact item."""
    from memkit.temporal.times import iso

    base = k.item.text.rsplit(" (as of ", 1)[0]
    meta = dict(k.item.metadata, continues=k.item.root_id, at=iso(resume))
    new = NewItem(text=f"{base} (as of {(iso(resume) or '')[:10]})", scope=k.item.scope,
                  source=k.item.source, metadata=meta, event_from=resume,
                  event_until=k.item.event_until)
    (iid, _), = store.insert_items([new])
    item = store.get(iid)
    rows = store.conn.execute(
        "SELECT s.turn_id, s.observed_at, f.single_valued FROM conv_fact_sources s "
        "JOIN conv_facts f ON f.root_id = s.fact_root WHERE s.fact_root = ? "
        "AND s.observed_at >= ?", (k.item.root_id, resume)).fetchall()
    single = frozenset({k.relation}) if any(r[2] for r in rows) else frozenset()
    for turn_id, at, _ in rows:
        record_fact(store, item, scope_key, ((k.subject, k.relation, k.obj),), single,
                    [turn_id], at)
    return {"action": "continued", "item": iid, "continues": k.item.id, "at": resume,
            "why": f"'{k.obj}' was said again after the new fact's time"}


def _head(store: Store, item_id: int) -> MemoryItem | None:
    row = store.conn.execute(
        "SELECT i.id FROM items i JOIN items o ON i.root_id = o.root_id "
        "WHERE o.id = ? AND i.valid_until IS NULL", (item_id,)).fetchone()
    return None if row is None else store.get(row[0])


def _end_spent_turns(store: Store, fact_root: int, t: float, new_id: int
                     ) -> list[dict[str, Any]]:
    """A source turn of an ended fact ends too once every fact drawn from it has ended (what
    it said no longer holds), so stale chat lines stop competing with current facts."""
    done = []
    for (turn_id,) in store.conn.execute(
            "SELECT turn_id FROM conv_fact_sources WHERE fact_root = ?", (fact_root,)
    ).fetchall():
        turn = _head(store, turn_id)
        if turn is None or not turn.holds_at(t):
            continue
        roots = [r[0] for r in store.conn.execute(
            "SELECT fact_root FROM conv_fact_sources WHERE turn_id = ?", (turn_id,))]
        heads = [_head(store, r) for r in roots]
        if all(h is None or h.event_until is not None for h in heads):
            version = invalidate(store, turn, t, reason="contradicted", by=new_id,
                                 explanation="every fact drawn from this turn has ended")
            done.append({"action": "invalidated", "item": turn.id, "new_version": version,
                         "by": new_id, "at": t, "why": "every fact drawn from this turn "
                         "has ended"})
    return done
