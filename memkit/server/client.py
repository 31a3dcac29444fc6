"""Moved: the HTTP client is :mod:`memkit.client` (it needs only httpx, not the server)."""

from memkit.client import AuthError, Client, ServerError, item_from_json

__all__ = ["AuthError", "Client", "ServerError", "item_from_json"]
