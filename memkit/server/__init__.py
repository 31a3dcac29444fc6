"""``memkit serve``: a memory directory as a service (REST + MCP) with API keys, and
``memkit.Client``, the same Memory API over HTTP. Needs the ``[server]`` extra.

Quick start::

    memkit keys create --memory ./mem --namespace acme      # prints mk_<id>_<secret> once
    memkit serve --memory ./mem --port 8765                  # 127.0.0.1; docs at /docs

    mem = memkit.Client("http://127.0.0.1:8765", key)       # instead of Memory.open("./mem")
    mem.write("Dana prefers aisle seats.", scope={"user": "dana"})

MCP: point an MCP client at ``http://127.0.0.1:8765/mcp`` (streamable HTTP) with the header
``Authorization: Bearer <key>``, or run ``memkit serve --memory ./mem --transport stdio``
with ``MEMKIT_API_KEY=<key>`` in its environment. Tools: remember, recall, update_memory,
forget, and answer when the server has an LLM (``--llm``).

Modules: ``app`` (FastAPI REST, MCP mounted at /mcp), ``mcp_server`` (MCP tools, stdio and
HTTP), ``auth`` (API keys, tenancy), ``service`` (the scope-confined Memory calls),
``middleware`` (request ids, body limit, JSON logs), ``client`` (``Client``), ``cli``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from memkit.client import Client

        return Client
    raise AttributeError(name)
