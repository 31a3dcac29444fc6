"""The REST API (FastAPI) of a served memory, with the MCP endpoint mounted at ``/mcp``.

Every endpoint authenticates the caller (``Authorization: Bearer mk_...`` or ``X-API-Key``),
confines the request to the key's scope and calls one :class:`~memkit.server.service.ScopedMemory`
method, which calls the matching :class:`memkit.Memory` method in a worker thread. Library
errors become JSON error bodies with proper status codes; OpenAPI docs are at ``/docs``.

>>> app = create_app(ServeSettings(memory_dir=None))  # doctest: +SKIP
"""

import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from memkit._deps import require

require("fastapi", "server", "memkit serve")

import anyio.to_thread  # noqa: E402
from fastapi import Depends, FastAPI, Request, Security  # noqa: E402
from fastapi import Path as PathParam  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402
from starlette.routing import Route  # noqa: E402

from memkit import __version__  # noqa: E402
from memkit.config import CONFIG_NAME, MemoryConfig  # noqa: E402
from memkit.errors import (  # noqa: E402
    ConfigError,
    InvalidInput,
    LLMError,
    LLMOutputError,
    LLMUnavailable,
    MemkitError,
    MissingDependency,
    NotFound,
    ScopeViolation,
    StoreCorrupt,
)
from memkit.memory import Memory  # noqa: E402
from memkit.server import models as m  # noqa: E402
from memkit.server.auth import KeyStore, Principal  # noqa: E402
from memkit.server.docs import serve_docs_offline  # noqa: E402
from memkit.server.mcp_server import build_mcp, request_principal  # noqa: E402
from memkit.server.metrics import install_metrics  # noqa: E402
from memkit.server.middleware import ServingMiddleware  # noqa: E402
from memkit.server.service import (  # noqa: E402
    NotConfigured,
    RequestTimeout,
    ScopedMemory,
    ServerState,
)
from memkit.store import is_dsn  # noqa: E402

log = logging.getLogger("memkit.server")

STATUS: list[tuple[type[BaseException], int, str]] = [  # most specific first
    (NotFound, 404, "not_found"),
    (ScopeViolation, 403, "forbidden"),
    (MissingDependency, 501, "missing_dependency"),
    (NotConfigured, 501, "not_configured"),
    (ConfigError, 400, "config_error"),
    (InvalidInput, 400, "invalid_input"),
    (StoreCorrupt, 500, "store_corrupt"),
    (LLMUnavailable, 503, "llm_unavailable"),
    (LLMOutputError, 502, "llm_output_error"),
    (LLMError, 502, "llm_error"),
    (MemkitError, 500, "memkit_error"),
]


@dataclass
class ServeSettings:
    """How ``memkit serve`` runs. ``auth``: ``auto`` (keys required once any key exists, and
    always on a non-loopback host), ``required`` or ``off`` (loopback only)."""

    memory_dir: Path | str | None  # a directory, or a postgresql:// DSN
    host: str = "127.0.0.1"
    port: int = 8765
    auth: str = "auto"
    max_body_bytes: int = 16 * 2**20
    request_timeout_s: float = 30.0
    max_threads: int = 40
    faiss_threads: int = 1
    default_namespace: str = "default"
    embedder: str | None = None
    backends: list[str] | None = None
    llm: Any = None
    mcp: bool = True
    graceful_timeout_s: float = 30.0
    memory_options: dict[str, Any] = field(default_factory=dict)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: ServeSettings, active_keys: int) -> bool:
    """Whether keys are required; raises ConfigError for a public interface without keys."""
    if settings.auth not in ("auto", "required", "off"):
        raise ConfigError(f"auth must be auto, required or off, got {settings.auth!r}")
    public = not is_loopback(settings.host)
    if public and (settings.auth == "off" or active_keys == 0):
        raise ConfigError(
            f"refusing to serve on {settings.host} (not a loopback address) without API keys: "
            "create one with `memkit keys create --memory DIR --namespace NS` (or bind to "
            "127.0.0.1)"
        )
    return settings.auth == "required" or public or (settings.auth == "auto" and active_keys > 0)


def _has_llm(settings: ServeSettings, memory: Memory | None) -> bool:
    """Whether the served memory will have an LLM (then ``/v1/answer`` is documented; without
    one it answers 501 and is left out of the OpenAPI spec)."""
    if memory is not None:
        return memory.llm is not None
    if settings.llm is not None:
        return True
    if settings.memory_dir is None or is_dsn(settings.memory_dir):
        return False  # a Postgres memory's config is read when it opens
    path = Path(settings.memory_dir) / CONFIG_NAME
    try:
        return path.exists() and MemoryConfig.load(path).llm is not None
    except ConfigError:
        return False


def _error(status: int, type_: str, code: str, message: str, request: Request,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"type": type_, "code": code, "message": message,
                      "request_id": request.scope.get("state", {}).get("request_id")}}
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def memkit_error(request: Request, exc: Exception) -> JSONResponse:
        for cls, status, code in STATUS:
            if isinstance(exc, cls):
                if status >= 500:
                    log.error("%s: %s", type(exc).__name__, exc)
                return _error(status, type(exc).__name__, code, str(exc), request)
        raise exc  # pragma: no cover

    async def timeout(request: Request, exc: Exception) -> JSONResponse:
        return _error(504, "RequestTimeout", "timeout", str(exc), request)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        errors: list[Any] = list(getattr(exc, "errors", lambda: [])())
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors[:5]
        )
        return _error(422, "InvalidInput", "validation_error", where or "malformed request",
                      request)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", "") or ""
        # 400 here: a body that is not JSON (or not UTF-8, or nested past the parser's limit)
        names = {400: ("InvalidInput", "invalid_input"), 401: ("Unauthorized", "unauthorized"),
                 404: ("NotFound", "not_found"),
                 405: ("MethodNotAllowed", "method_not_allowed")}
        type_, code = names.get(status, ("HTTPError", f"http_{status}"))
        if status == 400:
            detail = f"body: {detail} (it must be JSON in UTF-8)"
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return _error(status, type_, code, str(detail), request, headers)

    async def too_deep(request: Request, exc: Exception) -> JSONResponse:
        return _error(400, "InvalidInput", "invalid_input", "input is too deeply nested",
                      request)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return _error(501, "MissingDependency", "missing_dependency",
                      f"a component this request needs is not installed: {exc}", request)

    app.add_exception_handler(MemkitError, memkit_error)
    app.add_exception_handler(RequestTimeout, timeout)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RecursionError, too_deep)
    app.add_exception_handler(ImportError, unavailable)


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer mk_<id>_<secret>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key")


def presented_key(headers: Any) -> str | None:
    auth = headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        return str(auth[7:].strip()) or None
    return headers.get("x-api-key") or None


def principal(request: Request,
              bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
              api_key: Annotated[str | None, Security(_api_key)]) -> Principal:
    """The caller, from ``Authorization: Bearer`` or ``X-API-Key``; 401 when rejected."""
    state: ServerState = request.app.state.memkit
    presented = bearer.credentials if bearer is not None else api_key
    who = state.authenticate(presented)
    if who is None:
        raise StarletteHTTPException(401, "missing or invalid API key")
    request.scope.setdefault("state", {})["memkit_principal"] = who
    return who


Who = Annotated[Principal, Depends(principal)]
ItemId = Annotated[int, PathParam(ge=1, le=m.MAX_ID, description=m.ID_DOC)]


class McpAuth:
    """ASGI wrapper of the MCP endpoint: authenticates like the REST API, stores the
    principal on the request scope for the tools (see mcp_server.request_principal)."""

    def __init__(self, app: Any, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        state: ServerState = self.fastapi_app.state.memkit
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        # a SQLite lookup (and, once a minute, a last-used write): off the event loop
        principal = await anyio.to_thread.run_sync(state.authenticate, presented_key(headers))
        if principal is None:
            request = Request(scope, receive)
            response = _error(401, "Unauthorized", "unauthorized", "missing or invalid API key",
                              request, {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["memkit_principal"] = principal
        await self.app(scope, receive, send)


def create_app(settings: ServeSettings, memory: Memory | None = None) -> FastAPI:
    """The ASGI app. Opens the memory in ``settings.memory_dir`` at startup (unless ``memory``
    is given; the caller then owns it) and closes it at shutdown, after in-flight writes."""
    mcp_server = build_mcp(lambda: app.state.memkit, request_principal, with_answer=True) \
        if settings.mcp else None
    mcp_http = None
    if mcp_server is not None:
        mcp_http = mcp_server.streamable_http_app(
            streamable_http_path="/mcp", stateless_http=True, json_response=True,
            max_request_body_size=settings.max_body_bytes, host=settings.host)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = memory is None
        if memory is None:
            if settings.memory_dir is None:
                raise ConfigError("serve needs a memory directory")
            mem = Memory.open(settings.memory_dir, embedder=settings.embedder,
                              backends=settings.backends, llm=settings.llm,
                              **settings.memory_options)
        else:
            mem = memory
        keys: KeyStore | None = None
        try:
            keys = KeyStore.of(mem)
            required = check_bind(settings, keys.active_count())
            state = ServerState(mem, keys, auth_required=required,
                                default_namespace=settings.default_namespace,
                                request_timeout_s=settings.request_timeout_s,
                                max_threads=settings.max_threads,
                                faiss_threads=settings.faiss_threads)
            app.state.memkit = state
            if mcp_server is not None and mem.llm is None:
                mcp_server.remove_tool("answer")
            log.info("serving", extra={"memory": mem.store.location, "auth":
                                       "required" if required else "open (loopback, no keys)",
                                       "items": mem.store.count(), "mcp": settings.mcp})
            async with contextlib.AsyncExitStack() as stack:
                if mcp_server is not None:
                    await stack.enter_async_context(mcp_server.session_manager.run())
                yield
        finally:
            if own:
                mem.close()  # waits for in-flight writes (the memory's write lock)
            if keys is not None:
                keys.close()
            log.info("stopped")

    app = FastAPI(
        title="memkit", version=__version__, lifespan=lifespan,
        description="Long-term memory for LLM agents. Authenticate with "
                    "`Authorization: Bearer <key>`; each key is confined to its namespace. "
                    "MCP (streamable HTTP) is served at `/mcp`.",
        responses=m.ERROR_RESPONSES,
    )
    app.state.settings = settings
    serve_docs_offline(app)  # Swagger UI from the swagger-ui-bundle package, not a CDN
    _install_error_handlers(app)
    app.add_middleware(ServingMiddleware, max_body_bytes=settings.max_body_bytes)
    install_metrics(app)  # GET /metrics (memkit/server/metrics.py)

    def scoped(request: Request, who: Principal) -> tuple[ServerState, ScopedMemory]:
        state: ServerState = request.app.state.memkit
        return state, ScopedMemory(state.memory, who, state.default_namespace, ids=state.ids)

    def scope_arg(model: m.ScopeModel | None) -> dict[str, Any] | None:
        return None if model is None else model.model_dump()

    @app.get("/health", response_model=m.HealthResponse, tags=["ops"])
    async def health(request: Request) -> Any:
        """Liveness and readiness: 200 when the memory's database answers."""
        state: ServerState = request.app.state.memkit
        try:
            await state.call(lambda: state.keys.store.conn.execute("SELECT 1").fetchone())
        except Exception:
            return _error(503, "Unavailable", "unavailable", "database not answering", request)
        required = await state.call(lambda: state.auth_required)
        items = await state.call(lambda: state.memory.store.count())
        return m.HealthResponse(status="ok", version=__version__,
                                uptime_s=round(time.time() - state.started, 3),
                                auth="required" if required else "open", items=items,
                                worker=os.getpid(), store=state.memory.store.kind)

    @app.get("/v1/whoami", response_model=m.WhoAmI, tags=["ops"])
    async def whoami(who: Who) -> Any:
        """The key this request authenticated as, and the scope it is confined to."""
        return m.WhoAmI(**who.as_dict())

    @app.post("/v1/memories", response_model=m.WriteResponse, tags=["write"], status_code=201,
              responses={200: {"model": m.WriteResponse,
                               "description": "duplicate: the same text is already current "
                               "in the scope; its id is returned and nothing is written"}})
    async def write(body: m.WriteRequest, request: Request, response: Response,
                    who: Who) -> Any:
        """Write one memory: 201 with the new id, or 200 with the existing id when the same
        text is already current in the scope."""
        state, mem = scoped(request, who)
        written = await state.call(mem.put, body.text, scope_arg(body.scope),
                                   source=body.source, confidence=body.confidence, ttl=body.ttl,
                                   metadata=body.metadata)
        response.status_code = 201 if written.created else 200
        return m.WriteResponse(id=written.id, created=written.created)

    @app.post("/v1/memories/batch", response_model=m.WriteManyResponse, tags=["write"])
    async def write_many(body: m.WriteManyRequest, request: Request, who: Who) -> Any:
        """Write many memories (one transaction per batch); invalid records are reported."""
        state, mem = scoped(request, who)
        records = [r if isinstance(r, str) else r.model_dump(exclude_none=True)
                   for r in body.records]
        report = await state.call(mem.write_many, records, scope_arg(body.scope),
                                  batch_size=body.batch_size)
        return m.WriteManyResponse.of(report)

    @app.post("/v1/read", response_model=m.ReadResponse, tags=["read"])
    async def read(body: m.ReadRequest, request: Request, who: Who) -> Any:
        """The k best memories for a query, within the key's scope."""
        state, mem = scoped(request, who)
        result = await state.call(mem.read, body.query, body.k, scope_arg(body.scope),
                                  backend=body.backend, as_of=body.as_of,
                                  budget_tokens=body.budget_tokens, rerank=body.rerank,
                                  valid_at=body.valid_at,
                                  include_invalidated=body.include_invalidated,
                                  fusion=body.fusion, weights=body.weights)
        return m.ReadResponse.of(result)

    @app.post("/v1/answer", response_model=m.AnswerResponse, tags=["read"],
              include_in_schema=_has_llm(settings, memory))
    async def answer(body: m.AnswerRequest, request: Request, who: Who) -> Any:
        """Read, then answer with the server's LLM, citing item ids (501 without an LLM)."""
        state, mem = scoped(request, who)
        extra = {} if body.backend is None else {"backend": body.backend}
        result = await state.call(mem.answer, body.question, body.k, scope_arg(body.scope),
                                  **extra)
        return m.AnswerResponse(**result)

    @app.get("/v1/memories/{item_id}", response_model=m.ItemModel, tags=["manage"])
    async def get(item_id: ItemId, request: Request, who: Who) -> Any:
        """One item (any version). 404 when it does not exist or is outside your scope."""
        state, mem = scoped(request, who)
        return m.ItemModel.of(await state.call(mem.get, item_id))

    @app.get("/v1/memories/{item_id}/versions", response_model=list[m.ItemModel],
             tags=["manage"])
    async def versions(item_id: ItemId, request: Request, who: Who) -> Any:
        """Every version of the item's chain, oldest first."""
        state, mem = scoped(request, who)
        return [m.ItemModel.of(i) for i in await state.call(mem.versions, item_id)]

    @app.patch("/v1/memories/{item_id}", response_model=m.UpdateResponse, tags=["manage"])
    async def update(item_id: ItemId, body: m.UpdateRequest, request: Request,
                     who: Who) -> Any:
        """Supersede an item with a new version; returns the new version's id."""
        state, mem = scoped(request, who)
        new_id = await state.call(mem.update, item_id, body.text, reason=body.reason,
                                  metadata=body.metadata, confidence=body.confidence,
                                  source=body.source)
        return m.UpdateResponse(id=new_id)

    @app.delete("/v1/memories/{item_id}", response_model=m.IdsResponse, tags=["manage"])
    async def delete_one(item_id: ItemId, request: Request, who: Who) -> Any:
        """Delete an item with all its versions; returns the deleted ids."""
        state, mem = scoped(request, who)
        return m.IdsResponse(ids=await state.call(mem.delete, [item_id]))

    @app.post("/v1/memories/delete", response_model=m.IdsResponse, tags=["manage"])
    async def delete_many(body: m.DeleteRequest, request: Request, who: Who) -> Any:
        """Delete items (all-or-nothing: 404, deleting nothing, if any id is not yours)."""
        state, mem = scoped(request, who)
        return m.IdsResponse(ids=await state.call(mem.delete, body.ids, reason=body.reason))

    @app.post("/v1/forget", response_model=m.IdsResponse, tags=["manage"])
    async def forget(body: m.ForgetRequest, request: Request, who: Who) -> Any:
        """Apply a forgetting policy; returns the ids removed (in your scope)."""
        state, mem = scoped(request, who)
        return m.IdsResponse(ids=await state.call(mem.forget, body.policy))

    @app.get("/v1/stats", response_model=dict[str, Any], tags=["ops"])
    async def stats(request: Request, who: Who) -> Any:
        """Counts and sizes (only your scope's items for a namespaced key)."""
        state, mem = scoped(request, who)
        return m.jsonable(await state.call(mem.stats))

    from memkit.server import conversation  # POST /v1/remember, /v1/memories/{id}/revert

    conversation.install(app, scoped, scope_arg, Who, ItemId)
    from memkit.server.ui import router as ui_router  # the browser inspector at /ui

    app.include_router(ui_router)
    if mcp_http is not None:
        for route in mcp_http.routes:
            if isinstance(route, Route) and route.path == "/mcp":
                app.router.routes.append(Route("/mcp", endpoint=McpAuth(route.endpoint, app),
                                               methods=["GET", "POST", "DELETE"]))
    return app
