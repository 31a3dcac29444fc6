"""The `memkit` command line as a user meets it: real processes, real memory folders, exit codes
and the one-line messages (issue 21). Each test drives ``python -m memkit.cli``."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sentence_transformers", "transformers", "pandas")


def memkit(*args: str | bytes, env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memkit.cli", *args], capture_output=True,
                          text=True, errors="replace", timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})})


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The failure is one 'memkit: error:' line on stderr, nothing else, never a traceback."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memkit: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def hash_memory(path: Path, *texts: str) -> Path:
    from memkit import Memory

    with Memory.open(path, embedder="hash") as mem:
        for t in texts:
            mem.write(t)
    return path


def minilm_memory_without_loading(path: Path) -> Path:
    """A memory configured for the packaged MiniLM, created without loading the model."""
    from memkit import Memory
    from memkit.embed.lazy import LazyEmbedder, lazy_embedder

    emb = lazy_embedder("minilm")
    assert isinstance(emb, LazyEmbedder)
    Memory.open(path, embedder=emb).close()
    assert not emb.loaded
    return path


# ---- 1. start-up: commands that do not embed import no model, pandas or numpy ----------------
PROBE = """
import sys
from memkit.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("EXIT", code, "LOADED", sorted(m for m in {heavy!r} if m in sys.modules))
"""


def probe(*args: str, heavy: tuple[str, ...] = HEAVY) -> tuple[int, list[str], str]:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=heavy), *args],
                          capture_output=True, text=True, timeout=300)
    m = re.search(r"EXIT (\S+) LOADED (\[.*\])", proc.stdout)
    assert m, proc.stdout + proc.stderr
    return int(m.group(1)), json.loads(m.group(2).replace("'", '"')), proc.stderr


def test_help_and_argument_errors_import_nothing_heavy() -> None:
    heavy = (*HEAVY, "numpy", "faiss", "memkit.memory", "sqlite_utils")
    code, loaded, _ = probe("--help", heavy=heavy)
    assert (code, loaded) == (0, [])
    code, loaded, err = probe("read", "--bogus", heavy=heavy)
    assert (code, loaded) == (2, []) and err.startswith("memkit: error: No such option")


def test_commands_that_do_not_embed_never_load_the_model(tmp_path: Path) -> None:
    mem = str(minilm_memory_without_loading(tmp_path / "m"))
    for args, want in ((["stats", "-m", mem], 0), (["audit", "-m", mem], 0),
                       (["get", "1", "-m", mem], 1), (["delete", "1", "-m", mem], 1),
                       (["forget", "-m", mem], 0), (["index", "-m", mem], 0)):
        code, loaded, err = probe(*args)
        assert code == want, (args, err)
        assert loaded == [], f"memkit {args[0]} imported {loaded}"


def test_lazy_embedder_refuses_a_model_that_is_not_the_promised_one() -> None:
    from memkit.embed.lazy import LazyEmbedder
    from memkit.errors import ConfigError

    emb = LazyEmbedder("hash:8", name="all-MiniLM-L6-v2@256", dim=8)
    with pytest.raises(ConfigError, match="not the expected all-MiniLM-L6-v2@256"):
        emb.embed(["x"])
    assert LazyEmbedder("hash:8", name="hash-8-tri", dim=8).embed_query("x").shape == (8,)


# ---- 2. a wrong --memory is an error, not a new empty memory ------------------------------------
@pytest.mark.parametrize("args", [["read", "q"], ["delete", "1"], ["stats"], ["get", "1"],
                                  ["audit"], ["forget"], ["index"]])
def test_commands_on_a_path_without_a_memory_fail(tmp_path: Path, args: list[str]) -> None:
    typo = tmp_path / "typo"
    proc = memkit(*args, "--memory", str(typo))
    assert proc.returncode == 1
    assert f"no memory at {typo}" in one_error_line(proc)
    assert not typo.exists()


def test_default_memory_and_env_are_checked_too(tmp_path: Path) -> None:
    proc = memkit("stats", cwd=tmp_path)  # ./.memkit
    assert proc.returncode == 1 and "no memory at .memkit" in one_error_line(proc)
    assert not (tmp_path / ".memkit").exists()
    proc = memkit("stats", env={"MEMKIT_MEMORY": str(tmp_path / "env-mem")})
    assert proc.returncode == 1 and "env-mem" in one_error_line(proc)


def test_writing_commands_create_a_memory_and_say_so(tmp_path: Path) -> None:
    new = tmp_path / "new"
    proc = memkit("ingest", str(REPO / "examples" / "docs"), "--memory", str(new),
                  "--embedder", "hash")
    assert proc.returncode == 0, proc.stderr
    assert f"memkit: created a new memory at {new}" in proc.stderr
    assert (new / "memkit.toml").is_file()
    again = memkit("write", "one more note", "--memory", str(new))
    assert again.returncode == 0 and "created" not in again.stderr
    other = memkit("write", "x", "--memory", str(new), "--embedder", "minilm")
    assert other.returncode == 2
    assert "built with the embedder 'hash:256'" in one_error_line(other)
    same = memkit("write", "y", "--memory", str(new), "--embedder", "hash")  # = hash:256
    assert same.returncode == 0, same.stderr


# ---- 3. exit codes and messages -----------------------------------------------------------------
def test_ingest_of_a_missing_file_fails_before_loading_anything(tmp_path: Path) -> None:
    proc = memkit("ingest", str(tmp_path / "missing.txt"), "--memory", str(tmp_path / "m"))
    assert proc.returncode == 2  # a usage error: the PATH argument names no file
    assert "missing.txt' does not exist" in one_error_line(proc)
    assert not (tmp_path / "m").exists()


def test_empty_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.md").write_text("  \n\n")
    m = str(tmp_path / "m")
    proc = memkit("ingest", str(tmp_path / "empty.txt"), "--memory", m, "--embedder", "hash")
    assert proc.returncode == 1 and "nothing was ingested (1 rejected)" in proc.stderr
    assert "rejected" in proc.stderr and "empty.txt: empty file" in proc.stderr
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The lighthouse keeper feeds the gulls.")
    shutil.copy(tmp_path / "blank.md", docs / "blank.md")
    proc = memkit("ingest", str(docs), "--memory", m, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["added"] == 1 and out["empty_files"] == [str(docs / "blank.md")]
    assert "memkit: warning: rejected" in proc.stderr and "blank.md: empty file" in proc.stderr


def test_a_long_write_is_chunked_like_ingest(tmp_path: Path) -> None:
    m = str(hash_memory(tmp_path / "m"))
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(120))
    proc = memkit("write", text, "--memory", m)
    assert proc.returncode == 0, proc.stderr
    ids = proc.stdout.split()
    assert len(ids) > 1 and "split a long text into" in proc.stderr
    got = json.loads(memkit("get", *ids, "--memory", m, "--json").stdout)
    assert [d["metadata"]["chunk"] for d in got] == list(range(len(ids)))
    whole = memkit("write", text + " More.", "--memory", m, "--no-chunk")
    assert whole.returncode == 0 and len(whole.stdout.split()) == 1
    assert "memkit: warning: stored as one item" in whole.stderr


def test_non_utf8_arguments_are_one_line_errors(tmp_path: Path) -> None:
    m = str(hash_memory(tmp_path / "m", "a note"))
    for args in ([b"write", b"caf\xe9", b"--memory", m.encode()],
                 [b"read", b"caf\xe9", b"--memory", m.encode()],
                 [b"write", b"ok", b"--user", b"\xff", b"--memory", m.encode()]):
        proc = subprocess.run([sys.executable, "-m", "memkit.cli", *args],
                              capture_output=True, text=True, errors="replace", timeout=120)
        assert proc.returncode == 2
        assert "is not valid UTF-8" in one_error_line(proc)


def test_every_failure_has_the_same_prefix_and_a_nonzero_status(tmp_path: Path) -> None:
    m = str(hash_memory(tmp_path / "m", "a note"))
    for args, code in ((["delete", "42", "--memory", m], 1),
                       (["write", "x", "--memory", m, "--metadata", "[1]"], 2),
                       (["read", "x", "--memory", m, "--backend", "nope"], 1),
                       (["read", "-k"], 2), (["nosuchcommand"], 2),
                       (["write", "x", "--memory", str(tmp_path / "m" / "memkit.toml")], 2)):
        proc = memkit(*args)
        assert proc.returncode == code, (args, proc.stderr)
        one_error_line(proc)


# ---- 4. progress and output -----------------------------------------------------------------
def test_no_progress_bars_or_cursor_codes_in_logs(tmp_path: Path) -> None:
    proc = memkit("ingest", str(REPO / "examples" / "docs"), "--memory", str(tmp_path / "m"),
                  "--embedder", "hash")
    assert proc.returncode == 0
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr and "it/s" not in proc.stderr
    assert "memkit: ingesting" in proc.stderr  # plain lines instead


def test_index_and_stats_print_readable_text(tmp_path: Path) -> None:
    m = str(hash_memory(tmp_path / "m", "a note", "another note"))
    proc = memkit("index", "--memory", m)
    assert proc.returncode == 0 and "{" not in proc.stdout
    assert proc.stdout.splitlines() == ["dense: up to date, 0 changes applied", "2 items"]
    proc = memkit("index", "--memory", m, "--rebuild", "--json")
    assert json.loads(proc.stdout)["applied"]["dense"] >= 2
    stats = memkit("stats", "--memory", m).stdout
    assert re.search(r"^items\s+2 current, 2 versions", stats, re.M)
    audit = memkit("audit", "--memory", m).stdout.splitlines()
    assert audit[0].split() == ["seq", "at", "(UTC)", "op", "item", "reason"]
    assert audit[1].split()[3:5] == ["write", "2"]


def test_eval_table_is_aligned(tmp_path: Path) -> None:
    proc = memkit("eval", str(REPO / "indexes" / "musique-sample-hash.toml"), "--limit", "3",
                  "--no-plots", "--no-progress", "--out", str(tmp_path / "r"),
                  "--cache", str(tmp_path / "c"))
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in proc.stdout.splitlines() if x and not x.startswith("results:")]
    assert lines[0].split()[:3] == ["backend", "n", "R@1"]
    # figures are right-aligned under their headers: every row ends where its header does
    header, rows = lines[0], lines[1:]
    ends = [m.end() for m in re.finditer(r"R@\d+|NDCG@\d+|p95 ms", header)]
    assert len(ends) == 6 and rows
    for row in rows:
        assert len(row) == len(header), proc.stdout
        assert all(row[e - 1] != " " and (e == len(row) or row[e] == " ") for e in ends), \
            proc.stdout


# ---- 5. memkit serve ------------------------------------------------------------------------
def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def test_serve_says_the_port_is_in_use_before_loading_anything(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    mem = str(minilm_memory_without_loading(tmp_path / "m"))
    with _busy_port() as sock:
        port = sock.getsockname()[1]
        start = time.monotonic()
        proc = memkit("serve", "--port", str(port), env={"MEMKIT_MEMORY": mem})
        took = time.monotonic() - start
    assert proc.returncode == 1
    assert f"port {port} is in use" in one_error_line(proc)
    assert took < 60  # (no model was loaded: that alone takes longer on a busy machine)


def test_serve_without_memory_option_or_env_is_a_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MEMKIT_MEMORY"}
    proc = subprocess.run([sys.executable, "-m", "memkit.cli", "serve"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "--memory" in one_error_line(proc)


def test_health_reports_items_and_docs_are_served_offline(tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("swagger_ui_bundle")
    mem = hash_memory(tmp_path / "m", "one", "two", "three")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "memkit.cli", "serve", "--memory", str(mem),
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None and time.time() < deadline, "server did not start"
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health.json()["items"] == 3
        page = httpx.get(f"{url}/docs", timeout=5).text
        assert "/docs-assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
        js = httpx.get(f"{url}/docs-assets/swagger-ui-bundle.js", timeout=5)
        assert js.status_code == 200 and len(js.content) > 100_000
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# ---- 6. eval data discoverability -----------------------------------------------------------
def test_eval_names_every_place_it_looked(tmp_path: Path) -> None:
    # as if installed elsewhere: a copy of the package with no ../shared/data beside it
    site = tmp_path / "site" / "pkg"
    shutil.copytree(REPO / "memkit", site / "memkit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "site" / "work"
    work.mkdir()
    proc = memkit("eval", "musique", "--data-dir", str(tmp_path / "nowhere"), "--embedder",
                  "hash", env={"MEMKIT_DATA_DIR": str(tmp_path / "env"),
                               "PYTHONPATH": str(site)}, cwd=work)
    assert proc.returncode == 1
    line = one_error_line(proc)
    for where in (f"{tmp_path / 'nowhere'} (--data-dir)", f"{tmp_path / 'env'} (MEMKIT_DATA_DIR)",
                  "../shared/data", "(committed samples)", "musique-sample"):
        assert where in line


def test_eval_finds_data_in_data_dir_and_lists_its_places(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = (REPO / "evals" / "samples" / "musique_sample.jsonl").read_text().splitlines()
    (data / "musique_dev200.jsonl").write_text("\n".join(lines[:2]) + "\n")
    proc = memkit("eval", "list", env={"MEMKIT_DATA_DIR": str(data)})
    assert proc.returncode == 0
    assert re.search(rf"^musique\s.*{re.escape(str(data / 'musique_dev200.jsonl'))}$",
                     proc.stdout, re.M)
    assert f"{data}  (MEMKIT_DATA_DIR)" in proc.stdout
    proc = memkit("eval", "musique", "--data-dir", str(data), "--embedder", "hash",
                  "--no-plots", "--no-progress", "--out", str(tmp_path / "r"),
                  "--cache", str(tmp_path / "c"))
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^dense\s+2\s", proc.stdout, re.M)


# ---- 7. the distribution name -----------------------------------------------------------------
def test_every_install_hint_names_the_distribution() -> None:
    import tomllib

    from memkit._deps import DISTRIBUTION, install_hint
    from memkit.errors import MissingDependency

    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"] \
        == DISTRIBUTION == "memkit-agent"
    assert "pip install 'memkit-agent[server]'" in str(MissingDependency("serve", "server"))
    assert install_hint("core") == "pip install memkit-agent"
    offenders = []
    for path in (REPO / "memkit").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"pip install\s+['\"`]?memkit(?!-agent)\b", line):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"pip install\s+['\"]?memkit(?!-agent)\b", readme)


def test_ingest_takes_an_llm_spec_and_names_a_bad_one(tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("Oslo is the capital of Norway.", encoding="utf-8")
    bad = memkit("ingest", str(doc), "--memory", str(tmp_path / "m"), "--embedder", "hash",
                 "--llm", "nonsense-spec", env={"PYTHONPATH": str(REPO)})
    assert bad.returncode != 0 and "openai:<base_url>@<model>" in bad.stderr
    assert not (tmp_path / "m" / "memory.db").exists()  # refused before anything was stored
