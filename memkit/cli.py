"""The ``memkit`` command line. Library errors become one-line messages with exit status 1."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import click

from memkit.errors import MemkitError

MEMORY_HELP = "Memory directory (created if missing). Env: MEMKIT_MEMORY."

# commands that live in optional packages, imported only when used
_LAZY = {
    "eval": ("memkit.eval.cli", "eval_group", "eval"),
    "serve": ("memkit.server.cli", "serve_cmd", "server"),
    "keys": ("memkit.server.cli", "keys_group", "server"),
}
_LAZY_HELP = {
    "eval": "Run a benchmark (MuSiQue, LoCoMo, ...) and write a report.",
    "serve": "Serve a memory over REST and MCP.",
    "keys": "Create, list and revoke API keys for `memkit serve`.",
}


class MemkitGroup(click.Group):
    """Mounts optional command groups lazily and turns library errors into clean messages."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _LAZY:
            module, attr, extra = _LAZY[name]
            try:
                return getattr(import_module(module), attr)  # type: ignore[no-any-return]
            except ImportError as exc:
                return _missing(name, extra, exc)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MemkitError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; rerun the same command to resume", err=True)
            ctx.exit(130)


def _missing(name: str, extra: str, exc: ImportError) -> click.Command:
    @click.command(name=name, help=_LAZY_HELP[name],
                   context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args: tuple[str, ...]) -> None:
        raise click.ClickException(
            f"`memkit {name}` needs the optional extra [{extra}] "
            f"(pip install 'memkit[{extra}]'): {exc}"
        )

    return cmd


def memory_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--memory", "-m", "memory_dir", envvar="MEMKIT_MEMORY",
                        default=".memkit", show_default=True, type=click.Path(file_okay=False),
                        help=MEMORY_HELP)(f)


def scope_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for name, help_text in reversed([
        ("namespace", "Scope: namespace (tenant)."), ("user", "Scope: user id."),
        ("agent", "Scope: agent id."), ("session", "Scope: session id."),
    ]):
        f = click.option(f"--{name}", default=None, help=help_text)(f)
    return f


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def _scope(namespace: str | None, user: str | None, agent: str | None,
           session: str | None) -> dict[str, str]:
    scope = {"namespace": namespace or "default"}
    scope.update({k: v for k, v in (("user", user), ("agent", agent), ("session", session))
                  if v is not None})
    return scope


def _open(memory_dir: str, *, embedder: str | None = None, backends: str | None = None,
          llm: str | None = None, progress: bool = True) -> Any:
    from memkit.memory import Memory

    kwargs: dict[str, Any] = {"progress": progress}
    if embedder:
        kwargs["embedder"] = embedder
    if backends:
        kwargs["backends"] = [b.strip() for b in backends.split(",") if b.strip()]
    if llm:
        from memkit.llm import load_llm

        kwargs["llm"] = load_llm(llm)
    return Memory.open(Path(memory_dir), **kwargs)


def _emit(data: Any, as_json: bool, text: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        text()


def _hit_dict(hit: Any) -> dict[str, Any]:
    item = hit.item
    return {"rank": hit.rank, "id": item.id, "score": round(hit.score, 6),
            "backend": hit.backend, "text": item.text, "source": item.source,
            "scope": item.scope.as_dict(), "metadata": item.metadata,
            "evidence": hit.evidence}


@click.group(cls=MemkitGroup)
@click.version_option(package_name="memkit")
def main() -> None:
    """memkit: long-term memory for LLM agents."""


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
@json_option
def ingest(paths: tuple[Path, ...], memory_dir: str, namespace: str | None, user: str | None,
           agent: str | None, session: str | None, max_tokens: int, overlap: int,
           batch_size: int, text_field: str, embedder: str | None, backends: str | None,
           as_json: bool) -> None:
    """Ingest files and folders (.txt, .md, .jsonl, .json, .html): chunk, embed, index.

    Interrupted? Run the same command again: what is already in is skipped."""
    from memkit.ingest import ingest_paths

    with _open(memory_dir, embedder=embedder, backends=backends) as mem:
        report = ingest_paths(mem, list(paths), scope=_scope(namespace, user, agent, session),
                              max_tokens=max_tokens, overlap=overlap, text_field=text_field,
                              batch_size=batch_size, progress=not as_json)

    def text() -> None:
        click.echo(f"added {len(report.added)}, skipped {report.skipped_duplicates} duplicates, "
                   f"rejected {len(report.rejected)}")
        for what, why in report.rejected:
            click.echo(f"  rejected {what}: {why}")

    _emit(report.as_dict(), as_json, text)


@main.command()
@click.argument("text")
@memory_option
@scope_options
@click.option("--source", default=None, help="Where this memory came from.")
@click.option("--confidence", default=1.0, show_default=True, type=float,
              help="How sure the writer is, in [0, 1].")
@click.option("--ttl", default=None, type=float, help="Expire after this many seconds.")
@click.option("--metadata", default=None, help="JSON object of metadata.")
@json_option
def write(text: str, memory_dir: str, namespace: str | None, user: str | None,
          agent: str | None, session: str | None, source: str | None, confidence: float,
          ttl: float | None, metadata: str | None, as_json: bool) -> None:
    """Write one memory."""
    try:
        meta = json.loads(metadata) if metadata else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--metadata") from exc
    with _open(memory_dir, progress=False) as mem:
        written = mem.put(text, _scope(namespace, user, agent, session), source=source,
                          confidence=confidence, ttl=ttl, metadata=meta)

    def plain() -> None:
        click.echo(written.id)
        if not written.created:
            click.echo("duplicate: the same text is already stored in this scope", err=True)

    _emit({"id": written.id, "created": written.created}, as_json, plain)


@main.command()
@click.argument("query")
@memory_option
@scope_options
@click.option("-k", "k", default=5, show_default=True, help="Number of hits.")
@click.option("--backend", default=None, help="Backend(s), comma-separated (fused).")
@click.option("--as-of", "as_of", default=None, type=float,
              help="Read the memory as it was at this time (seconds since the epoch).")
@click.option("--budget-tokens", default=None, type=int, help="Cap the hits' total tokens.")
@json_option
def read(query: str, memory_dir: str, namespace: str | None, user: str | None,
         agent: str | None, session: str | None, k: int, backend: str | None,
         as_of: float | None, budget_tokens: int | None, as_json: bool) -> None:
    """Read the memories most relevant to QUERY."""
    with _open(memory_dir, progress=False) as mem:
        res = mem.read(query, k=k, scope=_scope(namespace, user, agent, session),
                       backend=backend, as_of=as_of, budget_tokens=budget_tokens)
    data = {"query": query, "hits": [_hit_dict(h) for h in res.hits],
            "cost": {"ms": round(res.cost.ms, 2), "llm_calls": res.cost.llm_calls}}

    def text() -> None:
        if not res.hits:
            click.echo("no hits")
        for h in res.hits:
            first = h.item.text.replace("\n", " | ")
            click.echo(f"{h.rank}. [{h.item.id}] {h.score:.3f} {first[:160]}")
        click.echo(f"({res.cost.ms:.1f} ms)")

    _emit(data, as_json, text)


@main.command()
@click.argument("ids", nargs=-1, required=True, type=int)
@memory_option
@json_option
def get(ids: tuple[int, ...], memory_dir: str, as_json: bool) -> None:
    """Show items by id."""
    with _open(memory_dir, progress=False) as mem:
        items = [mem.get(i) for i in ids]
    data = [{"id": it.id, "text": it.text, "scope": it.scope.as_dict(), "source": it.source,
             "version": it.version, "valid_until": it.valid_until, "metadata": it.metadata}
            for it in items]
    def text() -> None:
        for d in data:
            click.echo(f"[{d['id']}] {d['text']}")

    _emit(data, as_json, text)


@main.command()
@click.argument("ids", nargs=-1, required=True, type=int)
@memory_option
@click.option("--reason", default=None, help="Recorded in the audit log.")
@json_option
def delete(ids: tuple[int, ...], memory_dir: str, reason: str | None, as_json: bool) -> None:
    """Delete items (all versions) from the record and every index."""
    with _open(memory_dir, progress=False) as mem:
        gone = mem.delete(list(ids), reason=reason)
    _emit({"deleted": gone}, as_json, lambda: click.echo(f"deleted {len(gone)}: {gone}"))


@main.command()
@memory_option
@click.option("--policy", type=click.Choice(["ttl", "superseded"]), default="ttl",
              show_default=True, help="ttl: expired items; superseded: old versions.")
@json_option
def forget(memory_dir: str, policy: str, as_json: bool) -> None:
    """Apply a forgetting policy (expired items, or superseded versions)."""
    with _open(memory_dir, progress=False) as mem:
        gone = mem.forget(policy)
    _emit({"forgotten": gone}, as_json, lambda: click.echo(f"forgot {len(gone)}"))


@main.command()
@memory_option
@json_option
def stats(memory_dir: str, as_json: bool) -> None:
    """Counts, sizes and per-backend figures."""
    with _open(memory_dir, progress=False) as mem:
        data = mem.stats()
    _emit(data, as_json, lambda: click.echo(json.dumps(data, indent=2, default=str)))


@main.command()
@memory_option
@click.option("--rebuild", is_flag=True, help="Drop derived indexes and rebuild them.")
@json_option
def index(memory_dir: str, rebuild: bool, as_json: bool) -> None:
    """Bring every index up to date with the record (or rebuild it)."""
    with _open(memory_dir) as mem:
        applied = mem.rebuild() if rebuild else mem.sync()
    _emit({"applied": applied}, as_json, lambda: click.echo(f"applied changes: {applied}"))


@main.command()
@click.argument("question")
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
    with _open(memory_dir, llm=llm_spec, progress=False) as mem:
        ans = mem.answer(question, k=k, scope=_scope(namespace, user, agent, session),
                         backend=backend)
    data = ans.__dict__ if hasattr(ans, "__dict__") else ans
    _emit(data, as_json, lambda: click.echo(getattr(ans, "text", ans)))


@main.command()
@memory_option
@click.option("--embedder", default=None, help="minilm (default) or hash.")
def demo(memory_dir: str, embedder: str | None) -> None:
    """Ingest the sample corpus in examples/docs and answer a few queries."""
    from memkit.demo import run_demo

    run_demo(Path(memory_dir), embedder=embedder)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
