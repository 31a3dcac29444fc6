"""The system of record: items, versions, audit log / change feed and backend watermarks.

Two engines implement one protocol (:class:`~memkit.store.protocol.RecordStore`): SQLite, the
embedded default (:class:`Store`, one file per memory), and Postgres
(:class:`~memkit.store.postgres.PostgresStore`, extra ``[postgres]``), for several processes
and machines on one memory. :func:`open_store` picks by target: a DSN
(``postgresql://...``) or a file path.
"""

from __future__ import annotations

from pathlib import Path

from memkit.store.sqlite import Change, NewItem, Store, content_hash


def is_dsn(target: object) -> bool:
    """Whether ``target`` names a Postgres database (``postgresql://`` / ``postgres://``).

    >>> is_dsn("postgresql://me@db/x"), is_dsn("/tmp/mem")
    (True, False)
    """
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def open_store(target: str | Path, durability: str = "full") -> Store:
    """The record at ``target``: a Postgres DSN, ``":memory:"``, or an SQLite file path."""
    if is_dsn(target):
        from memkit.store.postgres import PostgresStore

        return PostgresStore.open(str(target), durability=durability)
    return Store.open(target, durability=durability)


__all__ = ["Change", "NewItem", "Store", "content_hash", "is_dsn", "open_store"]
