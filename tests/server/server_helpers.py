"""Helpers: a real uvicorn server on 127.0.0.1 (ephemeral port) in a thread, serving a memory
directory built with the hash embedder; keys created through the KeyStore."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from memkit import Memory
from memkit.server.app import ServeSettings, create_app


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
