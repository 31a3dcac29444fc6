"""Fixtures: a real uvicorn server on 127.0.0.1 (ephemeral port, in a thread) serving a memory
directory built with the hash embedder, with keys made through the KeyStore. Test modules use
the fixtures (``served``, ``open_served``, ``start_served``, ``new_memory``), never imports from
here, so any pytest import mode works."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("mcp")

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from memkit import Memory  # noqa: E402
from memkit.server.app import ServeSettings, create_app  # noqa: E402
from memkit.server.auth import KeyStore  # noqa: E402


@dataclass
class Served:
    url: str
    directory: Path
    keys: dict[str, str] = field(default_factory=dict)
    server: Any = None
    thread: Any = None
    app: Any = None

    def client(self, key: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(directory: Path, **settings: Any) -> Served:
    """Serve ``directory`` from a uvicorn thread; returns when it answers /health."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit this; without it a passed-in socket pays Nagle + delayed
    # ACK (~40 ms) on every response
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    opts = {"embedder": "hash", **settings}
    app = create_app(ServeSettings(memory_dir=directory, port=port, **opts))
    config = uvicorn.Config(app, log_config=None, access_log=False, log_level="warning",
                            lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        if server.started:
            break
        if not thread.is_alive():
            raise RuntimeError("server thread died during startup")
        time.sleep(0.02)
    else:
        raise RuntimeError("server did not start in 30 s")
    return Served(url=url, directory=directory, server=server, thread=thread, app=app)


def make_memory(directory: Path) -> None:
    Memory.open(directory, embedder="hash").close()




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


@pytest.fixture
def start_served() -> Iterator[Callable[..., Served]]:
    """``start_served(directory, **settings)``: a server stopped at teardown."""
    running: list[Served] = []

    def start(directory: Path, **settings: Any) -> Served:
        srv = start_server(directory, **settings)
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.stop()


@pytest.fixture
def new_memory() -> Callable[[Path], None]:
    """``new_memory(directory)``: create an empty hash-embedder memory there."""
    return make_memory
