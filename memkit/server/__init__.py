"""``memkit serve``: a memory directory as a service (REST + MCP) with API keys, and
``memkit.Client``, the same Memory API over HTTP. Needs the ``[server]`` extra.

Modules: ``app`` (FastAPI REST, MCP mounted at /mcp), ``mcp_server`` (MCP tools, stdio and
HTTP), ``auth`` (API keys, tenancy), ``service`` (the scope-confined Memory calls),
``middleware`` (request ids, body limit, JSON logs), ``client`` (``Client``), ``cli``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from memkit.server.client import Client

        return Client
    raise AttributeError(name)
