"""Starting a real `memkit serve` process for tests (shared by the server and multi-process
suites): a free loopback port, and a server that is up once /health answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(directory: Path, port: int, log: Path, *extra: str,
          timeout: float = 120) -> subprocess.Popen[bytes]:
    """``python -m memkit.server serve`` on ``directory`` (stderr to ``log``), returned once
    its /health answers 200; fails with the log's tail if it exits or never comes up."""
    with open(log, "wb") as err:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "memkit.server", "serve", "--memory", str(directory),
             "--port", str(port), *extra],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")
