"""`memkit remember FILE.jsonl`, `memkit read --valid-at` and `memkit revert`, in a real
subprocess (the installed entry point's module, with this tree first on PYTHONPATH)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def memkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memkit.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_remember_read_valid_at_and_revert(tmp_path: Path) -> None:
    m = str(tmp_path / "mem")
    first = _jsonl(tmp_path / "a.jsonl", [
        {"role": "user", "name": "Ann", "content": "I live in Paris.", "at": "2020-01-01"},
        {"role": "assistant", "content": "Nice city!", "at": "2020-01-01"}])
    r = memkit("remember", str(first), "-m", m, "--user", "ann", "--session", "s1",
               "--embedder", "hash", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["turns"]) == 2 and len(out["facts"]) == 1
    paris = out["facts"][0]
    second = _jsonl(tmp_path / "b.jsonl", [
        {"role": "user", "name": "Ann", "content": "I moved to Lyon.", "at": "2024-01-01"}])
    r = memkit("remember", str(second), "-m", m, "--user", "ann", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert paris in json.loads(r.stdout)["invalidated"]
    r = memkit("read", "Ann live", "-m", m, "--user", "ann", "-k", "10", "--json", cwd=tmp_path)
    texts = [h["text"] for h in json.loads(r.stdout)["hits"]]
    assert any("Lyon" in t for t in texts) and not any("Paris" in t for t in texts)
    r = memkit("read", "Ann live", "-m", m, "--user", "ann", "-k", "10", "--valid-at",
               "2021-01-01", "--json", cwd=tmp_path)
    hits = json.loads(r.stdout)["hits"]
    assert any("Paris" in h["text"] and h["invalidated"] for h in hits)
    assert not any("Lyon" in h["text"] for h in hits)
    r = memkit("revert", str(paris), "-m", m, "--json", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["event_until"] is None


def test_bad_file_is_one_error_line_and_stores_nothing(tmp_path: Path) -> None:
    m = str(tmp_path / "mem")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"role": "user", "content": "hi"}\nnot json\n', encoding="utf-8")
    r = memkit("remember", str(bad), "-m", m, "--embedder", "hash", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("memkit: error:") and ":2: not JSON" \
        in r.stderr
    roles = _jsonl(tmp_path / "roles.jsonl", [{"role": "user", "content": "hi"},
                                              {"content": "no role"}])
    r = memkit("remember", str(roles), "-m", m, "--embedder", "hash", cwd=tmp_path)
    assert r.returncode == 1 and "messages[1].role: missing" in r.stderr
    r = memkit("stats", "-m", m, "--json", cwd=tmp_path)
    assert r.returncode != 0 or json.loads(r.stdout)["items"] == 0
