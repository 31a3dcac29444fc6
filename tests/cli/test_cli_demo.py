"""`memkit demo` as the README runs it: a real process, offline."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memkit.cli", "demo", *args],
                          capture_output=True, text=True, timeout=600)


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("keep me")
    proc = demo("--memory", str(tmp_path), "--embedder", "hash")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("memkit: error: the demo builds a fresh memory")
    assert (tmp_path / "x.txt").read_text() == "keep me"


def test_demo_leaves_nothing_behind_by_default(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "memkit.cli", "demo", "--embedder", "hash"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = re.search(r"a memory at (\S+),", proc.stdout)
    assert folder and not Path(folder.group(1)).exists()
    assert list(tmp_path.iterdir()) == []
    assert re.search(r"dense vectors 23, graph passages 23\n.*dense vectors 22, graph "
                     r"passages 22", proc.stdout)


@pytest.mark.realmodel
def test_demo_with_minilm_shows_the_graph_finding_the_second_hop(tmp_path: Path) -> None:
    proc = demo("--memory", str(tmp_path / "d"))
    assert proc.returncode == 0, proc.stderr
    assert "-> dense finds 1 of the 2 passages needed, the graph 2" in proc.stdout
    graph = proc.stdout.split("graph: phrases linked")[1].split("->")[0]
    assert "needed  Mountrail County Courthouse" in graph
    assert "Loading weights" not in proc.stdout + proc.stderr
