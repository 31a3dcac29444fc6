"""The one place where a served request meets the memory: every REST endpoint and MCP tool
calls a :class:`ScopedMemory` method, which confines the scope to the caller's key and then
calls the matching :class:`memkit.Memory` method. There is no second code path for memory
logic here, only scope checks, and the mapping of item ids to the opaque per-namespace ids
that namespaced keys see (:mod:`memkit.server.ids`).

Blocking Memory calls run in worker threads (:meth:`ServerState.call`) with a deadline: on a
timeout the request answers 504 while the thread finishes on its own (a write it was doing
commits or rolls back as a whole; it is simply not acknowledged).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from memkit.errors import ConfigError, InvalidInput, MemkitError, NotFound, ScopeViolation
from memkit.memory import Memory
from memkit.server.auth import KeyStore, Principal, confine
from memkit.server.ids import IdCodec
from memkit.types import Hit, MemoryItem, ReadResult, Scope, WriteReport, Written

T = TypeVar("T")
_MAX_ID = 2**63 - 1  # SQLite's INTEGER range: larger ids cannot exist
ID_SECRET = "item_ids"
# item ids in library error messages ("item 12 was superseded", "id(s) [3, 4]")
_IDS_IN_MESSAGE = re.compile(r"\b(items?|ids?|id\(s\)) (\[?)(\d+(?:, \d+)*)(\]?)")
# evidence keys whose int values are item ids; other ``*_id`` ints (e.g. a QA pair's row id)
# come from global sequences too, and get their own opaque mapping
_ITEM_ID_KEYS = {"id", "ids", "item_id", "item_ids", "cited_ids", "root_id", "supersedes"}
_DECISION_IDS = {"item", "new_version", "by", "continues"}  # ids in a remember() report


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
        self.ids = IdCodec(keys.secret(ID_SECRET))
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
    """The Memory API as one principal may use it.

    Ids in and out are the principal's *public* ids: for a namespaced key, the opaque ids of
    its namespace (``ids``, see :mod:`memkit.server.ids`); for an admin key or an open server,
    the memory's own ids. ``ids=None`` uses the memory's own ids for everyone."""

    def __init__(self, memory: Memory, principal: Principal,
                 default_namespace: str = "default", ids: IdCodec | None = None) -> None:
        self.memory = memory
        self.principal = principal
        self.default_namespace = default_namespace
        self._codec = ids
        # the id space this principal sees (None: the memory's own ids)
        self._space = None if ids is None or principal.unrestricted else principal.namespace

    def scope(self, requested: Scope | dict[str, Any] | str | None = None) -> Scope:
        return confine(self.principal, requested, self.default_namespace)

    # ---- public <-> internal ids --------------------------------------------------------
    def public_id(self, item_id: int) -> int:
        if self._space is None or self._codec is None:
            return item_id
        return self._codec.encode(item_id, self._space)

    def _internal_id(self, public_id: Any) -> int:
        if isinstance(public_id, bool) or not isinstance(public_id, int) or \
                not 1 <= public_id <= _MAX_ID:
            raise NotFound(f"no item with id {public_id!r:.40}")
        if self._space is None or self._codec is None:
            return public_id
        internal = self._codec.decode(public_id, self._space)
        if internal is None:
            raise NotFound(f"no item with id {public_id}")
        return internal

    def _opt(self, item_id: int | None) -> int | None:
        return None if item_id is None else self.public_id(item_id)

    def _item(self, item: MemoryItem) -> MemoryItem:
        if self._space is None:
            return item
        return dataclasses.replace(item, id=self.public_id(item.id),
                                   root_id=self._opt(item.root_id),
                                   supersedes=self._opt(item.supersedes))

    def _evidence(self, value: Any, key: str = "", depth: int = 0) -> Any:
        """Evidence / reader detail with every id in it mapped to this principal's ids."""
        if self._space is None or depth > 30:
            return value
        if isinstance(value, dict):
            return {k: self._evidence(v, str(k), depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._evidence(v, key, depth + 1) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and value > 0 and \
                (key in _ITEM_ID_KEYS or key.endswith("_id") or key.endswith("_ids")):
            if key in _ITEM_ID_KEYS:
                return self.public_id(value)
            assert self._codec is not None
            return self._codec.encode(value, f"{self._space}\x00{key}")
        return value

    @contextlib.contextmanager
    def _public_errors(self) -> Iterator[None]:
        """Library errors name internal ids ("item 12 was superseded"): show public ones."""
        try:
            yield
        except MemkitError as exc:
            if self._space is None:
                raise

            def swap(match: re.Match[str]) -> str:
                ids = ", ".join(str(self.public_id(int(i))) for i in match.group(3).split(", "))
                return f"{match.group(1)} {match.group(2)}{ids}{match.group(4)}"

            message = _IDS_IN_MESSAGE.sub(swap, str(exc))
            if message == str(exc):
                raise
            try:
                public = type(exc)(message)
            except TypeError:  # an error class with another constructor: say less
                public = InvalidInput(message) if isinstance(exc, InvalidInput) else \
                    MemkitError(message)
            raise public from None

    def _visible(self, public_id: Any) -> MemoryItem:
        """The item if it exists and this principal may see it; else NotFound (no leak).
        Returns it with its internal ids."""
        item_id = self._internal_id(public_id)
        try:
            item = self.memory.get(item_id)
        except NotFound:
            raise NotFound(f"no item with id {public_id}") from None
        if not self.principal.can_see(item.scope):
            raise NotFound(f"no item with id {public_id}")
        return item

    # ---- write --------------------------------------------------------------------------
    def write(self, text: str, scope: Any = None, **fields: Any) -> int:
        return self.put(text, scope, **fields).id

    def put(self, text: str, scope: Any = None, **fields: Any) -> Written:
        with self._public_errors():
            written = self.memory.put(text, self.scope(scope), **fields)
        return Written(self.public_id(written.id), written.created)

    def write_many(self, records: Sequence[str | dict[str, Any]], scope: Any = None,
                   batch_size: int = 64) -> WriteReport:
        default = self.scope(scope)
        if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
            raise InvalidInput("records must be a list of records (strings or objects)")
        confined: list[str | dict[str, Any]] = []
        for record in records:
            if isinstance(record, dict) and record.get("scope") is not None:
                record = {**record, "scope": self.scope(record["scope"])}
            confined.append(record)
        with self._public_errors():
            report = self.memory.write_many(confined, scope=default, batch_size=batch_size,
                                            progress=False)
        report.added = [self.public_id(i) for i in report.added]
        return report

    # ---- read ---------------------------------------------------------------------------
    def read(self, query: str, k: int = 5, scope: Any = None, **options: Any) -> ReadResult:
        with self._public_errors():
            result = self.memory.read(query, k=k, scope=self.scope(scope), **options)
        if self._space is None:
            return result
        hits = [Hit(item=self._item(h.item), score=h.score, backend=h.backend, rank=h.rank,
                    evidence=self._evidence(h.evidence)) for h in result.hits]
        return dataclasses.replace(result, hits=hits)

    def answer(self, question: str, k: int = 5, scope: Any = None,
               **options: Any) -> dict[str, Any]:
        """The reader's answer as ``{answer, cited_ids, detail}`` (see answer_payload)."""
        if self.memory.llm is None:
            raise NotConfigured("this server has no LLM configured (start it with --llm SPEC)")
        with self._public_errors():
            result = self.memory.answer(question, k=k, scope=self.scope(scope), **options)
        payload = answer_payload(result)
        payload["cited_ids"] = [self.public_id(i) for i in payload["cited_ids"]]
        payload["detail"] = self._evidence(payload["detail"])
        return payload

    # ---- manage -------------------------------------------------------------------------
    def get(self, item_id: int) -> MemoryItem:
        return self._item(self._visible(item_id))

    def versions(self, item_id: int) -> list[MemoryItem]:
        item = self._visible(item_id)
        with self._public_errors():
            return [self._item(v) for v in self.memory.versions(item.id)]

    def update(self, item_id: int, text: str, **fields: Any) -> int:
        item = self._visible(item_id)
        with self._public_errors():
            return self.public_id(self.memory.update(item.id, text, **fields))

    def remember(self, messages: Any, scope: Any = None, **options: Any) -> Any:
        """``Memory.remember`` in this principal's scope; the report's ids are public."""
        with self._public_errors():
            report = self.memory.remember(messages, self.scope(scope), **options)
        for name in ("turns", "facts", "duplicates", "invalidated"):
            setattr(report, name, [self.public_id(i) for i in getattr(report, name)])
        report.decisions = [{k: self.public_id(v) if k in _DECISION_IDS and isinstance(v, int)
                             else v for k, v in d.items()} for d in report.decisions]
        return report

    def revert(self, item_id: int, reason: str | None = None) -> int:
        item = self._visible(item_id)
        with self._public_errors():
            return self.public_id(self.memory.revert(item.id, reason=reason))

    def delete(self, ids: Sequence[int], reason: str | None = None) -> list[int]:
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
            raise InvalidInput("ids must be a list of item ids")
        bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int)]
        if bad:
            raise InvalidInput(f"ids must be integers, got {bad[0]!r:.40}")
        unique = sorted(set(ids))
        hidden, internal = [], []
        for public in unique:
            try:
                internal.append(self._visible(public).id)
            except NotFound:
                hidden.append(public)
        if hidden:
            raise NotFound(f"no item with id(s) {hidden}; nothing was deleted")
        with self._public_errors():
            deleted = self.memory.delete(internal, reason=reason)
        return [self.public_id(i) for i in deleted]  # in the order of the memory's ids

    def forget(self, policy: str = "ttl") -> list[int]:
        """``ttl`` for anyone (expired items are invisible to every tenant already; only ids
        in the caller's scope are reported); ``superseded`` rewrites every tenant's history,
        so it needs an admin key."""
        if policy not in ("ttl", "superseded"):
            raise InvalidInput(f"unknown forget policy {policy!r:.60}; use 'ttl' or "
                               "'superseded'")
        if policy == "superseded" and not self.principal.unrestricted:
            raise ScopeViolation("forget(policy='superseded') applies to every namespace: it "
                                 "needs an admin key")
        if self.principal.unrestricted:
            return self.memory.forget(policy)
        own = self.principal.scope()
        assert own is not None
        before = {it.id for it in self.memory.store.iter_items(own, current_only=False)}
        gone = self.memory.forget(policy)
        return [self.public_id(i) for i in gone if i in before]

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
