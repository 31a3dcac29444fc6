"""The Store: memkit's system of record on one SQLite file (WAL mode), with the standard sqlite3.

Everything a memory knows is here; every index is derived from it. Each mutation appends to the
``audit`` table in the same transaction, so the audit log doubles as the change feed that
backends replay from their watermark.

>>> s = Store.open(":memory:")
>>> [(i, new)] = s.insert_items([NewItem("Alice lives in Paris.", Scope())])
>>> new, s.get(i).text
(True, 'Alice lives in Paris.')
>>> s.insert_items([NewItem("Alice lives in Paris.", Scope())])[0][1]   # duplicate in scope
False
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memkit.errors import InvalidInput, NotFound, StoreCorrupt
from memkit.store.migrations import CORE
from memkit.types import SCOPE_FIELDS, MemoryItem, Scope

_ITEM_COLS = (
    "id, text, content_hash, namespace, user, agent, session, source, created_at, confidence, "
    "expires_at, metadata, version, root_id, supersedes, valid_from, valid_until, event_from, "
    "event_until"
)

#: audit ops that record an event about an item without changing it: the change feed's
#: consumers (the indexer) skip them
EVENT_OPS = frozenset({"adapter_stale"})


def content_hash(text: str) -> str:
    """SHA-256 of the NFC-normalised text with collapsed whitespace (so trivial reflows dedup)."""
    norm = " ".join(unicodedata.normalize("NFC", text).split())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def scope_key(scope: Scope) -> str:
    return json.dumps([getattr(scope, f) for f in SCOPE_FIELDS], ensure_ascii=False)


@dataclass
class NewItem:
    """An item about to be written (validated by the caller)."""

    text: str
    scope: Scope
    source: str | None = None
    confidence: float = 1.0
    expires_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    event_from: float | None = None  # event time (when it holds in the world); None = always
    event_until: float | None = None


@dataclass(frozen=True)
class Change:
    """One row of the change feed: ``op`` is write, update, delete or expire."""

    seq: int
    op: str
    item_id: int


def _row_to_item(row: Sequence[Any]) -> MemoryItem:
    (iid, text, chash, ns, user, agent, session, source, created, conf, expires, meta, version,
     root, supersedes, vfrom, vuntil, efrom, euntil) = row
    return MemoryItem(
        id=iid, text=text, scope=Scope(namespace=ns, user=user, agent=agent, session=session),
        source=source, created_at=created, confidence=conf, expires_at=expires,
        metadata=json.loads(meta), content_hash=chash, version=version,
        root_id=root, supersedes=supersedes, valid_from=vfrom, valid_until=vuntil,
        event_from=efrom, event_until=euntil,
    )


def _storable_id(item_id: object) -> bool:
    """An id SQLite can hold: a positive 64-bit int (anything else exists nowhere)."""
    return isinstance(item_id, (int, np.integer)) and not isinstance(item_id, bool) \
        and 0 < int(item_id) < 2**63


def _scope_sql(scope: Scope, alias: str = "") -> tuple[str, list[Any]]:
    clauses, params = [], []
    for f in SCOPE_FIELDS:
        v = getattr(scope, f)
        if v is not None:
            clauses.append(f"{alias}{f} = ?")
            params.append(v)
    return " AND ".join(clauses) or "TRUE", params


def visible_sql(scope: Scope, as_of: float | None, now: float, alias: str = "",
                event_at: float | None = None) -> tuple[str, list[Any]]:
    """The WHERE clause of the items a read may see (scope; current, or valid at ``as_of``;
    holding in event time at ``event_at`` when given; not expired at ``now``), over
    ``items`` named ``alias`` (e.g. ``"i."``).

    >>> where, params = visible_sql(Scope(namespace="n"), None, 5.0, "i.")
    >>> where.split(" AND ")
    ['i.namespace = ?', 'i.valid_until IS NULL', '(i.expires_at IS NULL OR i.expires_at > ?)']
    >>> params
    ['n', 5.0]
    """
    where, params = _scope_sql(scope, alias)
    if as_of is None:
        where += f" AND {alias}valid_until IS NULL"
    else:
        where += (f" AND {alias}valid_from <= ? AND ({alias}valid_until IS NULL OR "
                  f"{alias}valid_until > ?)")
        params += [as_of, as_of]
    if event_at is not None:
        where += (f" AND ({alias}event_from IS NULL OR {alias}event_from <= ?)"
                  f" AND ({alias}event_until IS NULL OR {alias}event_until > ?)")
        params += [event_at, event_at]
    where += f" AND ({alias}expires_at IS NULL OR {alias}expires_at > ?)"
    return where, [*params, now]


class _Rows:
    """A materialised result: what callers use of a cursor (fetchone/fetchall/iteration), of
    sqlite3 or of psycopg (which has no ``lastrowid``: portable SQL uses ``RETURNING id``)."""

    def __init__(self, cursor: Any) -> None:
        self.rows = cursor.fetchall() if cursor.description is not None else []
        self.lastrowid = getattr(cursor, "lastrowid", None)
        self.rowcount = cursor.rowcount
        self._pos = 0

    def fetchone(self) -> Any:
        if self._pos >= len(self.rows):
            return None
        self._pos += 1
        return self.rows[self._pos - 1]

    def fetchall(self) -> list[Any]:
        rest, self._pos = self.rows[self._pos:], len(self.rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class LockedConnection:
    """The shared sqlite3 connection, used by one thread at a time.

    SQLite's serialized mode holds the connection mutex during a COMMIT's busy wait, so a
    statement from another thread on the same connection could deadlock with it; every
    statement therefore runs under the store's lock, and results are fetched before the lock
    is released. A writer holds the lock for its whole transaction, so readers never see
    uncommitted rows."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self.raw = conn
        self._lock = lock

    def execute(self, sql: str, params: Any = ()) -> _Rows:
        with self._lock:
            return _Rows(self.raw.execute(sql, params))

    def executemany(self, sql: str, seq: Any) -> _Rows:
        with self._lock:
            return _Rows(self.raw.executemany(sql, seq))

    def close(self) -> None:
        with self._lock:
            self.raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class Store:
    """The system of record. Thread-safe: one connection, used under one lock."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._lock = threading.RLock()
        self.conn: Any = LockedConnection(conn, self._lock)  # a protocol.SQLConnection
        self.path = path
        self._depth = 0
        self._generation = 0
        self._allowed_cache: dict[tuple[Any, ...], tuple[np.ndarray, float]] = {}
        self.migrate("core", CORE)

    # ---- opening and schema -------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, durability: str = "full") -> Store:
        """Open (creating if needed) the SQLite file at ``path`` (``":memory:"`` for tests).

        ``durability="full"``: each commit is fsynced (WAL, ``synchronous=FULL``) before it
        returns; ``"normal"``: WAL with ``synchronous=NORMAL`` (a process crash loses nothing
        committed; a power loss may lose the last commits)."""
        target = str(path)
        if durability not in ("full", "normal"):
            raise InvalidInput(f"durability must be 'full' or 'normal', got {durability!r}")
        try:
            conn = sqlite3.connect(
                target, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            conn.execute("PRAGMA busy_timeout = 30000")
            if target != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {durability.upper()}")
            conn.execute(f"PRAGMA fullfsync = {int(durability == 'full')}")  # macOS: F_FULLFSYNC
            conn.execute("PRAGMA secure_delete = ON")  # deleted rows leave no bytes behind
            conn.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreCorrupt(f"cannot open memory database {target}: {exc}") from exc
        return cls(conn, None if target == ":memory:" else Path(target))

    def migrate(self, component: str, migrations: Sequence[str]) -> int:
        """Apply the not-yet-applied numbered ``migrations`` of ``component``; returns version."""
        with self.transaction():
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            row = self.conn.execute(
                "SELECT version FROM schema_migrations WHERE component = ?", (component,)
            ).fetchone()
            current = row[0] if row else 0
            if current > len(migrations):
                raise StoreCorrupt(
                    f"{component} schema is at version {current}, newer than this memkit "
                    f"({len(migrations)}): upgrade memkit"
                )
            for sql in migrations[current:]:
                for statement in sql.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
            self.conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?) ON CONFLICT (component) "
                "DO UPDATE SET version = excluded.version", (component, len(migrations)))
        return len(migrations)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A re-entrant write transaction (BEGIN IMMEDIATE); rolls back on any exception."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self.conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self.conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self.conn.execute("COMMIT")
                self._generation += 1

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """A consistent read of several statements (a deferred read transaction in WAL
        mode): what other processes commit meanwhile is not seen halfway. Inside a write
        transaction it is that transaction."""
        with self._lock:
            if self._depth or self.conn.raw.in_transaction:
                yield self.conn
                return
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                self.conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # ---- what differs between engines (PostgresStore overrides these) --------------------
    kind = "sqlite"

    @property
    def location(self) -> str:
        """Where the record lives, for messages (a file path, or a DSN without password)."""
        return str(self.path) if self.path is not None else ":memory:"

    def table_names(self) -> list[str]:
        """Every table in the database (the record's and each component's)."""
        return [r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]

    def size_bytes(self) -> int:
        """Bytes the record's database takes (the file and its WAL)."""
        if self.path is None:
            return 0
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*")
                   if p.is_file())

    def _data_version(self) -> int:
        """Changes when another connection commits (cache invalidation)."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def compact(self) -> bool:
        """After an erasure: leave no deleted row's bytes in the files (checkpoint and
        truncate the WAL; ``secure_delete`` already zeroed the pages). False when another
        connection's open snapshot kept it from completing (retried on a later erasure)."""
        if self.path is None:
            return True
        row = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not (row and row[0])

    # ---- writing ------------------------------------------------------------------------
    def record_events(self, events: Sequence[tuple[str, int, str | None,
                                                   dict[str, Any] | None]]) -> None:
        """Audit rows ``(op, item_id, reason, detail)`` that note something about an item
        without changing it (``op`` in :data:`EVENT_OPS`; the indexer skips them), in one
        transaction (or the caller's)."""
        bad = sorted({op for op, *_ in events if op not in EVENT_OPS})
        if bad:
            raise InvalidInput(f"not an event op: {bad} (events: {sorted(EVENT_OPS)})")
        now = time.time()
        with self.transaction():
            for op, item_id, reason, detail in events:
                self._audit(op, int(item_id), now, reason, detail)

    def _audit(self, op: str, item_id: int, at: float, reason: str | None = None,
               detail: dict[str, Any] | None = None) -> None:
        self.conn.execute(
            "INSERT INTO audit (op, item_id, at, reason, detail) VALUES (?, ?, ?, ?, ?)",
            (op, item_id, at, reason, json.dumps(detail) if detail else None),
        )

    def insert_items(self, items: Sequence[NewItem]) -> list[tuple[int, bool]]:
        """Insert items in one transaction; returns ``(id, created)`` per item.

        An item whose text (by content hash) is already current in the same scope is not written
        again: ``(existing_id, False)`` is returned, also for duplicates within ``items``.
        """
        out: list[tuple[int, bool]] = []
        with self.transaction() as conn:
            for it in items:
                key, chash = scope_key(it.scope), content_hash(it.text)
                row = conn.execute(
                    "SELECT id FROM items WHERE scope_key = ? AND content_hash = ? "
                    "AND valid_until IS NULL", (key, chash),
                ).fetchone()
                if row:
                    out.append((row[0], False))
                    continue
                now = it.created_at if it.created_at is not None else time.time()
                cur = conn.execute(
                    "INSERT INTO items (text, content_hash, namespace, user, agent, session, "
                    "scope_key, source, created_at, confidence, expires_at, metadata, version, "
                    "valid_from, event_from, event_until) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,1,?,?,?) RETURNING id",
                    (it.text, chash, it.scope.namespace, it.scope.user, it.scope.agent,
                     it.scope.session, key, it.source, now, it.confidence, it.expires_at,
                     json.dumps(it.metadata, ensure_ascii=False), now, it.event_from,
                     it.event_until),
                )
                iid = int(cur.fetchone()[0])
                conn.execute("UPDATE items SET root_id = ? WHERE id = ?", (iid, iid))
                self._audit("write", iid, now, detail={"source": it.source} if it.source else None)
                out.append((iid, True))
        return out

    def supersede(self, old_id: int, new: NewItem, reason: str | None = None,
                  detail: dict[str, Any] | None = None) -> int:
        """Write ``new`` as the next version of current item ``old_id``; returns the new id.
        ``new.event_from``/``event_until`` are the new version's event time as given (the
        caller carries the old ones over when they do not change); ``detail`` is added to
        the audit row's."""
        with self.transaction() as conn:
            old = self.get(old_id)
            if not old.is_current:
                raise InvalidInput(
                    f"item {old_id} was superseded by a newer version; update the current one"
                )
            now = time.time()
            now = max(now, old.valid_from + 1e-6)
            chash = content_hash(new.text)
            conn.execute("UPDATE items SET valid_until = ? WHERE id = ?", (now, old_id))
            clash = conn.execute(
                "SELECT id FROM items WHERE scope_key = ? AND content_hash = ? "
                "AND valid_until IS NULL", (scope_key(new.scope), chash),
            ).fetchone()
            if clash:
                raise InvalidInput(
                    f"the new text is identical to current item {clash[0]} in this scope"
                )
            cur = conn.execute(
                "INSERT INTO items (text, content_hash, namespace, user, agent, session, "
                "scope_key, source, created_at, confidence, expires_at, metadata, version, "
                "root_id, supersedes, valid_from, event_from, event_until) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                (new.text, chash, new.scope.namespace, new.scope.user, new.scope.agent,
                 new.scope.session, scope_key(new.scope), new.source, old.created_at,
                 new.confidence, new.expires_at, json.dumps(new.metadata, ensure_ascii=False),
                 old.version + 1, old.root_id or old.id, old.id, now, new.event_from,
                 new.event_until),
            )
            new_id = int(cur.fetchone()[0])
            self._audit("update", new_id, now, reason, {**(detail or {}), "supersedes": old_id})
        return new_id

    def delete(self, ids: Sequence[int], reason: str | None = None, op: str = "delete",
               whole_chain: bool = True) -> list[int]:
        """Delete items (with every version of their chains unless ``whole_chain`` is False);
        all-or-nothing, audited. Raises NotFound (deleting nothing) if any id does not exist.
        Returns the deleted ids."""
        with self.transaction() as conn:
            for i in ids:
                if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                    raise InvalidInput(f"item ids are integers, got {i!r}")
            ids = sorted({int(i) for i in ids})
            missing = [i for i in ids if not self.exists(i)]
            if missing:
                raise NotFound(f"no item with id(s) {missing}; nothing was deleted")
            chain = ids
            if whole_chain and ids:
                marks = ",".join("?" * len(ids))
                chain = [r[0] for r in conn.execute(
                    f"SELECT id FROM items WHERE root_id IN "
                    f"(SELECT root_id FROM items WHERE id IN ({marks}))", ids,
                )]
            now = time.time()
            for iid in chain:
                conn.execute("DELETE FROM items WHERE id = ?", (iid,))
                self._audit(op, iid, now, reason)
        return sorted(chain)

    def expired_ids(self, now: float | None = None, scope: Scope | None = None) -> list[int]:
        now = time.time() if now is None else now
        where, params = _scope_sql(scope) if scope else ("TRUE", [])
        return [r[0] for r in self.conn.execute(
            f"SELECT id FROM items WHERE expires_at IS NOT NULL AND expires_at <= ? AND {where}",
            [now, *params],
        )]

    def superseded_ids(self, scope: Scope | None = None) -> list[int]:
        where, params = _scope_sql(scope) if scope else ("TRUE", [])
        return [r[0] for r in self.conn.execute(
            f"SELECT id FROM items WHERE valid_until IS NOT NULL AND {where}", params)]

    # ---- reading ------------------------------------------------------------------------
    def exists(self, item_id: int) -> bool:
        if not _storable_id(item_id):
            return False
        return self.conn.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() \
            is not None

    def get(self, item_id: int) -> MemoryItem:
        if isinstance(item_id, bool) or not isinstance(item_id, (int, np.integer)):
            raise InvalidInput(f"item ids are integers, got {item_id!r}")
        if not _storable_id(item_id):
            raise NotFound(f"no item with id {item_id}")
        row = self.conn.execute(
            f"SELECT {_ITEM_COLS} FROM items WHERE id = ?", (int(item_id),)
        ).fetchone()
        if row is None:
            raise NotFound(f"no item with id {item_id}")
        return _row_to_item(row)

    def get_many(self, ids: Sequence[int]) -> dict[int, MemoryItem]:
        """The items that exist among ``ids`` (missing ones are left out)."""
        out: dict[int, MemoryItem] = {}
        ids = [int(i) for i in ids if _storable_id(i)]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for row in self.conn.execute(
                f"SELECT {_ITEM_COLS} FROM items WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out[row[0]] = _row_to_item(row)
        return out

    def iter_items(self, scope: Scope | None = None, current_only: bool = True,
                   batch_size: int = 1000, after_id: int = 0) -> Iterator[MemoryItem]:
        """Items in id order, optionally restricted to a scope and to current versions."""
        where, params = _scope_sql(scope) if scope else ("TRUE", [])
        if current_only:
            where += " AND valid_until IS NULL"
        last = after_id
        while True:
            rows = self.conn.execute(
                f"SELECT {_ITEM_COLS} FROM items WHERE id > ? AND {where} ORDER BY id LIMIT ?",
                [last, *params, batch_size],
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _row_to_item(row)
            last = rows[-1][0]

    def versions(self, item_id: int) -> list[MemoryItem]:
        """Every version of the chain that ``item_id`` belongs to, oldest first."""
        root = self.get(item_id).root_id
        rows = self.conn.execute(
            f"SELECT {_ITEM_COLS} FROM items WHERE root_id = ? ORDER BY version", (root,)
        ).fetchall()
        return [_row_to_item(r) for r in rows]

    def allowed_ids(self, scope: Scope, as_of: float | None = None,
                    now: float | None = None, valid_at: float | None = None,
                    holds_now: bool = False) -> np.ndarray:
        """Sorted int64 ids a read with ``scope`` may see: current (or valid at ``as_of``) and
        not expired; with ``valid_at``, only items that hold at that event time; with
        ``holds_now`` (and no ``valid_at``), only items that hold at ``now``. Cached until
        the record changes, the next item expires or (``holds_now``) the next event-time
        boundary passes."""
        now = time.time() if now is None else now
        key = (scope, as_of, valid_at, holds_now and valid_at is None, self._generation,
               self._data_version())
        cached = self._allowed_cache.get(key)
        if cached is not None and now < cached[1]:
            return cached[0]
        event_t = valid_at if valid_at is not None else (now if holds_now else None)
        where, params = visible_sql(scope, as_of, now, event_at=event_t)
        ids = np.fromiter(
            (r[0] for r in self.conn.execute(
                f"SELECT id FROM items WHERE {where} ORDER BY id", params)), dtype=np.int64)
        nxt = self.conn.execute(
            f"SELECT MIN(expires_at) FROM items WHERE {where} AND expires_at > ?",
            [*params, now],
        ).fetchone()[0]
        until = float(nxt) if nxt is not None else float("inf")
        if valid_at is None and holds_now:  # the set changes when an event bound passes
            base_where, base = visible_sql(scope, as_of, now)
            bounds = self.conn.execute(
                f"SELECT (SELECT MIN(event_from) FROM items WHERE {base_where} "
                f"AND event_from > ?), (SELECT MIN(event_until) FROM items WHERE {base_where} "
                "AND event_until > ?)", [*base, now, *base, now],
            ).fetchone()
            for b in bounds:
                if b is not None and b > now:
                    until = min(until, float(b))
        if len(self._allowed_cache) > 64:
            self._allowed_cache.clear()
        self._allowed_cache[key] = (ids, until)
        return ids

    def count(self, scope: Scope | None = None, current_only: bool = True) -> int:
        where, params = _scope_sql(scope) if scope else ("TRUE", [])
        if current_only:
            where += " AND valid_until IS NULL"
        return int(self.conn.execute(f"SELECT COUNT(*) FROM items WHERE {where}",
                                     params).fetchone()[0])

    def namespaces(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT namespace, COUNT(*) FROM items WHERE valid_until IS NULL GROUP BY namespace"
        )}

    def audit_log(self, item_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT seq, op, item_id, at, reason, detail FROM audit"
        params: list[Any] = []
        if item_id is not None:
            sql += " WHERE item_id = ?"
            params.append(item_id)
        sql += " ORDER BY seq DESC LIMIT ?"
        rows = self.conn.execute(sql, [*params, limit]).fetchall()
        return [
            {"seq": s, "op": o, "item_id": i, "at": a, "reason": r,
             "detail": json.loads(d) if d else None}
            for s, o, i, a, r, d in rows
        ]

    # ---- change feed and watermarks -----------------------------------------------------
    def last_seq(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0])

    def changes_since(self, seq: int, limit: int | None = None) -> list[Change]:
        sql = "SELECT seq, op, item_id FROM audit WHERE seq > ? ORDER BY seq"
        params: list[Any] = [seq]
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return [Change(s, o, i) for s, o, i in self.conn.execute(sql, params)]

    def watermark(self, backend: str) -> int:
        row = self.conn.execute(
            "SELECT watermark FROM backend_state WHERE name = ?", (backend,)
        ).fetchone()
        return int(row[0]) if row else 0

    def set_watermark(self, backend: str, seq: int) -> None:
        self.set_watermarks({backend: seq})

    def set_watermarks(self, positions: dict[str, int]) -> None:
        """Persist several backends' watermarks in one transaction (one fsync)."""
        if not positions:
            return
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO backend_state (name, watermark, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET watermark = excluded.watermark, "
                "updated_at = excluded.updated_at",
                [(name, seq, now) for name, seq in positions.items()])

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value", (key, value))
