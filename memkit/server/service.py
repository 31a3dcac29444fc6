"""The one place where a served request meets the memory: every REST endpoint and MCP tool
calls a :class:`ScopedMemory` method, which confines the scope to the caller's key and then
calls the matching :class:`memkit.Memory` method. There is no second code path for memory
logic here, only scope checks.

Blocking Memory calls run in worker threads (:meth:`ServerState.call`) with a deadline: on a
timeout the request answers 504 while the thread finishes on its own (a write it was doing
commits or rolls back as a whole; it is simply not acknowledged).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from memkit.errors import ConfigError, InvalidInput, NotFound, ScopeViolation
from memkit.memory import Memory
from memkit.server.auth import KeyStore, Principal, confine
from memkit.types import MemoryItem, ReadResult, Scope, WriteReport, Written

T = TypeVar("T")
_MAX_ID = 2**63 - 1  # SQLite's INTEGER range: larger ids cannot exist


class NotConfigured(ConfigError):
    """This server lacks what the request needs (e.g. an LLM for answer): HTTP 501."""


class RequestTimeout(Exception):
    """A request ran past the server's request timeout."""


class ServerState:
    """What a running server holds: the memory, the keys, the auth mode and the thread pool."""

    def __init__(self, memory: Memory, keys: KeyStore, *, auth_required: bool,
                 default_namespace: str = "default", request_timeout_s: float = 30.0,
                 max_threads: int = 40, faiss_threads: int = 1) -> None:
        self.memory = memory
        self.keys = keys
        self._auth_required = auth_required
        self.default_namespace = default_namespace
        self.request_timeout_s = request_timeout_s
        self.limiter = anyio.CapacityLimiter(max_threads)
        self.started = time.time()
        self.faiss_threads = faiss_threads
        self._local = threading.local()

    @property
    def auth_required(self) -> bool:
        """Keys are required once any key exists (sticky), or when the server was told so."""
        if not self._auth_required and self.keys.active_count() > 0:
            self._auth_required = True
        return self._auth_required

    def authenticate(self, presented: str | None) -> Principal | None:
        """The caller's principal; None means 401. Without keys (loopback) everyone is open."""
        if presented:
            principal = self.keys.authenticate(presented)
            if principal is not None:
                return principal
            return None
        if self.auth_required:
            return None
        from memkit.server.auth import OPEN

        return OPEN

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call in a worker thread, with the request deadline."""
        def run() -> T:
            self._prepare_thread()
            return fn(*args, **kwargs)

        try:
            with anyio.fail_after(self.request_timeout_s):
                return await anyio.to_thread.run_sync(run, abandon_on_cancel=True,
                                                      limiter=self.limiter)
        except TimeoutError as exc:
            raise RequestTimeout(
                f"request exceeded the server's {self.request_timeout_s:g} s timeout") from exc


    def _prepare_thread(self) -> None:
        """Once per worker thread: cap faiss's OpenMP team. OpenMP's thread count is a
        per-thread setting, and a one-query search gains nothing from a team while the
        server already runs requests in parallel (measured: 29 ms -> 1 ms per read on 2
        loaded cores)."""
        if self.faiss_threads <= 0 or getattr(self._local, "ready", False):
            return
        try:
            import faiss

            faiss.omp_set_num_threads(self.faiss_threads)
        except Exception:  # pragma: no cover - faiss is a core dependency
            pass
        self._local.ready = True


class ScopedMemory:
    """The Memory API as one principal may use it."""

    def __init__(self, memory: Memory, principal: Principal,
                 default_namespace: str = "default") -> None:
        self.memory = memory
        self.principal = principal
        self.default_namespace = default_namespace

    def scope(self, requested: Scope | dict[str, Any] | str | None = None) -> Scope:
        return confine(self.principal, requested, self.default_namespace)

    def _visible(self, item_id: int) -> MemoryItem:
        """The item if it exists and this principal may see it; else NotFound (no leak)."""
        if isinstance(item_id, bool) or not isinstance(item_id, int) or \
                not 1 <= item_id <= _MAX_ID:
            raise NotFound(f"no item with id {item_id}")
        try:
            item = self.memory.get(item_id)
        except NotFound:
            raise NotFound(f"no item with id {item_id}") from None
        if not self.principal.can_see(item.scope):
            raise NotFound(f"no item with id {item_id}")
        return item

    # ---- write --------------------------------------------------------------------------
    def write(self, text: str, scope: Any = None, **fields: Any) -> int:
        return self.put(text, scope, **fields).id

    def put(self, text: str, scope: Any = None, **fields: Any) -> Written:
        return self.memory.put(text, self.scope(scope), **fields)

    def write_many(self, records: Sequence[str | dict[str, Any]], scope: Any = None,
                   batch_size: int = 64) -> WriteReport:
        default = self.scope(scope)
        confined: list[str | dict[str, Any]] = []
        for record in records:
            if isinstance(record, dict) and record.get("scope") is not None:
                record = {**record, "scope": self.scope(record["scope"])}
            confined.append(record)
        return self.memory.write_many(confined, scope=default, batch_size=batch_size,
                                      progress=False)

    # ---- read ---------------------------------------------------------------------------
    def read(self, query: str, k: int = 5, scope: Any = None, **options: Any) -> ReadResult:
        return self.memory.read(query, k=k, scope=self.scope(scope), **options)

    def answer(self, question: str, k: int = 5, scope: Any = None, **options: Any) -> Any:
        if self.memory.llm is None:
            raise NotConfigured("this server has no LLM configured (start it with --llm SPEC)")
        return self.memory.answer(question, k=k, scope=self.scope(scope), **options)

    # ---- manage -------------------------------------------------------------------------
    def get(self, item_id: int) -> MemoryItem:
        return self._visible(item_id)

    def versions(self, item_id: int) -> list[MemoryItem]:
        self._visible(item_id)
        return self.memory.versions(item_id)

    def update(self, item_id: int, text: str, **fields: Any) -> int:
        self._visible(item_id)
        return self.memory.update(item_id, text, **fields)

    def delete(self, ids: Sequence[int], reason: str | None = None) -> list[int]:
        unique = sorted({int(i) for i in ids})
        hidden = []
        for iid in unique:
            try:
                self._visible(iid)
            except NotFound:
                hidden.append(iid)
        if hidden:
            raise NotFound(f"no item with id(s) {hidden}; nothing was deleted")
        return self.memory.delete(unique, reason=reason)

    def forget(self, policy: str = "ttl") -> list[int]:
        """``ttl`` for anyone (expired items are invisible to every tenant already; only ids
        in the caller's scope are reported); ``superseded`` rewrites every tenant's history,
        so it needs an admin key."""
        if policy not in ("ttl", "superseded"):
            raise InvalidInput(f"unknown forget policy {policy!r}; use 'ttl' or 'superseded'")
        if policy == "superseded" and not self.principal.unrestricted:
            raise ScopeViolation("forget(policy='superseded') applies to every namespace: it "
                                 "needs an admin key")
        if self.principal.unrestricted:
            return self.memory.forget(policy)
        own = self.principal.scope()
        assert own is not None
        before = {it.id: it.scope for it in self.memory.store.iter_items(own, current_only=False)}
        gone = self.memory.forget(policy)
        return [i for i in gone if i in before]

    def stats(self) -> dict[str, Any]:
        if self.principal.unrestricted:
            return self.memory.stats()
        own = self.principal.scope()
        assert own is not None
        return {
            "items": self.memory.store.count(own),
            "scope": own.as_dict(),
            "embedder": self.memory.embedder.name,
            "backends": list(self.memory.backends),
        }


def answer_payload(result: Any) -> dict[str, Any]:
    """Whatever the reader returned, as ``{answer, cited_ids, detail}``."""
    from memkit.server.models import jsonable

    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        detail = dataclasses.asdict(result)
    elif hasattr(result, "model_dump"):
        detail = result.model_dump()
    elif isinstance(result, dict):
        detail = dict(result)
    else:
        detail = {"answer": str(result)}
    detail = jsonable(detail)
    text = next((detail[k] for k in ("answer", "text") if isinstance(detail.get(k), str)), "")
    cited: list[int] = []
    for key in ("cited_ids", "citations", "ids", "evidence_ids"):
        value = detail.get(key)
        if isinstance(value, list):
            cited = [int(v) for v in value if isinstance(v, int) and not isinstance(v, bool)]
            break
    return {"answer": text, "cited_ids": cited, "detail": detail}
