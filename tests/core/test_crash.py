"""SIGKILL in the middle of write_many: reopening gives a consistent memory, and rerunning
the same ingest completes it without duplicates."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memkit import Memory
from memkit.embed import HashEmbedder

N = 3000
CHILD = """
import sys
from memkit import Memory
from memkit.embed import HashEmbedder
mem = Memory.open(sys.argv[1], embedder=HashEmbedder(64), index=sys.argv[2])
report = mem.write_many(({"text": f"record {i} about topic {i % 17}", "source": f"doc{i}"}
                         for i in range(N)), batch_size=25)
mem.close()
print("DONE", len(report.added), report.skipped_duplicates)
""".replace("range(N)", f"range({N})")


def _run_child(directory: Path, kill_after_rows: int | None, index: str = "sync") -> str:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), index], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after_rows is None:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return out
    db = directory / "memory.db"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with sqlite3.connect(db, timeout=1) as conn:
                if conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] >= kill_after_rows:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the child finished before it was killed"
    return ""


def _assert_consistent(directory: Path) -> int:
    with Memory.open(directory, embedder=HashEmbedder(64)) as mem:
        ids = [it.id for it in mem.store.iter_items()]
        dense = mem.backends["dense"]
        assert sorted(dense.index.ids().tolist()) == ids  # every recorded item is indexed
        stored = {r[0] for r in mem.store.conn.execute("SELECT item_id FROM item_vectors")}
        assert stored == set(ids)
        texts = [it.text for it in mem.store.iter_items()]
        assert len(texts) == len(set(texts))  # no duplicates
        return len(ids)


@pytest.mark.parametrize("index", ["sync", "async"])
@pytest.mark.parametrize("kill_after_rows", [1, 700])
def test_sigkill_mid_write_many_then_resume(tmp_path: Path, kill_after_rows: int,
                                            index: str) -> None:
    """Killed mid-ingest, with indexing in the writer's thread or in the background: the
    next open indexes whatever the record holds, and a rerun completes without duplicates."""
    directory = tmp_path / "m"
    _run_child(directory, kill_after_rows, index)
    partial = _assert_consistent(directory)
    assert kill_after_rows <= partial < N
    out = _run_child(directory, None, index)
    added, skipped = (int(x) for x in out.split()[1:3])
    assert added == N - partial and skipped == partial
    assert _assert_consistent(directory) == N
