"""A real Postgres (with pgvector) for the tests: :mod:`memkit.store.local_pg`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memkit.store.local_pg import dsn_for, start_local_postgres

__all__ = ["dsn_for", "memory_target", "start_server"]


def start_server(pgdata: Path | None = None) -> Any:
    """A running Postgres in ``pgdata`` (default: a new one); restart it on ``server.pgdata``."""
    return start_local_postgres(pgdata)[0]


_SERVER: Any = None


def memory_target() -> str | None:
    """Where a test's throw-away memory lives: in memory (None) by default, or - with
    ``MEMKIT_TEST_STORE=postgres`` - a fresh schema on one Postgres started for the process."""
    import os

    global _SERVER
    if os.environ.get("MEMKIT_TEST_STORE", "sqlite") != "postgres":
        return None
    if _SERVER is None:
        _SERVER = start_server()
    return dsn_for(_SERVER)
