"""``memkit serve --workers 2`` on one Postgres memory: two real server processes behind one
port; a write answered by either is seen by reads answered by both, and keys created in the
database confine requests in every worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytest.importorskip("psycopg", reason="needs the [postgres] extra")
pytest.importorskip("fastapi", reason="needs the [server] extra")

from serverproc import REPO, free_port, serve  # noqa: E402


def _fresh(port: int, method: str, path: str, **kw: object) -> httpx.Response:
    """One request on a new connection (so the kernel may hand it to either worker)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        return c.request(method, path, **kw)  # type: ignore[arg-type]


@pytest.mark.slow
def test_two_workers_share_one_postgres_memory(tmp_path: Path, pg_dsn: str) -> None:
    created = subprocess.run(
        [sys.executable, "-m", "memkit.server", "keys", "create", "--memory", pg_dsn,
         "--namespace", "acme", "--json"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert created.returncode == 0, created.stderr
    import json

    key = json.loads(created.stdout)["key"]
    port = free_port()
    proc = serve(pg_dsn, port, tmp_path / "serve.log", "--workers", "2",  # type: ignore[arg-type]
                 "--embedder", "hash")
    try:
        auth = {"Authorization": f"Bearer {key}"}
        pids: set[int] = set()
        for _ in range(300):  # bounded: until both workers have answered
            body = _fresh(port, "GET", "/health").json()
            assert body["store"] == "postgres"
            pids.add(body["worker"])
            if len(pids) == 2:
                break
        assert len(pids) == 2, "the second worker never answered"
        for i in range(6):
            text = f"note {i}: the harbour opens at {6 + i} am"
            r = _fresh(port, "POST", "/v1/memories", json={"text": text}, headers=auth)
            assert r.status_code == 201, r.text
            seen_by: set[int] = set()
            for _ in range(40):
                hits = _fresh(port, "POST", "/v1/read", json={"query": text, "k": 10},
                              headers=auth).json()["hits"]
                assert text in [h["item"]["text"] for h in hits]  # whoever answers sees the write
                seen_by.add(_fresh(port, "GET", "/health").json()["worker"])
                if len(seen_by) == 2:
                    break
        # the key confines requests in every worker (keys live in the database)
        r = _fresh(port, "POST", "/v1/read", headers=auth,
                   json={"query": "harbour", "scope": {"namespace": "globex"}})
        assert r.status_code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=60)
