"""The memory inspector: browser pages at ``/ui`` of ``memkit serve``.

Mounted by ``memkit.server.app.create_app`` with ``app.include_router(router)``; the pages use
the server's API keys and per-key confinement (see :mod:`memkit.server.ui.session`). Needs
Jinja2, which the ``[server]`` extra installs.
"""

from memkit._deps import require

require("fastapi", "server", "the memory inspector")

from memkit.server.ui.routes import router

__all__ = ["router"]
