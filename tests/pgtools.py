"""A real Postgres (with pgvector) for the tests: :mod:`memkit.store.local_pg`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memkit.store.local_pg import dsn_for, start_local_postgres

__all__ = ["dsn_for", "start_server"]


def start_server(pgdata: Path | None = None) -> Any:
    """A running Postgres in ``pgdata`` (default: a new one); restart it on ``server.pgdata``."""
    return start_local_postgres(pgdata)[0]
