"""``memkit serve`` and ``memkit keys ...`` (click); mounted into ``memkit/cli.py`` by::

    from memkit.server.cli import keys_group, serve_cmd
    main.add_command(serve_cmd, "serve")
    main.add_command(keys_group, "keys")

Also runnable without the main CLI: ``python -m memkit.server serve --memory DIR``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from memkit.errors import MemkitError


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.command("serve")
@click.option("--memory", "memory_dir", required=True, type=click.Path(file_okay=False),
              envvar="MEMKIT_MEMORY",
              help="The memory directory to serve (created if missing), or a postgresql:// DSN. "
                   "Env: MEMKIT_MEMORY.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes on one port (each opens the memory; they see each "
                   "other's writes through the record's change feed).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; a non-loopback one requires API keys.")
@click.option("--port", default=8765, show_default=True, type=int, help="TCP port.")
@click.option("--transport", type=click.Choice(["http", "stdio"]), default="http",
              show_default=True, help="http: REST + MCP at /mcp; stdio: MCP on stdin/stdout.")
@click.option("--key", envvar="MEMKIT_API_KEY", default=None,
              help="stdio: act as this API key (its namespace confines every tool call).")
@click.option("--namespace", default="default", show_default=True,
              help="Namespace for keyless access (stdio without --key; open loopback HTTP).")
@click.option("--auth", type=click.Choice(["auto", "required", "off"]), default="auto",
              show_default=True,
              help="auto: keys required once any key exists (always off loopback).")
@click.option("--embedder", default=None, help="Embedder for a new memory (default: saved).")
@click.option("--backend", "backends", multiple=True, help="Backends to open (repeatable).")
@click.option("--llm", "llm_spec", default=None,
              help="LLM for /v1/answer and the MCP answer tool (memkit.llm.load_llm spec).")
@click.option("--max-body-mb", default=16.0, show_default=True, type=float,
              help="Largest request body accepted (MiB); larger ones get 413.")
@click.option("--request-timeout", default=30.0, show_default=True, type=float,
              help="Seconds before a request answers 504.")
@click.option("--threads", default=40, show_default=True, type=int,
              help="Worker threads for memory calls (reads run in parallel).")
@click.option("--max-connections", default=1000, show_default=True, type=int,
              help="Concurrent connections/requests before the server answers 503.")
@click.option("--graceful-timeout", default=30.0, show_default=True, type=float,
              help="Seconds to let in-flight requests finish on SIGTERM/SIGINT.")
@click.option("--faiss-threads", default=1, show_default=True, type=int,
              help="OpenMP threads per faiss search (the server parallelises across requests; "
                   "more threads per single-query search only contend). 0 = faiss default.")
@click.option("--no-mcp", is_flag=True, help="Do not mount the MCP endpoint at /mcp.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="Level of the JSON access and error logs.")
def serve_cmd(memory_dir: str, workers: int, host: str, port: int, transport: str,
              key: str | None,
              namespace: str, auth: str, embedder: str | None, backends: tuple[str, ...],
              llm_spec: str | None, max_body_mb: float, request_timeout: float, threads: int,
              max_connections: int, graceful_timeout: float, faiss_threads: int, no_mcp: bool,
              log_level: str) -> None:
    """Serve a memory directory: REST API (OpenAPI at /docs) and MCP, with API keys."""
    try:
        from memkit.server.app import ServeSettings, check_bind
        from memkit.server.auth import KeyStore
        from memkit.store import is_dsn

        dsn = is_dsn(memory_dir)
        settings = ServeSettings(
            memory_dir=memory_dir if dsn else Path(memory_dir), host=host, port=port, auth=auth,
            max_body_bytes=int(max_body_mb * 2**20), request_timeout_s=request_timeout,
            max_threads=threads, faiss_threads=faiss_threads, default_namespace=namespace,
            embedder=embedder,
            backends=list(backends) or None, llm=None, mcp=not no_mcp,
            graceful_timeout_s=graceful_timeout)
        is_new = not dsn and not any((Path(memory_dir) / f).is_file()
                                     for f in ("memkit.toml", "memory.db"))
        keys = KeyStore.open(memory_dir, create=True)
        try:
            active = keys.active_count()
        finally:
            keys.close()
        if transport == "http":
            # refuse before the slow part (loading the LLM and the embedding model)
            check_bind(settings, active)
            check_port(host, port)
        if is_new:
            click.echo(f"memkit: serving a new, empty memory at {memory_dir}", err=True)
        if workers > 1:
            if transport != "http":
                raise click.UsageError("--workers is for --transport http")
            from memkit.server.workers import serve_workers

            serve_workers(settings, llm_spec, workers, log_level, max_connections)
            return
        if llm_spec:
            from memkit.llm import load_llm

            settings.llm = load_llm(llm_spec)
        if transport == "stdio":
            _serve_stdio(settings, key, log_level)
            return
    except MemkitError as exc:
        raise _fail(exc) from exc
    _serve_http(settings, log_level, max_connections)


def check_port(host: str, port: int) -> None:
    """Raise ConfigError if ``host:port`` cannot be bound (another server holds it, say)."""
    import errno
    import socket

    from memkit.errors import ConfigError

    addr = host.strip("[]")
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((addr, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} is in use on {host}; stop what holds it or "
                                  "choose another with --port") from exc
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def _serve_http(settings: Any, log_level: str, max_connections: int) -> None:
    import uvicorn

    from memkit.server.app import create_app
    from memkit.server.middleware import configure_logging

    configure_logging(log_level, stream=sys.stderr)  # JSON lines; only once we really serve
    app = create_app(settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False,
        log_level=log_level, lifespan="on", timeout_keep_alive=5,
        timeout_graceful_shutdown=int(settings.graceful_timeout_s), server_header=False,
        limit_concurrency=max_connections,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise click.ClickException("the server did not start (see the log above)")


def _serve_stdio(settings: Any, key: str | None, log_level: str) -> None:
    import anyio

    from memkit.memory import Memory
    from memkit.server.auth import KeyStore, Principal
    from memkit.server.mcp_server import run_stdio
    from memkit.server.middleware import configure_logging
    from memkit.server.service import ServerState

    mem = Memory.open(settings.memory_dir, embedder=settings.embedder,
                      backends=settings.backends, llm=settings.llm)
    keys = KeyStore.open(settings.memory_dir)
    try:
        if key:
            principal = keys.authenticate(key)
            if principal is None:
                raise click.ClickException("--key is not a valid, unrevoked key of this memory")
        else:
            principal = Principal(key_id=None, namespace=settings.default_namespace,
                                  name="stdio")
        configure_logging(log_level, stream=sys.stderr)  # stdout carries the protocol
        state = ServerState(mem, keys, auth_required=True,
                            default_namespace=settings.default_namespace,
                            request_timeout_s=settings.request_timeout_s,
                            max_threads=settings.max_threads,
                            faiss_threads=settings.faiss_threads)
        anyio.run(run_stdio, state, principal)
    finally:
        mem.close()
        keys.close()


@click.group("keys")
def keys_group() -> None:
    """Create, list and revoke the API keys of a memory (stored hashed in its SQLite)."""


@keys_group.command("create")
@click.option("--memory", "memory_dir", required=True, type=click.Path(file_okay=False),
              envvar="MEMKIT_MEMORY", help="Memory directory. Env: MEMKIT_MEMORY.")
@click.option("--namespace", default=None, help="The namespace this key is confined to.")
@click.option("--user", default=None, help="Also confine it to this user.")
@click.option("--agent", default=None, help="Also confine it to this agent.")
@click.option("--name", default=None, help="A label (who holds the key).")
@click.option("--admin", is_flag=True, help="An unconfined key (every namespace).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keys_create(memory_dir: str, namespace: str | None, user: str | None, agent: str | None,
                name: str | None, admin: bool, as_json: bool) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    from memkit.server.auth import KeyStore

    if not admin and namespace is None:
        raise click.UsageError("give --namespace NS (or --admin for an unconfined key)")
    try:
        keys = KeyStore.open(memory_dir, create=True)
        try:
            full, record = keys.create(namespace, user=user, agent=agent, name=name, admin=admin)
        finally:
            keys.close()
    except MemkitError as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps({"key": full, **record.as_dict()}))
        return
    click.echo(full)
    where = "every namespace (admin)" if admin else ", ".join(
        f"{f}={v}" for f, v in (("namespace", namespace), ("user", user), ("agent", agent)) if v)
    click.echo(f"key id {record.key_id}, confined to {where}. Store it now: it is not kept.",
               err=True)


@keys_group.command("list")
@click.option("--memory", "memory_dir", required=True, type=click.Path(file_okay=False),
              envvar="MEMKIT_MEMORY", help="Memory directory. Env: MEMKIT_MEMORY.")
@click.option("--active", is_flag=True, help="Only keys that are not revoked.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def keys_list(memory_dir: str, active: bool, as_json: bool) -> None:
    """List keys (ids, scopes and dates; never the secrets)."""
    from memkit.server.auth import KeyStore

    try:
        keys = KeyStore.open(memory_dir)
        try:
            records = keys.list(include_revoked=not active)
        finally:
            keys.close()
    except MemkitError as exc:
        raise _fail(exc) from exc

    def when(t: float | None) -> str:
        return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))

    for r in records:
        if as_json:
            click.echo(json.dumps(r.as_dict()))
            continue
        scope = "admin" if r.admin else "/".join(
            v for v in (r.namespace, r.user and f"user={r.user}",
                        r.agent and f"agent={r.agent}") if v)
        state = f"revoked {when(r.revoked_at)}" if r.revoked_at else "active"
        click.echo(f"{r.key_id}  {scope:<30} {r.name or '-':<16} created {when(r.created_at)}"
                   f"  last used {when(r.last_used_at)}  {state}")


@keys_group.command("revoke")
@click.option("--memory", "memory_dir", required=True, type=click.Path(file_okay=False),
              envvar="MEMKIT_MEMORY", help="Memory directory. Env: MEMKIT_MEMORY.")
@click.argument("key_id")
def keys_revoke(memory_dir: str, key_id: str) -> None:
    """Revoke a key (by id, or the full key); a running server rejects it from then on."""
    from memkit.server.auth import KeyStore

    try:
        keys = KeyStore.open(memory_dir)
        try:
            record = keys.revoke(key_id)
        finally:
            keys.close()
    except MemkitError as exc:
        raise _fail(exc) from exc
    click.echo(f"revoked {record.key_id}")


@click.group()
def _standalone() -> None:
    """memkit server commands (``python -m memkit.server``)."""


_standalone.add_command(serve_cmd, "serve")
_standalone.add_command(keys_group, "keys")
