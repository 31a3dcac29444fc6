"""The system of record: items, versions, audit log and backend watermarks on SQLite."""

from memkit.store.sqlite import Change, Store, content_hash

__all__ = ["Change", "Store", "content_hash"]
