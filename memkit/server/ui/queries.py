"""Read-only SQL the inspector needs and the Memory API does not offer (yet).

Every query here is a plain ``SELECT`` on the memory's store connection; none writes. They
exist because the public API has no filtered, newest-first page of items and no per-item view
of a derived index. The lead is redesigning the backends; when they grow such views, the
functions below should call them instead. The queries, by function:

* :func:`browse_page`: ``SELECT <item columns> FROM items WHERE <scope> [AND filters]
  AND id < ? ORDER BY id DESC LIMIT ?`` (or ``id > ? ORDER BY id ASC`` for the previous page):
  keyset paging, so page 1,000 costs what page 1 costs (no ``OFFSET``). For a large scope the
  scope columns are written ``+namespace = ?`` so SQLite walks the primary key and stops
  after one page, instead of sorting the whole scope out of ``items_scope``; plus
  ``SELECT MAX(id) FROM items`` (the table size bound that choice needs).
* :func:`hipporag_view`: ``hipporag_passages`` (status of the item's passage node),
  ``hipporag_mentions JOIN hipporag_phrases`` (phrases it mentions) and ``hipporag_support
  JOIN hipporag_facts JOIN hipporag_phrases`` (facts it supports, with their end phrases).
* :func:`panini_view`: ``panini_qa LEFT JOIN panini_phrases`` (the item's QA pairs) and
  ``panini_entities WHERE item_id = ?`` (names of the answers).
* :func:`still_there`: ``SELECT id FROM hipporag_phrases|hipporag_facts WHERE id IN (...)``
  (after a delete: which of the item's phrases/facts the graph dropped).

Callers check first that the principal may see the item (``ScopedMemory.get``); every query
is keyed by that item's id, or confined by the principal's scope in SQL (browse).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memkit.errors import InvalidInput, MemkitError
from memkit.memory import Memory
from memkit.types import SCOPE_FIELDS, MemoryItem, Scope

_ITEM_COLS = ("id, text, content_hash, namespace, user, agent, session, source, created_at, "
              "confidence, expires_at, metadata, version, root_id, supersedes, valid_from, "
              "valid_until")
STATUSES = ("current", "superseded", "all")
MAX_PAGE = 200


@dataclass
class BrowseFilter:
    """What the browse page asks for (scope is already confined to the caller's key)."""

    scope: Scope
    q: str | None = None
    source: str | None = None
    since: float | None = None
    until: float | None = None
    status: str = "current"

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise InvalidInput(f"status must be one of {list(STATUSES)}, got {self.status!r}")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidInput("time range: 'since' is after 'until'")


@dataclass
class Page:
    items: list[MemoryItem]
    older: int | None  # cursor: pass as before= for the next (older) page
    newer: int | None  # cursor: pass as after= for the previous (newer) page


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(f: BrowseFilter, scan: bool) -> tuple[list[str], list[Any]]:
    """SQL conditions; ``scan``: keep SQLite off the scope index (``+col``), so that it walks
    the primary key newest first and stops after one page instead of sorting the scope."""
    clauses: list[str] = []
    params: list[Any] = []
    for name in SCOPE_FIELDS:
        value = getattr(f.scope, name)
        if value is not None:
            clauses.append(f"{'+' if scan else ''}{name} = ?")
            params.append(value)
    if f.status == "current":
        clauses.append("valid_until IS NULL")
    elif f.status == "superseded":
        clauses.append("valid_until IS NOT NULL")
    if f.q:
        clauses.append("text LIKE ? ESCAPE '\\'")
        params.append(f"%{_like(f.q)}%")
    if f.source:
        clauses.append("source LIKE ? ESCAPE '\\'")
        params.append(f"{_like(f.source)}%")
    if f.since is not None:
        clauses.append("created_at >= ?")
        params.append(f.since)
    if f.until is not None:
        clauses.append("created_at < ?")
        params.append(f.until)
    return clauses, params


def _item(row: Any) -> MemoryItem:
    (iid, text, chash, ns, user, agent, session, source, created, conf, expires, meta, version,
     root, supersedes, vfrom, vuntil) = row
    return MemoryItem(
        id=iid, text=text, scope=Scope(namespace=ns, user=user, agent=agent, session=session),
        source=source, created_at=created, confidence=conf, expires_at=expires,
        metadata=json.loads(meta), content_hash=chash, version=version, root_id=root,
        supersedes=supersedes, valid_from=vfrom, valid_until=vuntil)


def walk_primary_key(scope_rows: int, table_rows: int, limit: int) -> bool:
    """Whether a page is cheaper by walking ids newest first (about ``limit * table_rows /
    scope_rows`` rows read) than by sorting the scope's rows from its index (``scope_rows``).

    >>> walk_primary_key(90_000, 100_000, 50), walk_primary_key(300, 100_000, 50)
    (True, False)
    """
    return scope_rows * scope_rows >= limit * max(table_rows, 1)


def browse_page(memory: Memory, f: BrowseFilter, *, before: int | None = None,
                after: int | None = None, limit: int = 50,
                scope_rows: int | None = None) -> Page:
    """One page of items, newest first. ``before``: ids below it (older page); ``after``: ids
    above it (newer page). Keyset paging on the primary key. ``scope_rows``: the scope's item
    count if the caller has it (it picks the query plan, see :func:`walk_primary_key`)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    if scope_rows is None:
        scope_rows = memory.store.count(f.scope)
    table_rows = int(memory.store.conn.execute(
        "SELECT COALESCE(MAX(id), 0) FROM items").fetchone()[0])  # an O(1) upper bound
    clauses, params = _where(f, walk_primary_key(scope_rows, table_rows, limit))
    if after is not None:
        clauses.append("id > ?")
        params.append(after)
        order = "ASC"
    else:
        if before is not None:
            clauses.append("id < ?")
            params.append(before)
        order = "DESC"
    sql = (f"SELECT {_ITEM_COLS} FROM items WHERE {' AND '.join(clauses) or '1'} "
           f"ORDER BY id {order} LIMIT ?")
    rows = memory.store.conn.execute(sql, [*params, limit + 1]).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    if after is not None:
        rows.reverse()
    items = [_item(r) for r in rows]
    if not items:
        return Page([], None, None)
    # older exists when this is a forward page with more rows, or any page reached via after
    older = items[-1].id if (more if after is None else True) else None
    newer = items[0].id if (before is not None or (after is not None and more)) else None
    return Page(items, older, newer)


# ---- per-item views of the derived indexes ------------------------------------------------
@dataclass
class IndexView:
    """Where one item lives in one backend; ``rows`` is what the template lists."""

    backend: str
    kind: str
    present: bool
    summary: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def backend_kind(backend: Any) -> str:
    return str(getattr(backend, "name", type(backend).__name__))


def dense_view(name: str, backend: Any, item_id: int) -> IndexView:
    """The item's vector in the shared item-vector store, and whether the dense index holds
    it (``item_id in backend.index``)."""
    vec = backend.ctx.vectors.get([item_id]).get(item_id)
    if vec is None:
        return IndexView(name, "dense", False, "no vector stored for this item")
    pg = getattr(backend, "pg", None)  # a pgvector index lives in Postgres
    indexed = item_id in pg.present([item_id]) if pg is not None else item_id in backend.index
    norm = float(np.linalg.norm(vec))
    nonzero = np.flatnonzero(vec)
    return IndexView(name, "dense", indexed, f"vector of dim {len(vec)}, norm {norm:.3f}, "
                     f"{len(nonzero)} non-zero components"
                     f"{'' if indexed else '; NOT in the dense index (lagging?)'}",
                     [{"dim": len(vec), "norm": round(norm, 4),
                       "head": [f"{int(i)}: {float(vec[i]):.3f}" for i in nonzero[:8]]}])


def hipporag_view(name: str, memory: Memory, item_id: int) -> IndexView:
    conn = memory.store.conn
    passage = conn.execute(
        "SELECT status, extractor, error, attempts FROM hipporag_passages WHERE item_id = ?",
        (item_id,)).fetchone()
    phrases = conn.execute(
        "SELECT p.id, p.surface FROM hipporag_mentions m JOIN hipporag_phrases p "
        "ON p.id = m.phrase_id WHERE m.item_id = ? ORDER BY p.surface", (item_id,)).fetchall()
    facts = conn.execute(
        "SELECT f.id, s.surface, f.pred, o.surface, f.text FROM hipporag_support su "
        "JOIN hipporag_facts f ON f.id = su.fact_id JOIN hipporag_phrases s ON s.id = f.subj "
        "JOIN hipporag_phrases o ON o.id = f.obj WHERE su.item_id = ? ORDER BY f.id",
        (item_id,)).fetchall()
    if passage is None:
        return IndexView(name, "hipporag", False, "no passage node for this item")
    status, extractor, error, attempts = passage
    summary = (f"passage node ({status}, extractor {extractor or '-'}"
               f"{', error: ' + error if error else ''}); {len(phrases)} phrases, "
               f"{len(facts)} facts")
    rows: list[dict[str, Any]] = [{"phrase_id": p, "phrase": s} for p, s in phrases]
    rows += [{"fact_id": i, "subject": s, "predicate": p, "object": o, "fact": t}
             for i, s, p, o, t in facts]
    return IndexView(name, "hipporag", status == "ok", summary, rows)


def panini_view(name: str, memory: Memory, backend: Any, item_id: int) -> IndexView:
    status = backend.status(item_id) if hasattr(backend, "status") else None
    conn = memory.store.conn
    names = dict(conn.execute("SELECT id, name FROM panini_entities WHERE item_id = ?",
                              (item_id,)).fetchall())
    qa = conn.execute(
        "SELECT q.id, q.question, q.answers, ph.phrase FROM panini_qa q LEFT JOIN "
        "panini_phrases ph ON ph.id = q.phrase_id WHERE q.item_id = ? ORDER BY q.id",
        (item_id,)).fetchall()
    rows = []
    for qid, question, answers, phrase in qa:
        said = [names.get(e, f"entity {e}") if e is not None else str(lit)
                for e, lit in json.loads(answers)]
        rows.append({"qa_id": qid, "question": question,
                     "answers": ", ".join(said) or "(none)", "phrase": phrase})
    if status is None:
        return IndexView(name, "panini", bool(rows), "no workspace for this item", rows)
    how = status.get("status")
    summary = (f"workspace {how} (writer {status.get('writer') or '-'}"
               f"{', ' + str(status['reason']) if status.get('reason') else ''}); "
               f"{len(names)} entities, {len(rows)} QA pairs")
    return IndexView(name, "panini", how == "ok", summary, rows)


def index_views(memory: Memory, item_id: int) -> list[IndexView]:
    """The item in every open backend. A failing view is reported, never raised."""
    out: list[IndexView] = []
    for name, backend in memory.backends.items():
        kind = backend_kind(backend)
        try:
            if kind == "dense" and hasattr(backend, "index"):
                out.append(dense_view(name, backend, item_id))
            elif kind == "hipporag":
                out.append(hipporag_view(name, memory, item_id))
            elif kind == "panini":
                out.append(panini_view(name, memory, backend, item_id))
            else:
                stats = backend.stats()
                out.append(IndexView(name, kind, False,
                                     "no per-item view for this backend; its stats: "
                                     + json.dumps(stats, default=str)[:300]))
        except (sqlite3.Error, MemkitError, AttributeError, KeyError, TypeError,
                ValueError) as exc:
            out.append(IndexView(name, kind, False, "unavailable", error=str(exc)))
    return out


def still_there(memory: Memory, table: str, ids: list[int]) -> set[int]:
    """Which of these phrase/fact ids the graph still has (``table``: phrases or facts)."""
    if table not in ("phrases", "facts") or not ids:
        return set()
    marks = ",".join("?" * len(ids))
    return {r[0] for r in memory.store.conn.execute(
        f"SELECT id FROM hipporag_{table} WHERE id IN ({marks})", ids).fetchall()}


@dataclass
class Removed:
    """What a delete took out of one backend."""

    backend: str
    kind: str
    lines: list[str]


def removal_report(memory: Memory, before: dict[int, list[IndexView]]) -> list[Removed]:
    """Compare the per-item views taken before a delete with the indexes after it."""
    out: list[Removed] = []
    for name, backend in memory.backends.items():
        kind = backend_kind(backend)
        lines: list[str] = []
        views = [(iid, v) for iid, vs in before.items() for v in vs if v.backend == name]
        for iid, view in views:
            after = {v.backend: v for v in index_views(memory, iid)}.get(name)
            was = view.summary if view.present or view.rows else "(was not indexed)"
            now = "gone" if after is None or not (after.present or after.rows) else \
                f"STILL PRESENT: {after.summary}"
            lines.append(f"item {iid}: {was} -> {now}")
            if kind == "hipporag":
                phrase_ids = [r["phrase_id"] for r in view.rows if "phrase_id" in r]
                fact_ids = [r["fact_id"] for r in view.rows if "fact_id" in r]
                kept_p = still_there(memory, "phrases", phrase_ids)
                kept_f = still_there(memory, "facts", fact_ids)
                gone_p = [r["phrase"] for r in view.rows if r.get("phrase_id") in
                          set(phrase_ids) - kept_p]
                gone_f = [r["fact"] for r in view.rows if r.get("fact_id") in
                          set(fact_ids) - kept_f]
                lines.append(f"  phrase nodes removed (no passage left mentions them): "
                             f"{', '.join(gone_p) or 'none'}")
                lines.append(f"  facts removed (no passage left supports them): "
                             f"{'; '.join(gone_f) or 'none'}")
        out.append(Removed(name, kind, lines))
    return out
