"""Numbered schema migrations, per component.

The core record's migrations live here; every other component (a backend, the LLM call cache,
the server's keys) registers its own list under its own name with :meth:`Store.migrate`, so
adding a backend never edits this file. A migration list is append-only: never edit a
migration that has shipped, add the next one.
"""

from __future__ import annotations

CORE: list[str] = [
    # 1: the record, the audit log / change feed, backend watermarks
    """
    CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        text TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        namespace TEXT NOT NULL,
        user TEXT,
        agent TEXT,
        session TEXT,
        scope_key TEXT NOT NULL,
        source TEXT,
        created_at REAL NOT NULL,
        confidence REAL NOT NULL DEFAULT 1.0,
        expires_at REAL,
        metadata TEXT NOT NULL DEFAULT '{}',
        version INTEGER NOT NULL DEFAULT 1,
        root_id INTEGER,
        supersedes INTEGER,
        valid_from REAL NOT NULL,
        valid_until REAL
    );
    CREATE UNIQUE INDEX items_current_hash ON items(scope_key, content_hash)
        WHERE valid_until IS NULL;
    CREATE INDEX items_scope ON items(namespace, user, agent, session);
    CREATE INDEX items_root ON items(root_id);
    CREATE INDEX items_expiry ON items(expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        op TEXT NOT NULL,
        item_id INTEGER NOT NULL,
        at REAL NOT NULL,
        reason TEXT,
        detail TEXT
    );
    CREATE INDEX audit_item ON audit(item_id);
    CREATE TABLE backend_state (
        name TEXT PRIMARY KEY,
        watermark INTEGER NOT NULL DEFAULT 0,
        config TEXT NOT NULL DEFAULT '{}',
        updated_at REAL NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: event time beside system time. valid_from/valid_until say when memkit recorded and
    # superseded a version (system time); event_from/event_until say when the fact holds in
    # the world (NULL = unbounded, so every existing item stays always valid).
    """
    ALTER TABLE items ADD COLUMN event_from REAL;
    ALTER TABLE items ADD COLUMN event_until REAL;
    CREATE INDEX items_event_until ON items(event_until) WHERE event_until IS NOT NULL;
    """,
]
