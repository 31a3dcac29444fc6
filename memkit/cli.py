"""The ``memkit`` command line.

Every failure is one ``memkit: error: ...`` line on stderr and a non-zero exit status (2 for
usage errors). Commands that read or manage a memory fail when ``--memory`` holds none;
``write`` and ``ingest`` create one and say so. Heavy modules load inside the commands, and the
embedding model only when something is embedded, so ``--help``, ``stats``, ``get``,
``delete`` and ``audit`` start in a fraction of a second.

Adding a command: define it with ``@main.command()`` below (using the option helpers from
``memkit._cli``), or register a command that lives in another module -- imported only when it
is run -- with one line in ``_LAZY`` (module, attribute, extra) and one in ``_LAZY_HELP``.
"""

from __future__ import annotations

import json
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

import click

from memkit import __version__
from memkit._cli import (
    TEXT,
    check_utf8_path,
    emit,
    human_bytes,
    json_option,
    memory_option,
    note,
    open_memory,
    print_table,
    progress_option,
    run_main,
    scope_dict,
    scope_options,
    show_progress,
    warn,
)
from memkit._deps import install_hint

# commands that live in other modules, imported only when used: name -> (module, attr, extra)
_LAZY: dict[str, tuple[str, str, str | None]] = {
    "eval": ("memkit.eval.cli", "eval_group", "eval"),
    "serve": ("memkit.server.cli", "serve_cmd", "server"),
    "keys": ("memkit.server.cli", "keys_group", "server"),
    "export": ("memkit.cli_portable", "export_cmd", None),
    "import": ("memkit.cli_portable", "import_cmd", None),
    "remember": ("memkit.conversation.cli", "remember_cmd", None),
    "revert": ("memkit.conversation.cli", "revert_cmd", None),
    "consolidate": ("memkit.consolidate.cli", "consolidate_cmd", "train"),
}
_LAZY_HELP = {
    "export": "Write every item and version as JSON Lines (to stdout or --out).",
    "import": "Load a memkit export into a memory (rebuilding every index).",
    "eval": "Run a benchmark (MuSiQue, LoCoMo, ...) and write a report.",
    "serve": "Serve a memory over REST and MCP.",
    "keys": "Create, list and revoke API keys for `memkit serve`.",
    "remember": "Remember a conversation (JSON Lines of {role, content, name?, at?}).",
    "revert": "Undo the latest change (update, invalidation) of an item.",
    "consolidate": "Fold memories into a LoRA adapter; --retrain-stale after deletes.",
}


class MemkitGroup(click.Group):
    """Mounts the ``_LAZY`` commands on demand; every failure becomes one error line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _LAZY:
            module, attr, extra = _LAZY[name]
            try:
                return getattr(import_module(module), attr)  # type: ignore[no-any-return]
            except ImportError as exc:
                return _missing(name, extra, exc)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # `memkit --help` lists the lazy commands without importing them
        rows = []
        for name in self.list_commands(ctx):
            if name in _LAZY:
                rows.append((name, _LAZY_HELP.get(name, "")))
                continue
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if complete_var is not None:
            extra["complete_var"] = complete_var
        if not standalone_mode:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        run_main(super(), args, prog_name, extra)  # type: ignore[arg-type]
        sys.exit(0)


def _missing(name: str, extra: str | None, exc: ImportError) -> click.Command:
    @click.command(name=name, help=_LAZY_HELP.get(name, ""),
                   context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args: tuple[str, ...]) -> None:
        hint = f"needs the optional extra [{extra}] ({install_hint(extra)})" if extra \
            else "cannot be loaded"
        raise click.ClickException(f"`memkit {name}` {hint}: {exc}")

    return cmd


def _hit_dict(hit: Any) -> dict[str, Any]:
    item = hit.item
    return {"rank": hit.rank, "id": item.id, "score": round(hit.score, 6),
            "backend": hit.backend, "text": item.text, "source": item.source,
            "scope": item.scope.as_dict(), "metadata": item.metadata,
            "evidence": hit.evidence, "event_from": item.event_from,
            "event_until": item.event_until, "invalidated": item.invalidated}


@click.group(cls=MemkitGroup)
@click.version_option(__version__, prog_name="memkit")
def main() -> None:
    """memkit: long-term memory for LLM agents."""


# ---- writing ----------------------------------------------------------------------------------
@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@memory_option
@scope_options
@click.option("--max-tokens", default=200, show_default=True, help="Chunk size in tokens.")
@click.option("--overlap", default=32, show_default=True, help="Token overlap between chunks.")
@click.option("--batch-size", default=64, show_default=True, help="Items per write batch.")
@click.option("--text-field", default="text", show_default=True,
              help="Field holding the text in .jsonl/.json records.")
@click.option("--embedder", default=None, help="Embedder for a new memory (minilm, hash).")
@click.option("--backends", default=None, help="Backends for a new memory, comma-separated.")
@click.option("--llm", "llm_spec", default=None,
              help="LLM for extraction (e.g. openai:http://HOST:8000/v1@MODEL, a vLLM server).")
@click.option("--ray", "use_ray", is_flag=True,
              help="Read, chunk and embed as Ray Data stages (the [ray] extra).")
@click.option("--ray-address", default=None,
              help="Ray cluster to use with --ray ('auto': the running one; default: local).")
@click.option("--ray-workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="Actors per Ray stage.")
@click.option("--ray-extract", type=click.Choice(["driver", "ray"]), default="driver",
              show_default=True, help="Where hipporag extraction runs with --ray.")
@progress_option
@json_option
def ingest(paths: tuple[Path, ...], memory_dir: str, namespace: str | None, user: str | None,
           agent: str | None, session: str | None, max_tokens: int, overlap: int,
           batch_size: int, text_field: str, embedder: str | None, backends: str | None,
           llm_spec: str | None, use_ray: bool, ray_address: str | None, ray_workers: int,
           ray_extract: str,
           no_progress: bool, as_json: bool) -> None:
    """Ingest files and folders (.txt, .md, .jsonl, .json, .html): chunk, embed, index.

    Interrupted? Run the same command again: what is already in is skipped. Exits 1 when a
    named path does not exist or nothing could be ingested. With --ray, the same stages run
    on Ray Data (a local Ray, or --ray-address auto for a cluster)."""
    for p in paths:
        check_utf8_path(p)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise click.ClickException(f"no such file or directory: {', '.join(missing)}")
    empty = _empty_files(paths)
    from memkit.ingest import ingest_paths

    progress = show_progress(as_json, no_progress)
    if not progress and not as_json:
        note(f"ingesting {', '.join(map(str, paths))} ...")
    with open_memory(memory_dir, create=True, embedder=embedder, backends=backends,
                     llm=llm_spec, progress=progress) as mem:
        scope = scope_dict(namespace, user, agent, session)
        if use_ray:
            from memkit.scale import ingest_ray

            report = ingest_ray(mem, list(paths), scope=scope, max_tokens=max_tokens,
                                overlap=overlap, text_field=text_field, batch_size=batch_size,
                                workers=ray_workers, address=ray_address, extract=ray_extract,
                                progress=progress)
        else:
            report = ingest_paths(mem, list(paths), scope=scope, max_tokens=max_tokens,
                                  overlap=overlap, text_field=text_field,
                                  batch_size=batch_size, progress=progress)
    names = {str(f) for f in empty}  # the ingest rejects them as empty text: say "file"
    report.rejected = [r for r in report.rejected if r[0] not in names]
    report.rejected.extend((str(f), "empty file") for f in empty)
    data = {**report.as_dict(), "empty_files": [str(f) for f in empty]}

    emit(data, as_json, lambda: click.echo(
        f"added {len(report.added)}, skipped {report.skipped_duplicates} duplicates, "
        f"rejected {len(report.rejected)}"))
    for what, why in report.rejected:  # on stderr, with --json too
        warn(f"rejected {what}: {why}")
    if not report.added and not report.skipped_duplicates:
        raise click.ClickException("nothing was ingested" + (
            f" ({len(report.rejected)} rejected)" if report.rejected else " (no supported files)"))


def _empty_files(paths: tuple[Path, ...]) -> list[Path]:
    """Supported files with no text (reported as empty files rather than empty records)."""
    from memkit.ingest.files import discover

    out = []
    for f in discover(list(paths)):
        if isinstance(f, Path):
            try:
                size = f.stat().st_size
                if size == 0 or (size < 65536 and not f.read_bytes().strip()):
                    out.append(f)
            except OSError:
                continue  # the ingest reports why it cannot be read
    return out


@main.command()
@click.argument("text", type=TEXT)
@memory_option
@scope_options
@click.option("--source", default=None, type=TEXT, help="Where this memory came from.")
@click.option("--confidence", default=1.0, show_default=True, type=float,
              help="How sure the writer is, in [0, 1].")
@click.option("--ttl", default=None, type=float, help="Expire after this many seconds.")
@click.option("--metadata", default=None, type=TEXT, help="JSON object of metadata.")
@click.option("--max-tokens", default=200, show_default=True,
              help="A longer text is split into chunks of this size, as `ingest` does.")
@click.option("--no-chunk", is_flag=True,
              help="Store a long text as one item (only its start is searchable densely).")
@click.option("--embedder", default=None, help="Embedder for a new memory (minilm, hash).")
@json_option
def write(text: str, memory_dir: str, namespace: str | None, user: str | None,
          agent: str | None, session: str | None, source: str | None, confidence: float,
          ttl: float | None, metadata: str | None, max_tokens: int, no_chunk: bool,
          embedder: str | None, as_json: bool) -> None:
    """Write one memory; prints its id (one id a line when a long text is chunked)."""
    try:
        meta = json.loads(metadata) if metadata else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--metadata") from exc
    if meta is not None and not isinstance(meta, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--metadata")
    scope = scope_dict(namespace, user, agent, session)
    with open_memory(memory_dir, create=True, embedder=embedder) as mem:
        pieces = [text]  # (an empty text is rejected by the memory, with its own message)
        if text.strip() and mem.embedder.count_tokens(text) > max_tokens:
            if no_chunk:
                warn(f"stored as one item of more than {max_tokens} tokens: the dense index "
                     "searches only its start")
            else:
                from memkit.ingest import chunk_text

                pieces = [c.text for c in chunk_text(text, max_tokens=max_tokens, overlap=32,
                                                     count=mem.embedder.count_tokens)]
                note(f"split a long text into {len(pieces)} items of <= {max_tokens} tokens "
                     "(--no-chunk keeps it whole)")
        written = []
        for i, piece in enumerate(pieces):
            chunk_meta = meta if len(pieces) == 1 else {**(meta or {}), "chunk": i,
                                                         "chunks": len(pieces)}
            written.append(mem.put(piece, scope, source=source, confidence=confidence,
                                   ttl=ttl, metadata=chunk_meta))

    def plain() -> None:
        for w in written:
            click.echo(w.id)
        if not any(w.created for w in written):
            note("duplicate: the same text is already stored in this scope")

    data: Any = {"id": written[0].id, "created": written[0].created}
    if len(written) > 1:
        data = {"ids": [w.id for w in written], "created": [w.created for w in written]}
    emit(data, as_json, plain)


# ---- reading ----------------------------------------------------------------------------------
@main.command()
@click.argument("query", type=TEXT)
@memory_option
@scope_options
@click.option("-k", "k", default=5, show_default=True, help="Number of hits.")
@click.option("--backend", default=None, help="Backend(s), comma-separated (fused).")
@click.option("--as-of", "as_of", default=None, type=float,
              help="Read the memory as it was at this time (seconds since the epoch).")
@click.option("--budget-tokens", default=None, type=int, help="Cap the hits' total tokens.")
@click.option("--valid-at", "valid_at", default=None, type=TEXT,
              help="Only what held in the world at this time (ISO 8601 or epoch seconds).")
@click.option("--include-invalidated", is_flag=True,
              help="Also facts that no longer hold (invalidated in event time).")
@json_option
def read(query: str, memory_dir: str, namespace: str | None, user: str | None,
         agent: str | None, session: str | None, k: int, backend: str | None,
         as_of: float | None, budget_tokens: int | None, valid_at: str | None,
         include_invalidated: bool, as_json: bool) -> None:
    """Read the memories most relevant to QUERY."""
    when: Any = valid_at
    if valid_at is not None:
        try:
            when = float(valid_at)
        except ValueError:
            pass
    with open_memory(memory_dir) as mem:
        res = mem.read(query, k=k, scope=scope_dict(namespace, user, agent, session),
                       backend=backend, as_of=as_of, budget_tokens=budget_tokens,
                       valid_at=when, include_invalidated=include_invalidated)
    data = {"query": query, "hits": [_hit_dict(h) for h in res.hits],
            "cost": {"ms": round(res.cost.ms, 2), "llm_calls": res.cost.llm_calls}}

    def text() -> None:
        if not res.hits:
            click.echo("no hits")
        for h in res.hits:
            first = h.item.text.replace("\n", " | ")
            click.echo(f"{h.rank}. [{h.item.id}] {h.score:.3f} {first[:160]}")
        click.echo(f"({res.cost.ms:.1f} ms)")

    emit(data, as_json, text)


@main.command()
@click.argument("ids", nargs=-1, required=True, type=int)
@memory_option
@json_option
def get(ids: tuple[int, ...], memory_dir: str, as_json: bool) -> None:
    """Show items by id."""
    with open_memory(memory_dir) as mem:
        items = [mem.get(i) for i in ids]
    data = [{"id": it.id, "text": it.text, "scope": it.scope.as_dict(), "source": it.source,
             "version": it.version, "valid_until": it.valid_until, "metadata": it.metadata}
            for it in items]

    def text() -> None:
        for d in data:
            click.echo(f"[{d['id']}] {d['text']}")

    emit(data, as_json, text)


@main.command()
@memory_option
@click.option("--item", "item_id", default=None, type=int, help="Only this item's entries.")
@click.option("--limit", default=20, show_default=True, help="Newest entries to show.")
@json_option
def audit(memory_dir: str, item_id: int | None, limit: int, as_json: bool) -> None:
    """Show the audit log (every write, update, delete and expiry), newest first."""
    import time

    with open_memory(memory_dir) as mem:
        rows = mem.audit(item_id, limit=limit)

    def text() -> None:
        table = [[str(r["seq"]), time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["at"])),
                  str(r["op"]), str(r["item_id"]), r["reason"] or ""] for r in rows]
        print_table(table, ["seq", "at (UTC)", "op", "item", "reason"], right={0, 3})

    emit(rows, as_json, text)


@main.command()
@memory_option
@json_option
def stats(memory_dir: str, as_json: bool) -> None:
    """Counts, sizes and per-backend figures."""
    with open_memory(memory_dir) as mem:
        data = mem.stats()

    def text() -> None:
        rows = [["memory", str(data.get("directory"))],
                ["items", f"{data['items']} current, {data['versions']} versions, "
                          f"{data['audit_rows']} audit rows"],
                ["namespaces", ", ".join(f"{k} ({v})" for k, v in data["namespaces"].items())
                 or "-"],
                ["database", human_bytes(data["db_bytes"])],
                ["embedder", str(data["embedder"])]]
        iv = data["item_vectors"]
        rows.append(["vectors", f"{iv['vectors']} passages, {iv['strings']['vectors']} "
                                f"short strings (cached by content hash)"])
        for name, figures in data["backends"].items():
            rows.append([f"backend {name}", ", ".join(f"{k} {v}" for k, v in figures.items()
                                                      if k != "vectors")])
            if isinstance(figures.get("vectors"), dict):
                vec = figures["vectors"]
                rows.append([f"  {name} vectors", ", ".join(
                    f"{k} {v}" for k, v in vec.items() if k != "why") + f" ({vec['why']})"
                    if "why" in vec else ", ".join(f"{k} {v}" for k, v in vec.items())])
        ad = data.get("adapters")
        if ad:
            stale = ad["stale_rounds"]
            rows.append(["adapters", f"{ad['rounds']} rounds ({ad['method']}), latest "
                         f"{ad['latest_round']}, {ad['lineage_items']} item versions; "
                         + (f"STALE rounds {stale} ({len(ad['stale_items'])} deleted/updated "
                            "items): memkit consolidate --retrain-stale" if stale
                            else "none stale")])
        print_table(rows)

    emit(data, as_json, text)


# ---- managing ---------------------------------------------------------------------------------
@main.command()
@click.argument("ids", nargs=-1, required=True, type=int)
@memory_option
@click.option("--reason", default=None, type=TEXT, help="Recorded in the audit log.")
@json_option
def delete(ids: tuple[int, ...], memory_dir: str, reason: str | None, as_json: bool) -> None:
    """Delete items (all versions) from the record and every index."""
    with open_memory(memory_dir) as mem:
        gone = mem.delete(list(ids), reason=reason)
    emit({"deleted": gone}, as_json,
         lambda: click.echo(f"deleted {len(gone)}: {', '.join(map(str, gone))}"))


@main.command()
@memory_option
@click.option("--policy", type=click.Choice(["ttl", "superseded"]), default="ttl",
              show_default=True, help="ttl: expired items; superseded: old versions.")
@json_option
def forget(memory_dir: str, policy: str, as_json: bool) -> None:
    """Apply a forgetting policy (expired items, or superseded versions)."""
    with open_memory(memory_dir) as mem:
        gone = mem.forget(policy)
    emit({"forgotten": gone}, as_json, lambda: click.echo(f"forgot {len(gone)}"))


@main.command()
@memory_option
@click.option("--rebuild", is_flag=True, help="Drop derived indexes and rebuild them.")
@progress_option
@json_option
def index(memory_dir: str, rebuild: bool, no_progress: bool, as_json: bool) -> None:
    """Bring every index up to date with the record (or rebuild it)."""
    progress = show_progress(as_json, no_progress)
    with open_memory(memory_dir, progress=progress) as mem:
        applied = mem.rebuild() if rebuild else mem.sync()
        items = mem.stats()["items"]

    def text() -> None:
        verb = "rebuilt" if rebuild else "up to date"
        for name, n in applied.items():
            click.echo(f"{name}: {verb}, {n} change{'s' if n != 1 else ''} applied")
        click.echo(f"{items} items")

    emit({"applied": applied, "rebuilt": rebuild, "items": items}, as_json, text)


@main.command()
@click.argument("question", type=TEXT)
@memory_option
@scope_options
@click.option("-k", "k", default=5, show_default=True, help="Hits given to the reader.")
@click.option("--backend", default=None, help="Backend(s) to read with, comma-separated.")
@click.option("--llm", "llm_spec", required=True, help="LLM spec, e.g. gguf:/path.gguf")
@json_option
def ask(question: str, memory_dir: str, namespace: str | None, user: str | None,
        agent: str | None, session: str | None, k: int, backend: str | None, llm_spec: str,
        as_json: bool) -> None:
    """Answer QUESTION from the memory with an LLM, citing the items used."""
    with open_memory(memory_dir, llm=llm_spec) as mem:
        ans = mem.answer(question, k=k, scope=scope_dict(namespace, user, agent, session),
                         backend=backend)
    data = ans.__dict__ if hasattr(ans, "__dict__") else ans
    emit(data, as_json, lambda: click.echo(getattr(ans, "text", ans)))


@main.command()
@click.option("--memory", "-m", "memory_dir", default=None, type=click.Path(file_okay=False),
              help="Where to build the demo memory. [default: a fresh temporary directory]")
@click.option("--embedder", default=None,
              help="minilm (default) or hash (instant, but no semantic matching).")
def demo(memory_dir: str | None, embedder: str | None) -> None:
    """Show what memkit is for on the committed MuSiQue sample: a multi-hop question the graph
    answers where dense retrieval misses, an update that `as_of` still sees past, a delete
    that reaches every index."""
    from memkit.demo import run_demo

    run_demo(None if memory_dir is None else Path(memory_dir), embedder=embedder)


if __name__ == "__main__":  # pragma: no cover
    main()
