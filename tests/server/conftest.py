"""Fixtures: a real uvicorn server on 127.0.0.1 (ephemeral port, in a thread) serving a memory
directory built with the hash embedder, with keys made through the KeyStore."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("mcp")

from server_helpers import Served, make_memory, start_server  # noqa: E402

from memkit.server.auth import KeyStore  # noqa: E402


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A server with two tenant keys (acme, globex), one user-confined key and an admin key."""
    directory = tmp_path / "mem"
    make_memory(directory)
    keys = KeyStore.open(directory)
    made = {
        "acme": keys.create("acme", name="acme")[0],
        "globex": keys.create("globex", name="globex")[0],
        "acme_u1": keys.create("acme", user="u1", name="acme-u1")[0],
        "admin": keys.create(None, admin=True, name="root")[0],
    }
    keys.close()
    srv = start_server(directory)
    srv.keys = made
    yield srv
    srv.stop()


@pytest.fixture
def open_served(tmp_path: Path) -> Iterator[Served]:
    """A loopback server with no keys (open mode)."""
    directory = tmp_path / "mem"
    make_memory(directory)
    srv = start_server(directory)
    yield srv
    srv.stop()
