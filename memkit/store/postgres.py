"""The Store on Postgres: one memory's record in one Postgres schema, shared by processes.

The record logic is :class:`~memkit.store.sqlite.Store`'s (same portable SQL, through the
dialect layer :mod:`memkit.store.pgsql`); what differs is the engine:

* a psycopg 3 connection pool; a statement outside a transaction borrows a connection in
  autocommit mode, a transaction keeps one connection for this thread until it ends;
* write transactions are serialised by a transaction-scoped advisory lock (the analogue of
  SQLite's ``BEGIN IMMEDIATE``): the change feed's ``seq`` values are then committed in
  order, so a process catching up from its watermark can never skip a change that commits
  later with a smaller number;
* a :meth:`snapshot` is a ``REPEATABLE READ`` transaction;
* the engine going away (server stopped, network cut) is a :class:`StoreUnavailable`; the
  transaction in flight is rolled back by the server, so nothing is half-written.

The target is a DSN: ``postgresql://user@host:5432/db?schema=name`` (``namespace=`` is
accepted for ``schema=``; default ``memkit``); ``pool_size=`` (default 16) and
``pool_timeout=`` seconds (default 10) tune the pool. A DSN is never printed with its
password.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from memkit._deps import require
from memkit.errors import ConfigError, StoreUnavailable
from memkit.store.migrations import CORE
from memkit.store.pgsql import translate
from memkit.store.sqlite import Store, _Rows

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_OWN_PARAMS = ("schema", "namespace", "pool_size", "pool_timeout")
_BINARY_COPY = frozenset({"bigint", "integer", "smallint", "bytea", "text", "real",
                          "double precision", "boolean"})  # COPY (FORMAT BINARY) column types


def split_dsn(dsn: str) -> tuple[str, dict[str, str]]:
    """``(libpq DSN, memkit's own parameters)``: ``schema``, ``pool_size``, ``pool_timeout``.

    >>> split_dsn("postgresql://me@db/x?schema=team_a&sslmode=disable")
    ('postgresql://me@db/x?sslmode=disable', {'schema': 'team_a'})
    """
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in _OWN_PARAMS}
    if "namespace" in own:
        own.setdefault("schema", own.pop("namespace"))
    rest = urlencode([(k, v) for k, v in query if k not in _OWN_PARAMS])
    return urlunsplit(parts._replace(query=rest)), own


def with_schema(dsn: str, schema: str) -> str:
    """The DSN with its ``schema`` parameter set to ``schema``.

    >>> with_schema("postgresql://me@db/x?schema=a&sslmode=disable", "b")
    'postgresql://me@db/x?sslmode=disable&schema=b'
    """
    conninfo, own = split_dsn(dsn)
    own["schema"] = schema
    parts = urlsplit(conninfo)
    query = "&".join(q for q in (parts.query, urlencode(own)) if q)
    return urlunsplit(parts._replace(query=query))


def redact(dsn: str) -> str:
    """The DSN without its password (for messages and ``stats``).

    >>> redact("postgresql://me:s3cret@db:5432/x?schema=a")
    'postgresql://me:***@db:5432/x?schema=a'
    """
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _arg(value: Any) -> Any:
    """Parameters psycopg adapts: numpy scalars become Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _args(params: Any) -> tuple[Any, ...]:
    return tuple(_arg(p) for p in params)


class PgConnection:
    """What components call ``store.conn``: portable SQL, run on this thread's transaction
    connection if it has one, else on a borrowed autocommit connection."""

    raw = None

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def execute(self, sql: str, params: Any = ()) -> _Rows:
        query, args = translate(sql), _args(params)
        with self._store._connection() as conn, self._store._errors(sql):
            return _Rows(conn.execute(query, args))

    def executemany(self, sql: str, seq: Any) -> _Rows:
        query = translate(sql)
        rows = [_args(p) for p in seq]
        with self._store._connection() as conn, self._store._errors(sql):
            cur = conn.cursor()
            if rows:
                cur.executemany(query, rows)
            return _Rows(cur)

    @property
    def in_transaction(self) -> bool:
        return getattr(self._store._local, "conn", None) is not None

    def close(self) -> None:
        self._store.close()


class PostgresStore(Store):
    """The system of record in a Postgres schema (thread- and process-safe)."""

    kind = "postgres"

    def __init__(self, dsn: str) -> None:  # noqa: D107 - see open()
        psycopg = require("psycopg", "postgres", "a Postgres memory")
        pool_mod = require("psycopg_pool", "postgres", "a Postgres memory")
        self._psycopg = psycopg
        conninfo, own = split_dsn(dsn)
        self.dsn = redact(dsn)
        self.schema = own.get("schema", "memkit")
        if not _IDENT.match(self.schema):
            raise ConfigError(f"schema must be a lower-case SQL identifier (letters, digits, _), "
                              f"got {self.schema!r} in {self.dsn}")
        try:
            size = int(own.get("pool_size", "16"))
            timeout = float(own.get("pool_timeout", "10"))
        except ValueError as exc:
            raise ConfigError(f"pool_size / pool_timeout in {self.dsn}: {exc}") from exc
        if size < 1 or timeout <= 0:
            raise ConfigError(f"pool_size must be >= 1 and pool_timeout > 0 in {self.dsn}")
        digest = hashlib.sha256(f"memkit:{self.schema}".encode()).digest()
        self._lock_key = int.from_bytes(digest[:8], "big", signed=True)
        self.path = None
        self._local = threading.local()
        self._generation = 0
        self._allowed_cache: dict[tuple[Any, ...], tuple[np.ndarray, float]] = {}
        self.conn = PgConnection(self)
        self._check_server(psycopg, conninfo)
        self._pool = pool_mod.ConnectionPool(
            conninfo, min_size=1, max_size=size, timeout=timeout, open=False,
            kwargs={"autocommit": True}, configure=self._configure,
            check=pool_mod.ConnectionPool.check_connection, name=f"memkit-{self.schema}")
        try:
            self._pool.open(wait=True, timeout=timeout)
        except Exception as exc:
            raise StoreUnavailable(f"cannot connect to Postgres at {self.dsn}: {exc}") from exc
        try:
            self.migrate("core", CORE)
        except BaseException:
            self._pool.close()
            raise

    @classmethod
    def open(cls, path: Any, durability: str = "full") -> PostgresStore:  # type: ignore[override]
        """Open (creating the schema and tables if needed) the memory at DSN ``path``.
        ``durability`` is the server's business on Postgres (``synchronous_commit``)."""
        return cls(str(path))

    @staticmethod
    def holds_memory(dsn: str) -> bool:
        """Whether the schema a DSN names holds a memory already (no schema is created)."""
        psycopg = require("psycopg", "postgres", "a Postgres memory")
        conninfo, own = split_dsn(dsn)
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                row = conn.execute(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND "
                    "table_name = 'items'", (own.get("schema", "memkit"),)).fetchone()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to Postgres at {redact(dsn)}: "
                                   f"{str(exc).strip()}") from exc
        return row is not None

    # ---- connections --------------------------------------------------------------------
    def _check_server(self, psycopg: Any, conninfo: str) -> None:
        """One direct connection first, for a clear error (the pool only says it timed
        out), then create the schema under the memory's lock."""
        try:
            conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to Postgres at {self.dsn}: {str(exc).strip()} (check host, "
                "port, database name and credentials; is the server running?)") from exc
        with conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')

    def _configure(self, conn: Any) -> None:
        conn.execute(f'SET search_path TO "{self.schema}", public')

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        bound = getattr(self._local, "conn", None)
        if bound is not None:
            yield bound
            return
        try:
            with self._pool.connection() as conn:
                yield conn
        except self._psycopg.OperationalError as exc:
            raise StoreUnavailable(f"lost the Postgres connection ({self.dsn}): {exc}") from exc
        except Exception as exc:
            if type(exc).__name__ == "PoolTimeout":
                raise StoreUnavailable(
                    f"no Postgres connection within the pool timeout ({self.dsn}): the "
                    "server is down or every connection is busy") from exc
            raise

    @contextmanager
    def _errors(self, sql: str) -> Iterator[None]:
        try:
            yield
        except self._psycopg.OperationalError as exc:
            raise StoreUnavailable(f"Postgres ({self.dsn}) failed during {sql.split()[0]}: "
                                   f"{str(exc).strip()}") from exc

    @contextmanager
    def _bound(self, mode: str, begin: Sequence[str]) -> Iterator[PgConnection]:
        with self._connection() as conn:
            try:
                with conn.transaction():
                    for statement in begin:
                        conn.execute(statement, (self._lock_key,) if "%s" in statement else ())
                    self._local.conn, self._local.mode, self._local.depth = conn, mode, 1
                    try:
                        yield self.conn
                    finally:
                        self._local.conn, self._local.depth = None, 0
            except self._psycopg.OperationalError as exc:
                raise StoreUnavailable(
                    f"Postgres ({self.dsn}) went away during a transaction; it was rolled "
                    f"back: {str(exc).strip()}") from exc

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A re-entrant write transaction, serialised with every other writer of this
        memory (in any process); rolls back on any exception."""
        if getattr(self._local, "depth", 0):
            if self._local.mode == "read":  # a write inside a snapshot: take the lock now
                self.conn.execute("SELECT pg_advisory_xact_lock(?)", (self._lock_key,))
                self._local.mode = "write"
            self._local.depth += 1
            try:
                yield self.conn
            finally:
                self._local.depth -= 1
            return
        with self._bound("write", ["SELECT pg_advisory_xact_lock(%s)"]) as conn:
            yield conn
        self._generation += 1

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """Several statements that see one consistent state (REPEATABLE READ); inside a
        transaction, that transaction."""
        if getattr(self._local, "depth", 0):
            yield self.conn
            return
        with self._bound("read", ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"]) as conn:
            yield conn

    def close(self) -> None:
        self._pool.close()

    def copy_insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                    *, conflict: Sequence[str]) -> None:
        """Bulk ``INSERT ... ON CONFLICT (conflict) DO NOTHING`` (see :mod:`memkit.store.bulk`),
        in the caller's write transaction (or its own): the keys already there are read,
        then the other rows are ``COPY``-ed straight into ``table`` (binary format when every
        column has a binary form psycopg knows, else text). The write lock every writer of
        this memory holds makes the read-then-copy race-free. Rows must not share a key."""
        types = self._column_types(table)
        key_types = [types[c] for c in conflict]
        at = [list(columns).index(c) for c in conflict]
        keys = [[row[i] for row in rows] for i in at]
        names = ", ".join(conflict)
        binary = all(types[c] in _BINARY_COPY for c in columns)
        with self.transaction(), self._connection() as conn, self._errors("COPY"):
            present = {tuple(r) for r in conn.execute(
                f"SELECT {names} FROM {table} JOIN unnest("
                + ", ".join(f"%s::{t}[]" for t in key_types) + f") AS u({names}) "
                f"USING ({names})", [[_arg(k) for k in col] for col in keys])}
            with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                                    + (" (FORMAT BINARY)" if binary else "")) as copy:
                if binary:
                    copy.set_types([types[c] for c in columns])
                for row in rows:
                    if tuple(_arg(row[i]) for i in at) not in present:
                        copy.write_row(_args(row))

    def _column_types(self, table: str) -> dict[str, str]:
        """Column name -> SQL type of a table in the memory's schema."""
        return {str(name): str(kind) for name, kind in self.conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
            "attrelid = to_regclass(?) AND attnum > 0 AND NOT attisdropped", (table,))}

    # ---- what differs from SQLite -------------------------------------------------------
    @property
    def location(self) -> str:
        return self.dsn

    def table_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
            "ORDER BY table_name", (self.schema,))]

    def size_bytes(self) -> int:
        """Bytes the memory's schema takes on the server (tables, indexes, TOAST)."""
        row = self.conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(format('%I.%I', table_schema, "
            "table_name))), 0) FROM information_schema.tables WHERE table_schema = ?",
            (self.schema,)).fetchone()
        return int(row[0])

    def _data_version(self) -> int:
        return self.last_seq()

    def compact(self) -> bool:
        """After an erasure: VACUUM the record's tables, so the deleted row versions are
        reclaimed (their bytes may stay in free space until overwritten, and in the
        server's WAL archive and backups: those are the operator's to manage)."""
        tables = [t for t in ("items", "audit", "item_vectors", "llm_cache")
                  if t in self.table_names()]
        with self._connection() as conn, self._errors("VACUUM"):
            conn.execute(f"VACUUM {', '.join(tables)}")
        return True
