"""``memkit remember FILE.jsonl`` (a conversation, one message a line) and ``memkit revert``.

    memkit remember chat.jsonl --user u1 --session s7
    memkit remember chat.jsonl --user u1 --facts off --json
    memkit revert 42 --reason "wrong move"

A line is a message ``{"role", "content", "name"?, "at"?}``; the whole file is one
``Memory.remember`` call (all or nothing). A line that is not a JSON object is an error naming
its line number, and nothing is stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from memkit._cli import (
    TEXT,
    emit,
    json_option,
    memory_option,
    open_memory,
    scope_dict,
    scope_options,
)
from memkit.errors import InvalidInput


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The messages of a JSON Lines file (blank lines skipped)."""
    out: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 ({exc})") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{n}: not JSON ({exc.msg}); nothing was stored") from None
        if not isinstance(value, dict):
            raise InvalidInput(f"{path}:{n}: a message is a JSON object, got "
                               f"{type(value).__name__}; nothing was stored")
        out.append(value)
    return out


@click.command("remember")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@memory_option
@scope_options
@click.option("--at", "at", default=None, type=TEXT,
              help="Time of turns without their own 'at' (ISO 8601; naive = UTC).")
@click.option("--facts", type=click.Choice(["auto", "rules", "llm", "off"]), default="auto",
              show_default=True, help="Fact extraction: rules (LLM-free), llm, auto, off.")
@click.option("--contradictions", type=click.Choice(["auto", "rules", "llm", "off"]),
              default="auto", show_default=True,
              help="How contradicted facts are found (and invalidated, never deleted).")
@click.option("--embedder", default=None, help="Embedder for a new memory (minilm, hash).")
@json_option
def remember_cmd(file: Path, memory_dir: str, namespace: str | None, user: str | None,
                 agent: str | None, session: str | None, at: str | None, facts: str,
                 contradictions: str, embedder: str | None, as_json: bool) -> None:
    """Remember a conversation: FILE is JSON Lines, one {role, content, name?, at?} a line."""
    messages = read_jsonl(file)
    scope = scope_dict(namespace, user, agent, None)
    with open_memory(memory_dir, create=True, embedder=embedder) as mem:
        report = mem.remember(messages, scope, session=session, at=at, facts=facts,
                              contradictions=contradictions)
    data = report.as_dict()

    def text() -> None:
        click.echo(f"{len(report.turns)} turn(s), {len(report.facts)} new fact(s), "
                   f"{len(report.duplicates)} already known, {len(report.invalidated)} "
                   "invalidated")
        for d in report.decisions:
            click.echo(f"  {d['action']}: [{d['item']}] {d.get('fact', '')} ({d['why']})")

    emit(data, as_json, text)


@click.command("revert")
@click.argument("item_id", type=int)
@memory_option
@click.option("--reason", default=None, type=TEXT, help="Why (kept in the audit log).")
@json_option
def revert_cmd(item_id: int, memory_dir: str, reason: str | None, as_json: bool) -> None:
    """Undo the latest change (update, invalidation, contradiction) of ITEM_ID's chain."""
    with open_memory(memory_dir) as mem:
        new_id = mem.revert(item_id, reason=reason)
        item = mem.get(new_id)
    emit({"id": new_id, "text": item.text, "event_from": item.event_from,
          "event_until": item.event_until}, as_json, lambda: click.echo(new_id))
