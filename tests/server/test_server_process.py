"""The served memory as a real process: SIGKILL in the middle of concurrent writes loses no
acknowledged write and leaves nothing half-indexed; SIGTERM lets in-flight writes finish and
closes the memory cleanly; and a short run of the load benchmark (slow)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from serverproc import free_port, serve  # tests/serverproc.py

from memkit import Memory
from memkit.client import Client, ServerError

REPO = Path(__file__).resolve().parents[2]


def _write_until_stopped(url: str, tag: str, stop: threading.Event,
                         acked: list[tuple[int, str]]) -> None:
    with Client(url, timeout=10, retries=0) as c:
        n = 0
        while not stop.is_set() and n < 5_000:
            n += 1
            text = f"{tag} record {n} about the quarterly plan"
            try:
                acked.append((c.write(text, scope="acme"), text))
            except ServerError:
                return  # the server is gone: this write was not acknowledged


def _load_with_signal(tmp_path: Path, sig: int, min_acks: int) -> tuple[Any, list, Path]:
    directory, log = tmp_path / "mem", tmp_path / "server.log"
    port = free_port()
    proc = serve(directory, port, log, "--embedder", "hash", "--log-level", "info")
    url = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    acked: list[tuple[int, str]] = []
    writers = [threading.Thread(target=_write_until_stopped, args=(url, f"w{i}", stop, acked))
               for i in range(3)]
    try:
        for w in writers:
            w.start()
        deadline = time.time() + 60
        while len(acked) < min_acks and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(sig)  # writes are in flight right now
        proc.wait(timeout=60)
    finally:
        stop.set()
        for w in writers:
            w.join(timeout=30)
        if proc.poll() is None:
            proc.kill()
    assert len(acked) >= min_acks
    return proc, acked, log


def _check_every_ack_present_and_indexed(directory: Path, acked: list[tuple[int, str]]) -> None:
    with Memory.open(directory) as mem:  # replays any change the index had not applied
        for iid, text in acked:
            assert mem.get(iid).text == text
            assert mem.read(text, k=1, scope="acme").ids == [iid]
        stats = mem.stats()
        assert stats["items"] == stats["backends"]["dense"]["vectors"]
        assert stats["items"] >= len(acked)  # plus any committed-but-unacknowledged write


@pytest.mark.slow  # a server subprocess start costs ~10 s on the shared CI box
def test_sigkill_during_writes_loses_no_acknowledged_write(tmp_path: Path) -> None:
    proc, acked, _ = _load_with_signal(tmp_path, signal.SIGKILL, min_acks=40)
    assert proc.returncode == -signal.SIGKILL
    _check_every_ack_present_and_indexed(tmp_path / "mem", acked)


@pytest.mark.slow
def test_sigterm_finishes_in_flight_writes_and_closes_cleanly(tmp_path: Path) -> None:
    proc, acked, log = _load_with_signal(tmp_path, signal.SIGTERM, min_acks=60)
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    assert any(x["msg"] == "stopped" for x in lines)  # lifespan shutdown closed the memory
    assert not [x for x in lines if x["level"] == "error"]
    _check_every_ack_present_and_indexed(tmp_path / "mem", acked)
    # the index file was flushed on close, labelled with the change-feed position it
    # reflects: the whole record (nothing left to replay on the next open)
    from memkit.vectors import FaissIndex

    idx = FaissIndex(256)
    label = idx.load(tmp_path / "mem" / "vectors" / "dense.faiss")
    with Memory.open(tmp_path / "mem") as mem:
        assert label % (1 << 40) == mem.store.last_seq()


@pytest.mark.slow
def test_load_benchmark_short_run(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    run = subprocess.run(
        [sys.executable, "benchmarks/server_load.py", "--seconds", "10", "--writers", "2",
         "--readers", "6", "--processes", "2", "--kill-seconds", "5", "--out", str(out),
         "--workdir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    steady, kill = report["steady"], report["kill"]
    assert steady["errors"] == 0 and steady["cross_tenant_hits"] == 0
    assert steady["verify"]["lost"] == 0 and steady["writes"]["n"] > 20
    v = kill["verify_all_phases"]
    assert v["lost"] == 0 and v["not_retrievable"] == 0 and v["wrong_text"] == 0
    assert v["items"] == v["dense_vectors"] >= v["acknowledged"]
