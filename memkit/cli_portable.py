"""``memkit export`` and ``memkit import``: move a memory through a JSON Lines dump.

Registered on the main group in memkit/cli.py; see :mod:`memkit.portable` for the format.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import TextIO

import click

MEMORY_HELP = "Memory directory. Env: MEMKIT_MEMORY."


@click.command("export")
@click.option("--memory", "-m", "memory_dir", envvar="MEMKIT_MEMORY", default=".memkit",
              show_default=True, type=click.Path(file_okay=False), help=MEMORY_HELP)
@click.option("--audit", is_flag=True, help="Include the audit log.")
@click.option("--namespace", default=None, help="Export only this namespace.")
@click.option("--user", default=None, help="Export only this user's items.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
def export_cmd(memory_dir: str, audit: bool, namespace: str | None, user: str | None,
               output: Path | None) -> None:
    """Export every item with all its versions (JSON Lines, streamed)."""
    from memkit._cli import open_memory
    from memkit.portable import export_to

    scope = None
    if namespace or user:
        scope = {"namespace": namespace or "default", "user": user}
    # no memory there is an error; the embedding model is never loaded for an export
    with open_memory(memory_dir) as mem:
        if output is None:
            export_to(mem, sys.stdout, audit=audit, scope=scope)
        else:
            with output.open("w", encoding="utf-8") as out:
                lines = export_to(mem, out, audit=audit, scope=scope)
            click.echo(f"exported {lines} lines to {output}", err=True)


@click.command("import")
@click.argument("dump", type=click.File("r", encoding="utf-8"))
@click.option("--memory", "-m", "memory_dir", envvar="MEMKIT_MEMORY", default=".memkit",
              show_default=True, type=click.Path(file_okay=False),
              help="Memory directory (created if missing). Env: MEMKIT_MEMORY.")
@click.option("--backends", default=None,
              help="Backends of a new memory, comma-separated (default: the dump's).")
@click.option("--embedder", default=None, help="Embedder of a new memory (default: the dump's).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_cmd(dump: TextIO, memory_dir: str, backends: str | None,
               embedder: str | None, as_json: bool) -> None:
    """Import a dump made by `memkit export` (`-` reads standard input); every index of the
    target memory is built from it. A new memory gets the dump's backends and embedder."""
    from memkit.errors import InvalidInput
    from memkit.memory import Memory
    from memkit.portable import import_lines, read_header

    first = dump.readline()
    if not first.strip():
        raise InvalidInput("line 1: the dump is empty")
    config = read_header(first).get("config") or {}
    kwargs: dict[str, object] = {}
    if not (Path(memory_dir) / "memkit.toml").exists():
        names = backends.split(",") if backends else config.get("backends")
        if names:
            kwargs["backends"] = [b.strip() for b in names if b.strip()]
        if embedder or config.get("embedder"):
            kwargs["embedder"] = embedder or config["embedder"]
    with Memory.open(Path(memory_dir), **kwargs) as mem:  # type: ignore[arg-type]
        rest = (line.rstrip("\n") for line in dump)
        report = import_lines(mem, itertools.chain([first.rstrip("\n")], rest))
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(f"imported {report.versions} versions of {report.chains} items"
                   + (f", skipped {report.skipped_expired} expired" if report.skipped_expired
                      else ""))
