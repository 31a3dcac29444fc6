"""What every ``memkit`` command shares: the error edge, opening a memory, options, output.

Kept free of heavy imports: numpy, SQLite, faiss and the embedding model load inside the
commands that need them, so ``memkit --help``, argument errors and ``stats`` start fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from memkit.errors import MemkitError, NotFound

PROG = "memkit"
MEMORY_FILES = ("memkit.toml", "memory.db")
DEBUG_ENV = "MEMKIT_DEBUG"


# ---- messages -----------------------------------------------------------------------------
def error_line(message: str) -> str:
    """The one error style of the CLI: ``memkit: error: <message>`` on one line."""
    return f"{PROG}: error: {' '.join(str(message).split())}"


def warn(message: str) -> None:
    click.echo(f"{PROG}: warning: {message}", err=True)


def note(message: str) -> None:
    click.echo(f"{PROG}: {message}", err=True)


def run_main(group: click.Group, args: list[str] | None, prog_name: str | None,
             extra: dict[str, Any]) -> Any:
    """Run ``group`` and turn every failure into one ``memkit: error:`` line and a non-zero
    status: 2 for usage errors, 1 for the rest, 130 for Ctrl-C. ``MEMKIT_DEBUG=1`` shows the
    traceback of an unexpected error."""
    try:
        return group.main(args, prog_name or PROG, standalone_mode=False, **extra)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else PROG
        click.echo(error_line(f"{exc.format_message()} (see '{where} --help')"), err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(error_line(exc.format_message()), err=True)
        sys.exit(exc.exit_code)
    except MemkitError as exc:
        click.echo(error_line(str(exc)), err=True)
        sys.exit(1)
    except (click.Abort, KeyboardInterrupt):
        click.echo(error_line("interrupted; rerun the same command to resume"), err=True)
        sys.exit(130)
    except BrokenPipeError:  # `memkit read ... | head`
        sys.stderr.close()
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the CLI promises one line, never a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        click.echo(error_line(f"unexpected {type(exc).__name__}: {exc} "
                              f"(set {DEBUG_ENV}=1 for the traceback)"), err=True)
        sys.exit(1)


# ---- parameters -----------------------------------------------------------------------------
class Utf8Text(click.ParamType):
    """A string that must be valid UTF-8 (the shell passes undecodable bytes as surrogates)."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                self.fail(f"is not valid UTF-8 (byte {exc.start} of {value!r}); "
                          "check the shell's locale or the file's encoding", param, ctx)
        return value


TEXT = Utf8Text()


def check_utf8_path(path: Path, what: str = "path") -> None:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise click.BadParameter(f"{what} {str(path)!r} is not valid UTF-8") from exc


MEMORY_HELP = "Memory directory, or a postgresql:// DSN. Env: MEMKIT_MEMORY."


def memory_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--memory", "-m", "memory_dir", envvar="MEMKIT_MEMORY",
                        default=".memkit", show_default=True, type=click.Path(file_okay=False),
                        help=MEMORY_HELP)(f)


def scope_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for name, help_text in reversed([
        ("namespace", "Scope: namespace (tenant)."), ("user", "Scope: user id."),
        ("agent", "Scope: agent id."), ("session", "Scope: session id."),
    ]):
        f = click.option(f"--{name}", default=None, type=TEXT, help=help_text)(f)
    return f


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def progress_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--no-progress", is_flag=True,
                        help="No progress bars (they are shown only on a terminal anyway).")(f)


def show_progress(as_json: bool = False, no_progress: bool = False) -> bool:
    """Progress bars only on a terminal: in logs and pipes they leave cursor codes."""
    return not as_json and not no_progress and sys.stderr.isatty()


def scope_dict(namespace: str | None, user: str | None, agent: str | None,
               session: str | None) -> dict[str, str]:
    scope = {"namespace": namespace or "default"}
    scope.update({k: v for k, v in (("user", user), ("agent", agent), ("session", session))
                  if v is not None})
    return scope


# ---- opening a memory -----------------------------------------------------------------------
def memory_exists(directory: Path) -> bool:
    """A directory holds a memory when it has its memkit.toml or its memory.db."""
    return any((directory / name).is_file() for name in MEMORY_FILES)


def _saved_embedder(directory: Path) -> str | None:
    path = directory / "memkit.toml"
    if not path.is_file():
        return None
    from memkit.config import MemoryConfig

    return MemoryConfig.load(path).embedder


@contextmanager
def open_memory(memory_dir: str | Path, *, create: bool = False, embedder: str | None = None,
                backends: str | None = None, llm: str | None = None,
                progress: bool = False) -> Iterator[Any]:
    """Open the memory in ``memory_dir``. Without ``create`` a directory that holds no memory
    is an error (a typo'd ``--memory`` must not read an empty memory and exit 0); with it, a
    new memory is created and the CLI says so on stderr. The embedding model loads on first
    use, so commands that never embed never load it."""
    from memkit.store import is_dsn

    if is_dsn(memory_dir):
        yield from _open_postgres(str(memory_dir), create=create, embedder=embedder,
                                  backends=backends, llm=llm, progress=progress)
        return
    directory = Path(memory_dir).expanduser()
    exists = memory_exists(directory)
    if not exists:
        if not create:
            raise NotFound(
                f"no memory at {directory} (no {' or '.join(MEMORY_FILES)} there); check "
                "--memory / MEMKIT_MEMORY, or create one with `memkit write` or `memkit ingest`")
        if directory.exists() and not directory.is_dir():
            raise click.BadParameter(f"{directory} exists and is not a directory",
                                     param_hint="--memory")
    from memkit.embed.lazy import lazy_embedder
    from memkit.memory import Memory

    kwargs: dict[str, Any] = {"progress": progress}
    saved = _saved_embedder(directory) if exists else None
    emb = lazy_embedder(embedder or saved)
    if embedder and saved and embedder != saved:
        built = lazy_embedder(saved)
        if (built.name, built.dim) != (emb.name, emb.dim):
            # switching would silently re-embed the whole memory with another model
            raise click.BadParameter(f"this memory is built with the embedder {saved!r}; "
                                     "--embedder only chooses one for a new memory",
                                     param_hint="--embedder")
        emb = built
    kwargs["embedder"] = emb
    mem = Memory.open(directory, **kwargs, **_backends_and_llm(backends, llm))
    if not exists:
        note(f"created a new memory at {directory}")
    try:
        yield mem
    finally:
        mem.close()


def _backends_and_llm(backends: str | None, llm: str | None) -> dict[str, Any]:
    """``Memory.open`` keywords for ``--backends a,b`` and ``--llm SPEC``."""
    kwargs: dict[str, Any] = {}
    if backends:
        kwargs["backends"] = [b.strip() for b in backends.split(",") if b.strip()]
    if llm:
        from memkit.llm import load_llm

        kwargs["llm"] = load_llm(llm)
    return kwargs


def _open_postgres(dsn: str, *, create: bool, embedder: str | None, backends: str | None,
                   llm: str | None, progress: bool) -> Iterator[Any]:
    from memkit.memory import Memory
    from memkit.store.postgres import PostgresStore, redact

    exists = PostgresStore.holds_memory(dsn)
    if not exists and not create:
        raise NotFound(f"no memory at {redact(dsn)} (its schema has no memkit tables); check "
                       "--memory / MEMKIT_MEMORY, or create one with `memkit write` or "
                       "`memkit ingest`")
    kwargs: dict[str, Any] = {"progress": progress, **_backends_and_llm(backends, llm)}
    if embedder and not exists:
        kwargs["embedder"] = embedder
    mem = Memory.open(dsn, **kwargs)
    if embedder and exists and embedder != mem.config.embedder:
        mem.close()
        raise click.BadParameter(f"this memory is built with the embedder "
                                 f"{mem.config.embedder!r}; --embedder only chooses one for a "
                                 "new memory", param_hint="--embedder")
    if not exists:
        note(f"created a new memory at {redact(dsn)}")
    try:
        yield mem
    finally:
        mem.close()


# ---- output ---------------------------------------------------------------------------------
def emit(data: Any, as_json: bool, text: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        text()


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def print_table(rows: list[list[str]], header: list[str] | None = None,
                right: set[int] | None = None) -> None:
    """Rows of cells in aligned columns (``right``: indexes of right-aligned columns)."""
    table = ([header] if header else []) + rows
    if not table:
        return
    widths = [max(len(r[i]) for r in table if i < len(r)) for i in range(len(table[0]))]
    right = right or set()
    for r in table:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                 for i, c in enumerate(r)]
        click.echo("  ".join(cells).rstrip())
