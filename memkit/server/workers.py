"""``memkit serve --workers N``: N uvicorn worker processes on one port.

uvicorn's supervisor binds the socket once and spawns the workers; each imports
:func:`app_factory`, which rebuilds the settings from the environment (``MEMKIT_SERVE``, JSON:
live objects such as an LLM travel as their spec) and opens the memory itself. The workers
share nothing but the record - a Postgres schema, or a memory directory - and each one's
indexes catch up from its change feed before a strongly consistent read, so a write answered
by one worker is visible to a read answered by another. API keys live in the record too.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

ENV = "MEMKIT_SERVE"


def serve_workers(settings: Any, llm_spec: str | None, workers: int, log_level: str,
                  max_connections: int) -> None:
    """Run ``workers`` processes of the app behind ``settings.host:settings.port``."""
    import uvicorn

    from memkit.server.middleware import configure_logging

    data = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()
            if k != "llm"}
    os.environ[ENV] = json.dumps({"settings": data, "llm": llm_spec, "log_level": log_level})
    configure_logging(log_level)
    uvicorn.run("memkit.server.workers:app_factory", factory=True, workers=workers,
                host=settings.host, port=settings.port, log_config=None, access_log=False,
                log_level=log_level, lifespan="on", timeout_keep_alive=5,
                timeout_graceful_shutdown=int(settings.graceful_timeout_s),
                server_header=False, limit_concurrency=max_connections)


def app_factory() -> Any:
    """The app of one worker process (called by uvicorn in each worker)."""
    from memkit.server.app import ServeSettings, create_app
    from memkit.server.middleware import configure_logging
    from memkit.store import is_dsn

    spec = json.loads(os.environ[ENV])
    data = dict(spec["settings"])
    target = data["memory_dir"]
    data["memory_dir"] = target if target is None or is_dsn(target) else Path(target)
    settings = ServeSettings(**data)
    if spec.get("llm"):
        from memkit.llm import load_llm

        settings.llm = load_llm(spec["llm"])
    configure_logging(spec.get("log_level", "info"))
    return create_app(settings)
