"""API keys and tenancy: who a request is, and the scope it is confined to.

A key looks like ``mk_<key_id>_<secret>``: ``key_id`` (12 hex digits) is public and finds the
row; ``secret`` (256 random bits) is never stored. The ``server_keys`` table in the memory's
SQLite keeps a per-key random salt and ``HMAC-SHA256(salt, secret)``; a presented key is checked
by recomputing that digest and comparing with :func:`hmac.compare_digest` (constant time). A fast
hash is the right tool here: the secret is high-entropy, so there is nothing to brute-force.

Each key maps to a namespace (optionally also a user and an agent); an *admin* key is not
confined. :func:`confine` turns the scope a request asks for into the scope it gets.

>>> p = Principal(key_id="abc", namespace="acme", user="u1")
>>> confine(p, {"session": "s1"})
Scope(namespace='acme', user='u1', agent=None, session='s1')
>>> confine(p, {"namespace": "other"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
memkit.errors.ScopeViolation: this key is confined to namespace='acme'; ...
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memkit.errors import ConfigError, InvalidInput, NotFound, ScopeViolation, safe_repr
from memkit.store import is_dsn
from memkit.store.sqlite import Store
from memkit.types import Scope

COMPONENT = "server"
MIGRATIONS = [
    """
    CREATE TABLE server_keys (
        key_id TEXT PRIMARY KEY,
        name TEXT,
        salt BLOB NOT NULL,
        digest BLOB NOT NULL,
        namespace TEXT,
        user TEXT,
        agent TEXT,
        admin INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        revoked_at REAL,
        last_used_at REAL
    )
    """,
    # random secrets of this memory's server (e.g. the key of the opaque per-namespace ids)
    """
    CREATE TABLE server_secrets (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    )
    """,
]

KEY_PREFIX = "mk_"
_KEY_RE = re.compile(r"^mk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_CONFINED = ("namespace", "user", "agent")
_LAST_USED_EVERY_S = 60.0


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. ``namespace=None`` only for admin / open (unauthenticated) access."""

    key_id: str | None
    namespace: str | None
    user: str | None = None
    agent: str | None = None
    admin: bool = False
    name: str | None = None

    @property
    def unrestricted(self) -> bool:
        return self.admin or self.namespace is None

    def scope(self) -> Scope | None:
        """The widest scope this principal may see (None when unrestricted)."""
        if self.unrestricted:
            return None
        return Scope(namespace=self.namespace or "default", user=self.user, agent=self.agent)

    def can_see(self, item_scope: Scope) -> bool:
        own = self.scope()
        return own is None or own.contains(item_scope)

    def as_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "namespace": self.namespace,
                "user": self.user, "agent": self.agent, "admin": self.admin}


OPEN = Principal(key_id=None, namespace=None, admin=True, name="open")
"""The principal of a request to a server running without keys (loopback only)."""


def confine(principal: Principal, requested: Scope | dict[str, Any] | str | None,
            default_namespace: str = "default") -> Scope:
    """The scope a request gets: what it asked for, with every field the key fixes forced to
    the key's value. Asking for a different value of a fixed field raises ScopeViolation."""
    if isinstance(requested, Scope):
        asked: dict[str, Any] = requested.as_dict()
    elif isinstance(requested, str):
        asked = {"namespace": requested}
    elif requested is None:
        asked = {}
    elif isinstance(requested, dict):
        asked = dict(requested)
    else:
        raise InvalidInput(f"scope must be an object or a namespace string, got "
                           f"{safe_repr(requested)}")
    if principal.unrestricted:
        asked.setdefault("namespace", None)
        if asked["namespace"] is None:
            asked["namespace"] = default_namespace
        return Scope.coerce(asked)
    for name in _CONFINED:
        fixed = getattr(principal, name)
        if fixed is None:
            continue
        want = asked.get(name)
        if want is not None and want != fixed:
            raise ScopeViolation(
                f"this key is confined to {name}={fixed!r}; the request asked for "
                f"{name}={safe_repr(want)}"
            )
        asked[name] = fixed
    return Scope.coerce(asked)


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


@dataclass(frozen=True)
class KeyRecord:
    """A row of ``server_keys`` as shown by ``memkit keys list`` (never the secret)."""

    key_id: str
    name: str | None
    namespace: str | None
    user: str | None
    agent: str | None
    admin: bool
    created_at: float
    revoked_at: float | None
    last_used_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class KeyStore:
    """The server's keys, in the memory's SQLite (table ``server_keys``). Thread-safe."""

    def __init__(self, store: Store, *, owns_store: bool = True) -> None:
        self.store = store
        self._owns_store = owns_store
        store.migrate(COMPONENT, MIGRATIONS)
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()
        # a fixed dummy row so that unknown key ids cost the same HMAC as known ones
        self._dummy_salt = secrets.token_bytes(16)
        self._dummy_digest = _digest(self._dummy_salt, "x" * 43)

    @classmethod
    def open(cls, memory_dir: str | Path, create: bool = False) -> KeyStore:
        """Open the keys of the memory in ``memory_dir`` (its own SQLite connection), or of
        the Postgres memory a DSN names (its own connection pool)."""
        if is_dsn(memory_dir):
            from memkit.store.postgres import PostgresStore

            return cls(PostgresStore.open(str(memory_dir)))
        directory = Path(memory_dir).expanduser()
        db = directory / "memory.db"
        if not db.exists() and not create:
            raise NotFound(
                f"no memory at {directory} (no memory.db); create it first, e.g. by writing "
                "to it or with `memkit serve --memory DIR`"
            )
        directory.mkdir(parents=True, exist_ok=True)
        return cls(Store.open(db))

    @classmethod
    def of(cls, mem: Any) -> KeyStore:
        """The keys of an open memory: on Postgres through the memory's own pool (thread-safe),
        on SQLite through a connection of their own (the store's lock is the memory's)."""
        if mem.store.kind != "sqlite":
            return cls(mem.store, owns_store=False)
        if mem.directory is None:
            raise ConfigError("serve needs a memory saved in a directory or in Postgres")
        return cls.open(mem.directory)

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def secret(self, name: str) -> bytes:
        """The memory's random 256-bit secret called ``name``, created on first use (every
        server process on this memory gets the same one)."""
        with self.store.transaction() as conn:
            conn.execute("INSERT INTO server_secrets (name, value) VALUES (?, ?) "
                         "ON CONFLICT (name) DO NOTHING",
                         (name, secrets.token_bytes(32)))
            row = conn.execute("SELECT value FROM server_secrets WHERE name = ?",
                               (name,)).fetchone()
        return bytes(row[0])

    # ---- management ---------------------------------------------------------------------
    def create(self, namespace: str | None, *, user: str | None = None,
               agent: str | None = None, name: str | None = None,
               admin: bool = False) -> tuple[str, KeyRecord]:
        """Create a key; returns ``(full_key, record)``. The full key is shown only here."""
        if admin:
            if namespace is not None or user is not None or agent is not None:
                raise InvalidInput("an admin key is not confined: give no namespace/user/agent")
        else:
            if namespace is None:
                raise InvalidInput("a key needs a namespace (or admin=True)")
            Scope(namespace=namespace, user=user, agent=agent)  # validates the values
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise InvalidInput("key name must be a string of at most 200 characters")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = time.time()
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO server_keys (key_id, name, salt, digest, namespace, user, agent, "
                "admin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key_id, name, salt, _digest(salt, secret), namespace, user, agent, int(admin),
                 now),
            )
        record = KeyRecord(key_id, name, namespace, user, agent, admin, now, None, None)
        return f"{KEY_PREFIX}{key_id}_{secret}", record

    def list(self, include_revoked: bool = True) -> list[KeyRecord]:
        sql = ("SELECT key_id, name, namespace, user, agent, admin, created_at, revoked_at, "
               "last_used_at FROM server_keys")
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        rows = self.store.conn.execute(sql + " ORDER BY created_at").fetchall()
        return [KeyRecord(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], r[8])
                for r in rows]

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key (by its id, or by the full key); effective on the next request."""
        match = _KEY_RE.match(key_id)
        if match:
            key_id = match.group(1)
        with self.store.transaction() as conn:
            row = conn.execute("SELECT revoked_at FROM server_keys WHERE key_id = ?",
                               (key_id,)).fetchone()
            if row is None:
                raise NotFound(f"no key with id {key_id!r}")
            if row[0] is None:
                conn.execute("UPDATE server_keys SET revoked_at = ? WHERE key_id = ?",
                             (time.time(), key_id))
        return next(k for k in self.list() if k.key_id == key_id)

    def active_count(self) -> int:
        return int(self.store.conn.execute(
            "SELECT COUNT(*) FROM server_keys WHERE revoked_at IS NULL").fetchone()[0])

    # ---- authentication -----------------------------------------------------------------
    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal of a presented key, or None when it is missing, malformed, unknown,
        revoked or wrong. Compares digests in constant time."""
        if not presented:
            return None
        match = _KEY_RE.match(presented.strip())
        key_id, secret = (match.group(1), match.group(2)) if match else ("", "x" * 43)
        row = self.store.conn.execute(
            "SELECT salt, digest, namespace, user, agent, admin, name, revoked_at "
            "FROM server_keys WHERE key_id = ?", (key_id,),
        ).fetchone() if match else None
        salt, digest = (row[0], row[1]) if row else (self._dummy_salt, self._dummy_digest)
        ok = hmac.compare_digest(_digest(salt, secret), digest)
        if row is None or not match or not ok or row[7] is not None:
            return None
        self._touch(key_id)
        return Principal(key_id=key_id, namespace=row[2], user=row[3], agent=row[4],
                         admin=bool(row[5]), name=row[6])

    def _touch(self, key_id: str) -> None:
        """Record last use, at most once a minute per key (keeps writes off the hot path)."""
        now = time.time()
        with self._lock:
            if now - self._touched.get(key_id, 0.0) < _LAST_USED_EVERY_S:
                return
            self._touched[key_id] = now
        try:
            with self.store.transaction() as conn:
                conn.execute("UPDATE server_keys SET last_used_at = ? WHERE key_id = ?",
                             (now, key_id))
        except Exception:  # pragma: no cover - bookkeeping never fails a request
            pass
