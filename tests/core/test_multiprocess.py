"""Several processes on one memory directory, as in real use (server + CLI + a long-lived
reader): every process sees every other's writes in every index, none saves a stale index as
current, opening during another's ingest and closing at the same time never crash.

Each test is a regression test for a defect found on the code before the read/write path
redesign (issue 15, defects 1-5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from serverproc import free_port, serve  # tests/serverproc.py

from memkit import Memory

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, HF_HUB_OFFLINE="1")
CLI = [sys.executable, "-c", "from memkit.cli import main; main()"]
OPTS = {"hipporag": {"extractor": "rules"}}


def _create(directory: Path, backends: list[str]) -> None:
    with Memory.open(directory, backends=backends, embedder="hash", backend_options={
            k: v for k, v in OPTS.items() if k in backends}) as mem:
        mem.write("Oslo is the capital of Norway.", scope="default")


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def _texts(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [h["item"]["text"] for h in resp.json()["hits"]]


def test_server_keeps_serving_after_cli_writes_and_stops_with_every_item_indexed(
        tmp_path: Path) -> None:
    directory, log = tmp_path / "mem", tmp_path / "server.log"
    _create(directory, ["dense", "hipporag"])
    port = free_port()
    server = serve(directory, port, log, "--log-level", "warning")
    url = f"http://127.0.0.1:{port}"
    try:
        done = _cli("write", "Bergen Harbour is run by Fjord Logistics.", "--memory",
                    str(directory))
        assert done.returncode == 0, done.stderr
        with httpx.Client(base_url=url, timeout=60) as c:
            # defect 1: the next server write naming that phrase used to fail with
            # IntegrityError, and every request after it answered 500
            r = c.post("/v1/memories", json={"text": "Fjord Logistics also runs Bergen "
                                                     "Harbour's ferry terminal."})
            assert r.status_code in (200, 201), r.text
            for backend in ("dense", "hipporag"):
                got = _texts(c.post("/v1/read", json={"query": "Bergen Harbour Fjord Logistics",
                                                      "k": 5, "backend": backend}))
                # defect 3: the server's graph backend sees the CLI's write
                assert "Bergen Harbour is run by Fjord Logistics." in got, (backend, got)
            assert c.post("/v1/memories", json={"text": "Another note."}).status_code in (
                200, 201)
    finally:
        code = _stop(server)
    assert code in (0, -signal.SIGTERM), log.read_text()[-3000:]  # a graceful stop
    # defect 2: after a graceful stop the dense index must still hold the CLI's item
    with Memory.open(directory) as mem:
        stats = mem.stats()
        assert stats["items"] == stats["backends"]["dense"]["vectors"] == 4
        assert mem.read("Fjord Logistics", k=4, backend="dense").hits
        texts = [h.text for h in mem.read("Bergen Harbour", k=4, backend="dense")]
        assert "Bergen Harbour is run by Fjord Logistics." in texts


def test_a_long_lived_process_sees_another_process_graph_writes(tmp_path: Path) -> None:
    directory = tmp_path / "mem"
    _create(directory, ["hipporag", "dense"])
    with Memory.open(directory) as mem:
        assert mem.read("Bergen Harbour", k=3, backend="hipporag").hits[0].text.startswith(
            "Oslo")
        done = _cli("write", "Bergen Harbour is run by Fjord Logistics.", "--memory",
                    str(directory))
        assert done.returncode == 0, done.stderr
        hits = mem.read("Who runs Bergen Harbour?", k=3, backend="hipporag")
        assert hits.hits[0].text == "Bergen Harbour is run by Fjord Logistics."
        # and this process's own next write reuses the other's phrases (no duplicate row)
        mem.write("Fjord Logistics is based in Bergen.")
        n = mem.store.conn.execute("SELECT COUNT(*) FROM hipporag_phrases WHERE "
                                   "text = 'fjord logistics'").fetchone()[0]
        assert n == 1


_INGEST = """
import sys
from memkit import Memory
with Memory.open(sys.argv[1]) as mem:
    mem.write_many([f"ingested note {n} on topic {n % 17}" for n in range(int(sys.argv[2]))],
                   batch_size=25)
"""


def test_opening_and_reading_while_another_process_ingests(tmp_path: Path) -> None:
    directory = tmp_path / "mem"
    _create(directory, ["dense"])
    writer = subprocess.Popen([sys.executable, "-c", _INGEST, str(directory), "3000"],
                              cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        opened = 0
        deadline = time.time() + 120
        while writer.poll() is None and time.time() < deadline and opened < 8:
            # defect 4: IndexError while rebuilding the dense index during another's ingest
            with Memory.open(directory) as mem:
                stats = mem.stats()
                assert stats["items"] >= 1
                mem.read("ingested note", k=3)
            opened += 1
        assert opened >= 1
    finally:
        _, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err[-3000:]
    with Memory.open(directory) as mem:
        stats = mem.stats()
        assert stats["items"] == stats["backends"]["dense"]["vectors"] == 3001


_CLOSER = """
import sys
from memkit import Memory
for n in range(int(sys.argv[3])):
    with Memory.open(sys.argv[1]) as mem:
        mem.write(f"{sys.argv[2]} round {n}")
"""


def test_processes_closing_at_the_same_time_do_not_collide(tmp_path: Path) -> None:
    directory = tmp_path / "mem"
    _create(directory, ["dense", "hipporag"])
    procs = [subprocess.Popen([sys.executable, "-c", _CLOSER, str(directory), tag, "12"],
                              cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
             for tag in ("left", "right")]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    # defect 5: FileNotFoundError on a shared fixed temp-file name
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for e in errors]
    assert not list(directory.rglob("*.tmp*"))
    with Memory.open(directory) as mem:
        stats = mem.stats()
        assert stats["items"] == stats["backends"]["dense"]["vectors"] == 25
        assert stats["backends"]["hipporag"]["passages"] == 25


@pytest.mark.parametrize("backends", [["dense"], ["dense", "hipporag"]])
def test_writer_and_long_lived_reader_agree_on_every_item(tmp_path: Path,
                                                         backends: list[str]) -> None:
    directory = tmp_path / "mem"
    _create(directory, backends)
    with Memory.open(directory) as reader:
        writer = subprocess.Popen([sys.executable, "-c", _INGEST, str(directory), "400"],
                                  cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err[-3000:]
        for name in backends:
            got = reader.read("ingested note 123 on topic 4", k=1, backend=name)
            assert got.hits and got.hits[0].text == "ingested note 123 on topic 4", name
        stats = reader.stats()
        assert stats["items"] == 401 and stats["backends"]["dense"]["vectors"] == 401
