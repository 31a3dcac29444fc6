from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner

from memkit.cli import main


def run(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_ingest_read_get_delete_stats_roundtrip(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "x.txt").write_text("The lighthouse keeper feeds the gulls at dawn.")
    (docs / "y.txt").write_text("Quarterly revenue grew by eight percent.")
    m = str(tmp_path / "mem")
    r = run("ingest", str(docs), "--memory", m, "--embedder", "hash", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["added"] == 2
    r = run("read", "who feeds the gulls", "--memory", m, "-k", "1", "--json")
    hit = json.loads(r.stdout)["hits"][0]
    assert "lighthouse" in hit["text"] and hit["backend"] == "dense"
    r = run("get", str(hit["id"]), "--memory", m, "--json")
    assert json.loads(r.stdout)[0]["id"] == hit["id"]
    r = run("delete", str(hit["id"]), "--memory", m, "--reason", "test")
    assert r.exit_code == 0 and "deleted 1" in r.output
    r = run("stats", "--memory", m, "--json")
    assert json.loads(r.stdout)["items"] == 1
    r = run("write", "a new note", "--memory", m, "--user", "u1", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["id"] > 0
    assert json.loads(r.stdout)["created"] is True
    again = run("write", "a new note", "--memory", m, "--user", "u1")
    assert again.exit_code == 0 and again.stdout.strip() == str(json.loads(r.stdout)["id"])
    assert "duplicate" in again.stderr
    r = run("read", "note", "--memory", m, "--user", "u2", "--json")
    assert json.loads(r.stdout)["hits"] == []
    r = run("index", "--memory", m, "--rebuild", "--json")
    assert r.exit_code == 0


def test_library_errors_are_clean_messages(tmp_path: Path) -> None:
    m = str(tmp_path / "mem")
    (tmp_path / "a.txt").write_text("a first note")
    assert run("ingest", str(tmp_path / "a.txt"), "--memory", m, "--embedder", "hash"
               ).exit_code == 0
    runner = CliRunner()
    r = runner.invoke(main, ["delete", "42", "--memory", m])
    assert r.exit_code == 1 and r.output.startswith("memkit: error: no item") \
        and "Traceback" not in r.output
    r = runner.invoke(main, ["write", "  ", "--memory", m])
    assert r.exit_code == 1 and "empty" in r.output
    r = runner.invoke(main, ["read", "x", "--memory", m, "--backend", "nope"])
    assert r.exit_code == 1 and "not open" in r.output
    r = runner.invoke(main, ["write", "x", "--memory", m, "--metadata", "{bad"])
    assert r.exit_code == 2 and "--metadata" in r.output


def _commands(group: click.Group, ctx: click.Context):  # type: ignore[no-untyped-def]
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        yield name, cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, ctx)


def test_every_command_has_help_text() -> None:
    ctx = click.Context(main)
    names = set()
    for name, cmd in _commands(main, ctx):
        names.add(name)
        assert (cmd.help or cmd.short_help), f"memkit {name} has no help text"
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"memkit {name} {param.opts} has no help text"
    assert {"ingest", "read", "write", "get", "delete", "forget", "stats", "index", "ask",
            "audit", "demo", "eval", "serve", "keys"} <= names
