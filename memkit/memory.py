"""The Memory facade: open / write / write_many / read / get / update / delete / forget / stats.

>>> from memkit.embed import HashEmbedder
>>> with Memory.open(None, embedder=HashEmbedder()) as mem:
...     i = mem.write("Alice moved to Paris in 2021.", scope={"user": "u1"})
...     mem.read("Where did Alice move?", k=1, scope={"user": "u1"})[0].text
'Alice moved to Paris in 2021.'
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memkit._locks import RWLock
from memkit.admission import (
    admit,
    check_id,
    check_ids,
    check_now,
    check_policy,
    check_read,
    check_reason,
    check_records,
)
from memkit.backends.base import AllowedIds, Backend, BackendContext, resolve_backend
from memkit.components import backend_options, split_components
from memkit.config import DURABILITY, MemoryConfig
from memkit.embed import Embedder, load_embedder
from memkit.erasure import chain_items, checkpoint, purge_llm_cache, redact_audit
from memkit.errors import ConfigError, InvalidInput, MemkitError, NotFound
from memkit.fusion import fusion_options
from memkit.indexer import Indexer
from memkit.ingest.extractions import purge_extractions
from memkit.lineage import note_record_change
from memkit.opening import (
    bind_directory,
    cached_llm,
    file_config,
    locate,
    save_config,
    stored_config,
)
from memkit.reading import backend_names, gather, read_options_for, rerank_hits, trim_to_budget
from memkit.store import is_dsn, open_store
from memkit.store.sqlite import NewItem, Store
from memkit.types import MemoryItem, ReadResult, Scope, WriteReport, Written
from memkit.vectors.items import ItemVectors

if TYPE_CHECKING:
    from memkit.llm.base import LLM

log = logging.getLogger("memkit")

_CONSISTENCY = ("strong", "eventual")


class Memory:
    """One memory: a system of record plus derived indexes (backends). Thread-safe.

    Writes commit the record under a short lock; the :class:`~memkit.indexer.Indexer` then
    brings each backend up to date under that backend's own locks. Reads take no lock that a
    write holds while it embeds or calls an LLM."""

    def __init__(self, store: Store, directory: Path | None, config: MemoryConfig,
                 embedder: Embedder, llm: LLM | None = None, progress: bool = False, *,
                 components: dict[str, dict[str, Any]] | None = None,
                 index: str = "sync") -> None:
        self.store = store
        self.directory = directory
        self.config = config
        self.embedder = embedder
        self.llm = llm
        self.progress = progress
        self._record_lock = threading.Lock()  # record mutations that read then write
        self._life = RWLock()  # operations share it; close() takes it alone
        self._closed = False
        self.vectors = ItemVectors(store, embedder)
        components = components or {}
        self.backends: dict[str, Backend] = {}
        for name in config.backends:
            cls = resolve_backend(name)
            options = backend_options(cls, name, config.backend_options.get(name))
            ctx = BackendContext(directory=directory, store=store, embedder=embedder,
                                 vectors=self.vectors, llm=llm,
                                 components=dict(components.get(name, {})), progress=progress)
            self.backends[name] = cls(ctx, options)
        stage_ctx = BackendContext(directory=directory, store=store, embedder=embedder,
                                   vectors=self.vectors, llm=llm, progress=progress)
        self.indexer = Indexer(store, stage_ctx, self.backends, mode=index, progress=progress)
        self.indexer.catch_up(raise_errors=True)

    # ---- opening and closing ------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path | None = None, *, backends: Sequence[str] | None = None,
             embedder: Embedder | str | None = None, llm: LLM | None = None,
             config: MemoryConfig | None = None, progress: bool = False,
             index: str = "sync", components: dict[str, dict[str, Any]] | None = None,
             store: str | None = None, **options: Any) -> Memory:
        """Open (creating if needed) the memory in directory ``path``; ``None`` = in memory.

        ``path`` may be a Postgres DSN (``postgresql://user@host/db?schema=name``, extra
        ``[postgres]``): the record lives there, shared by every process that opens it; or
        give a directory and ``store=DSN`` to keep this machine's derived files there (see
        :mod:`memkit.opening`).

        A new memory saves its configuration (``memkit.toml``, or in Postgres); reopening without
        ``backends``/``embedder`` uses the saved one. ``options`` are MemoryConfig fields
        (e.g. ``max_item_chars``, ``backend_options``: each backend's typed options, checked
        strictly). ``components`` are live objects per backend, never saved (e.g.
        ``{"panini": {"nlp": spacy_pipeline}}``); live objects found in ``backend_options``
        are moved there. ``index="async"`` indexes in a background thread (bulk ingest;
        call :meth:`wait_indexed` before relying on reads). A failing open closes everything
        it opened."""
        if index not in ("sync", "async"):
            raise ConfigError(f"index must be 'sync' or 'async', got {index!r}")
        directory, target = locate(path, store)
        if config is not None and options:
            raise ConfigError(f"pass memory options in config or as keywords, not both: "
                              f"{sorted(options)}")
        saved = None if is_dsn(target) else file_config(directory)
        durability = config.durability if config is not None else options.get(
            "durability", saved.durability if saved is not None else "full")
        if durability not in DURABILITY:
            raise ConfigError(f"durability must be one of {DURABILITY}, got {durability!r}")
        opened: list[Any] = []
        try:
            record = open_store(target, durability=durability)
            opened.append(record)
            bind_directory(directory, record)
            if record.kind != "sqlite":
                saved = stored_config(record)
            if config is None:
                config = saved or MemoryConfig()
                if backends is not None:
                    config.backends = list(backends)
                if isinstance(embedder, str):
                    config.embedder = embedder
                elif isinstance(embedder, Embedder) and embedder.spec is not None:
                    config.embedder = embedder.spec
                for key, value in options.items():
                    if key not in MemoryConfig.__dataclass_fields__:
                        raise ConfigError(f"unknown memory option {key!r}")
                    setattr(config, key, value)
                config.__post_init__()
            config, live = split_components(config, components)
            emb = load_embedder(embedder if embedder is not None else config.embedder)
            if llm is None and config.llm:
                from memkit.llm import load_llm  # the LLM boundary is optional

                llm = load_llm(config.llm)
            if llm is not None:
                llm = cached_llm(llm, record)
                if llm is not None and hasattr(llm, "close"):
                    opened.append(llm)
            mem = cls(record, directory, config, emb, llm=llm, progress=progress,
                      components=live, index=index)
            opened.append(mem)
            save_config(directory, record, config)
        except BaseException:
            for obj in reversed(opened):
                try:
                    obj.close()
                except Exception:  # pragma: no cover - closing after a failure
                    log.exception("closing after a failed open")
            raise
        return mem

    def close(self) -> None:
        """Catch up, save index files and close the store (waits for operations in flight)."""
        with self._life.write():
            if self._closed:
                return
            self._closed = True
            try:
                self.indexer.close()
            finally:
                llm_close = getattr(self.llm, "close", None)
                if callable(llm_close) and getattr(self.llm, "_owns_conn", False):
                    llm_close()
                self.store.close()

    def flush(self) -> None:
        """Persist every backend's files now (they are also flushed on close)."""
        with self._op():
            self.indexer.flush()

    def wait_indexed(self, timeout: float | None = None) -> bool:
        """Block until every backend reflects every change committed so far (with
        ``index="async"``; immediate in sync mode). False if ``timeout`` passed first."""
        with self._op():
            return self.indexer.wait(timeout)

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _op(self) -> Any:
        """Context of one public operation: refuses to run on a closed memory."""
        if self._closed:
            raise MemkitError("this memory is closed")
        return self._life.read()

    # ---- keeping indexes in step with the record ----------------------------------------
    def sync(self, batch_size: int = 256) -> dict[str, int]:
        """Bring every backend up to the record's change feed; returns changes applied."""
        with self._op():
            applied = self.indexer.catch_up(raise_errors=True)
        return {n: c for n, c in applied.items() if n in self.backends}

    def rebuild(self, backends: Sequence[str] | None = None) -> dict[str, int]:
        """Drop the derived state of these backends (default: all) and rebuild it from the
        record. The record itself is never touched."""
        names = list(self.backends) if backends is None else list(backends)
        unknown = [n for n in names if n not in self.backends]
        if unknown:
            raise InvalidInput(f"backend(s) {unknown} not open in this memory")
        with self._op():
            applied = self.indexer.rebuild(names)
        return {n: c for n, c in applied.items() if n in self.backends}

    # ---- write --------------------------------------------------------------------------
    def write(self, text: str, scope: Scope | dict[str, Any] | str | None = None, *,
              source: str | None = None, confidence: float = 1.0, ttl: float | None = None,
              metadata: dict[str, Any] | None = None, event_from: Any = None,
              event_until: Any = None) -> int:
        """Write one memory; returns its id (the existing id when the same text is already
        current in the same scope). Raises InvalidInput, writing nothing, on bad input.
        ``event_from``/``event_until``: when what it says holds in the world (event time;
        epoch seconds, ISO 8601 or datetime; None = unbounded)."""
        return self.put(text, scope, source=source, confidence=confidence, ttl=ttl,
                        metadata=metadata, event_from=event_from, event_until=event_until).id

    def put(self, text: str, scope: Scope | dict[str, Any] | str | None = None, *,
            source: str | None = None, confidence: float = 1.0, ttl: float | None = None,
            metadata: dict[str, Any] | None = None, event_from: Any = None,
            event_until: Any = None) -> Written:
        """:meth:`write` that also says whether it created an item: ``Written(id, created)``
        (``created`` is False for a duplicate of a current item in the same scope)."""
        new = admit(text, scope=scope, source=source, confidence=confidence, ttl=ttl,
                    metadata=metadata, max_chars=self.config.max_item_chars,
                    event_from=event_from, event_until=event_until)
        iid, created = self._commit([new])[0]
        return Written(iid, created)

    def _commit(self, new: list[NewItem]) -> list[tuple[int, bool]]:
        with self._op():
            with self._record_lock:
                result = self.store.insert_items(new)
            self.indexer.changed()
        return result

    @contextmanager
    def _recording(self) -> Iterator[Store]:
        """One all-or-nothing record mutation of several statements (for modules such as
        :mod:`memkit.conversation`): the store's transaction under the record lock; the
        indexer is told afterwards."""
        with self._op():
            with self._record_lock, self.store.transaction():
                yield self.store
            self.indexer.changed()

    def write_many(self, records: Iterable[str | dict[str, Any]], *,
                   scope: Scope | dict[str, Any] | str | None = None, batch_size: int = 64,
                   progress: bool | None = None, total: int | None = None,
                   desc: str = "writing") -> WriteReport:
        """Write many memories in batches (one transaction and one embedding call per batch).

        Records are strings or dicts with write fields (text, scope, source, confidence, ttl,
        metadata, created_at). Resumable: rerunning after an interruption skips what is already
        in (content-hash dedup within a scope). Invalid records are reported, not raised.
        Runs as a pipeline (:mod:`memkit.ingest.pipeline`): embedding the next batches
        overlaps extracting and indexing the committed ones; one progress bar per stage."""
        check_records(records, batch_size)
        if total is None and hasattr(records, "__len__"):
            total = len(records)  # type: ignore[arg-type]
        from memkit.ingest.pipeline import write_many  # the stages live there

        return write_many(self, records, scope=scope, batch_size=batch_size,
                          show=self.progress if progress is None else progress, total=total,
                          desc=desc)

    # ---- manage -------------------------------------------------------------------------
    # Each takes an optional ``scope``: an item outside it is reported exactly like a missing
    # one (NotFound), so a confined caller (a tenant's API key) learns nothing about it.
    def _scoped(self, item_id: int, scope: Scope | dict[str, Any] | str | None) -> MemoryItem:
        item = self.store.get(item_id)
        if scope is not None and not Scope.coerce(scope).contains(item.scope):
            raise NotFound(f"no item with id {item_id}")
        return item

    def get(self, item_id: int, *, scope: Scope | dict[str, Any] | str | None = None
            ) -> MemoryItem:
        """The item with this id (any version). Raises NotFound."""
        check_id(item_id)
        with self._op():
            return self._scoped(item_id, scope)

    def versions(self, item_id: int, *, scope: Scope | dict[str, Any] | str | None = None
                 ) -> list[MemoryItem]:
        """All versions of the item's chain, oldest first."""
        check_id(item_id)
        with self._op():
            self._scoped(item_id, scope)
            return self.store.versions(item_id)

    def update(self, item_id: int, text: str, *, reason: str | None = None,
               metadata: dict[str, Any] | None = None, confidence: float | None = None,
               source: str | None = None,
               scope: Scope | dict[str, Any] | str | None = None,
               event: tuple[Any, Any] | None = None) -> int:
        """Supersede item ``item_id`` with a new version; returns the new version's id. The old
        version keeps its text and gets ``valid_until``; ``read(as_of=...)`` still sees it.
        The new version keeps the old one's event time unless ``event=(event_from,
        event_until)`` gives another (None = unbounded)."""
        check_id(item_id)
        check_reason(reason)
        if event is not None:
            from memkit.admission import check_event_time

            if not isinstance(event, tuple) or len(event) != 2:
                raise InvalidInput("event must be a tuple (event_from, event_until)")
            event = check_event_time(*event)
        with self._op():
            with self._record_lock:
                old = self._scoped(item_id, scope)
                new = admit(text, scope=old.scope,
                            source=source if source is not None else old.source,
                            confidence=old.confidence if confidence is None else confidence,
                            metadata=old.metadata if metadata is None else metadata,
                            max_chars=self.config.max_item_chars)
                new.expires_at = old.expires_at
                new.event_from, new.event_until = event if event is not None else \
                    (old.event_from, old.event_until)
                new_id = self.store.supersede(old.id, new, reason=reason)
            self.indexer.changed()
            note_record_change(self.store)
        return new_id

    def remember(self, messages: Sequence[dict[str, Any]],
                 scope: Scope | dict[str, Any] | str | None = None, *, session: str | None = None,
                 at: Any = None, facts: str = "auto", contradictions: str = "auto") -> Any:
        """Store a conversation: each turn (``{"role", "content", "name"?, "at"?}``) as an
        item with speaker, session and event time, plus standalone facts extracted from it
        (``facts``: ``"auto"``, ``"rules"``, ``"llm"``, ``"off"``), deduplicated against the
        scope, with contradicted facts invalidated (not deleted). All or nothing: a bad
        message raises InvalidInput naming it. Returns a
        :class:`~memkit.conversation.RememberReport`; see :mod:`memkit.conversation`."""
        from memkit.conversation import remember

        return remember(self, messages, scope, session=session, at=at, facts=facts,
                        contradictions=contradictions)

    def invalidate(self, item_id: int, *, at: Any = None, reason: str | None = None,
                   scope: Scope | dict[str, Any] | str | None = None) -> int:
        """End what item ``item_id`` says in event time at ``at`` (default now): reads stop
        returning it as true after ``at``, ``valid_at`` reads before still do, and nothing is
        deleted (a new version records the end). Returns the new version's id; reversible
        with :meth:`revert`. See :mod:`memkit.temporal.truth`."""
        from memkit.temporal.times import to_epoch
        from memkit.temporal.truth import invalidate

        check_id(item_id)
        check_reason(reason)
        when = time.time() if at is None else to_epoch(at, "at")
        with self._recording() as store:
            return invalidate(store, self._scoped(item_id, scope), when, reason=reason)

    def revert(self, item_id: int, *, reason: str | None = None,
               scope: Scope | dict[str, Any] | str | None = None) -> int:
        """Undo the latest change (update, invalidation, contradiction) of the chain of item
        ``item_id``: a new version restores the one before. Returns the new version's id."""
        from memkit.temporal.truth import revert

        check_id(item_id)
        check_reason(reason)
        with self._recording() as store:
            self._scoped(item_id, scope)
            return revert(store, item_id, reason=reason)

    def delete(self, ids: int | Sequence[int], *, reason: str | None = None,
               scope: Scope | dict[str, Any] | str | None = None) -> list[int]:
        """Delete items, with all their versions, from the record and every index; audited.
        All-or-nothing: raises NotFound, deleting nothing, if any id does not exist (or is
        outside ``scope``)."""
        id_list = check_ids(ids)
        check_reason(reason)
        if not id_list:
            return []
        with self._op():
            with self._record_lock:
                if scope is not None:
                    missing = [i for i in id_list if not self._visible(i, scope)]
                    if missing:
                        raise NotFound(f"no item with id(s) {missing}; nothing was deleted")
                terms = self._erasure_terms(chain_items(self.store, id_list))
                deleted = self.store.delete(id_list, reason=reason)
            self._erase(deleted, terms)
            note_record_change(self.store)
        return deleted

    def _erasure_terms(self, items: dict[int, str]) -> list[str]:
        """The texts of items about to be deleted, and what backends derived only from them."""
        terms = list(items.values())
        for backend in self.backends.values():
            terms += backend.erasure_terms(list(items))
        return terms

    def _erase(self, ids: list[int], texts: list[str]) -> None:
        """After the record dropped ``ids``: erase every trace (see :mod:`memkit.erasure`)."""
        if not ids:
            return  # nothing was deleted: the record did not change
        # index the removals now (sync), or wait for the background indexer (async), so every
        # index has dropped them before its files are saved
        self.indexer.wait()
        self.indexer.flush()
        redact_audit(self.store, ids)
        purge_llm_cache(self.store, texts)
        self.vectors.strings.purge(texts)  # cached vectors of phrases/facts derived from them
        purge_extractions(self.store, texts)  # cached spaCy extractions / parse workspaces
        checkpoint(self.store)

    def _visible(self, item_id: int, scope: Scope | dict[str, Any] | str) -> bool:
        try:
            self._scoped(item_id, scope)
        except NotFound:
            return False
        return True

    def forget(self, policy: str = "ttl", *, now: float | None = None,
               scope: Scope | dict[str, Any] | str | None = None) -> list[int]:
        """Apply a forgetting policy (within ``scope``, if given); returns the ids removed,
        each audited.

        ``ttl``: delete items whose expiry has passed. ``superseded``: delete old versions
        (as_of reads will no longer see them)."""
        check_now(now)
        check_policy(policy)
        scope_obj = Scope.coerce(scope) if scope is not None else None
        if policy not in ("ttl", "superseded"):
            raise InvalidInput(f"unknown forget policy {policy!r}; use 'ttl' or 'superseded'")
        with self._op():
            with self._record_lock:
                if policy == "ttl":
                    ids = self.store.expired_ids(now, scope=scope_obj)
                else:
                    ids = self.store.superseded_ids(scope=scope_obj)
                terms = self._erasure_terms(chain_items(self.store, ids, whole_chain=False))
                gone = self.store.delete(ids, reason=policy, op="expire",
                                         whole_chain=False) if ids else []
            self._erase(gone, terms)
        return gone

    def audit(self, item_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The audit log, newest first (optionally for one item id)."""
        with self._op():
            return self.store.audit_log(item_id, limit)

    # ---- read ---------------------------------------------------------------------------
    def read(self, query: str, k: int = 5, scope: Scope | dict[str, Any] | str | None = None,
             *, backend: str | Sequence[str] | None = None, as_of: float | None = None,
             budget_tokens: int | None = None, rerank: str | None = None,
             rerank_options: dict[str, Any] | None = None, rerank_model: str | None = None,
             read_options: dict[str, dict[str, Any]] | None = None,
             weights: dict[str, float] | None = None,
             fusion: str | dict[str, Any] | None = None,
             consistency: str = "strong", trace: bool = False, valid_at: Any = None,
             include_invalidated: bool = False, time_aware: Any = None) -> ReadResult:
        """The ``k`` best memories for ``query`` visible in ``scope``.

        ``backend``: a name, several (comma-separated or a list: fused by ``fusion``,
        ``"rrf"`` reciprocal rank (default) or ``"minmax"`` normalised scores, or a dict such
        as ``{"method": "rrf", "c": 60}``; see :mod:`memkit.fusion`), with optional
        per-backend ``weights``, or None for the first configured.
        ``as_of``: see the versions memkit had recorded at that time (system time).
        ``valid_at``: see only what holds in the world at that time (event time; epoch
        seconds, ISO 8601 or datetime); by default a read sees what holds now (or at
        ``as_of``, when given), so facts invalidated by a newer one drop out, and
        ``include_invalidated=True`` turns the event-time filter off (``Hit.invalidated``
        says which hits have ended). ``time_aware``: ``True`` or a dict of knobs
        (:mod:`memkit.temporal.query`: ``reference`` = the question's date, ``mode``,
        ``slack_days``, ``candidates``, ``half_life_days``): a time expression in the query
        ("last week", "in May 2023") moves hits of that time up; the resolved window is in
        ``traces["time"]``. ``budget_tokens``: drop trailing hits
        that would exceed this context size. ``rerank``: a reranker name (e.g. ``"sifter"``)
        applied to the hits; ``rerank_model``: a trained proxy directory for ``"sifter"``
        (:mod:`memkit.backends.sifter.trained`). ``read_options``: per-backend options for
        this read only (``{"panini": {"decomposition": [...]}}``; each backend documents its
        own and rejects unknown ones). ``consistency``: ``"strong"`` (default) waits until
        each asked backend reflects every write committed before the read; ``"eventual"``
        reads each backend as of what it has indexed (``ReadResult.positions`` says where).
        ``trace``: put each backend's trace (seed phrases and facts, QA chains, ...) in
        ``ReadResult.traces``.
        The result's ``cost`` counts exactly this read's LLM and embedding calls."""
        if rerank_model is not None:
            if rerank is None:
                raise InvalidInput("rerank_model needs rerank='sifter'")
            rerank_options = {**(rerank_options or {}), "model": str(rerank_model)}
        check_read(query, k, backend=backend, as_of=as_of, budget_tokens=budget_tokens,
                   rerank=rerank, rerank_options=rerank_options)
        if consistency not in _CONSISTENCY:
            raise InvalidInput(f"consistency must be one of {_CONSISTENCY}, got {consistency!r}")
        if not isinstance(include_invalidated, bool):
            raise InvalidInput("include_invalidated must be a bool")
        if valid_at is not None and include_invalidated:
            raise InvalidInput("valid_at filters by event time and include_invalidated turns "
                               "that filter off: pass one of them")
        if valid_at is not None:
            from memkit.temporal.times import to_epoch

            valid_at = to_epoch(valid_at, "valid_at")
        elif as_of is not None and not include_invalidated:
            valid_at = as_of
        names = backend_names(self, backend)
        per_read = read_options_for(self, names, read_options)
        fusion_opts = fusion_options(fusion)
        scope_obj = Scope.coerce(scope)
        fetch = k if rerank is None else max(k, int((rerank_options or {}).get(
            "candidates", 4 * k)))
        timing = None
        if time_aware is not None and time_aware is not False:
            from memkit.temporal.query import TimeAware

            timing = TimeAware.coerce(time_aware)
            fetch = max(fetch, timing.candidates)
        t0 = time.perf_counter()
        with self._op():
            target = self.store.last_seq()
            now = time.time()
            event_at = None if include_invalidated else (valid_at if valid_at is not None
                                                         else now)
            allowed = AllowedIds(self.store.allowed_ids(
                scope_obj, as_of=as_of, now=now,
                valid_at=None if include_invalidated else valid_at,
                holds_now=not include_invalidated),
                scope=scope_obj, as_of=as_of, now=now, event_at=event_at)
            gathered = gather(self, query, names, fetch, allowed, per_read, consistency=consistency,
                              trace=trace, fusion=fusion_opts, weights=weights,
                              scope=scope_obj, target=target)
            hits = gathered.hits
            cost, timings, traces, positions = (gathered.cost, gathered.timings,
                                                gathered.traces, gathered.positions)
            if timing is not None:
                hits, traces["time"] = timing.apply(query, hits)
            if rerank is not None:
                hits = rerank_hits(self, query, hits, k, rerank, rerank_options, cost=cost,
                                   timings=timings, traces=traces if trace else None)
        hits = hits[:k]
        if budget_tokens is not None:
            hits = trim_to_budget(hits, budget_tokens)
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        cost.ms = (time.perf_counter() - t0) * 1000
        return ReadResult(query=query, hits=hits, cost=cost, timings=timings, traces=traces,
                          positions=positions)

    # ---- answer and stats ---------------------------------------------------------------
    def answer(self, question: str, k: int = 5,
               scope: Scope | dict[str, Any] | str | None = None, **read_options: Any) -> Any:
        """Read, then have the configured LLM answer from the hits, citing item ids."""
        if self.llm is None:
            raise ConfigError("answer() needs an LLM: Memory.open(..., llm=...) or config.llm")
        from memkit.generate.reader import answer_from_hits

        result = self.read(question, k=k, scope=scope, **read_options)
        return answer_from_hits(self.llm, question, result)

    def consolidate(self, base_model: Any, method: str | None = None, *,
                    since: float | None = None,
                    scope: Scope | dict[str, Any] | str | None = None,
                    **options: Any) -> Any:
        """Fold the current memories not yet consolidated (optionally: written since
        ``since``, within ``scope``) into a LoRA adapter stored in this memory's directory.

        ``base_model`` is a local model path or a factory returning (model, tokenizer);
        ``method`` defaults to the stored rounds' method (``replay`` at first); ``options``
        go to :class:`memkit.consolidate.Consolidator` (method_options, lora, train, seed,
        ...). Items carrying ``metadata={"question", "answer"}`` train as QA pairs, others as
        next-token text. Each round's lineage (item ids and versions) is kept in the record
        (:mod:`memkit.lineage`). Needs the [train] extra. Returns the round's manifest; a
        crash mid-training leaves the previous adapter intact."""
        from memkit.consolidate.facade import consolidate

        return consolidate(self, base_model, method, since=since, scope=scope, **options)

    def consolidator(self, base_model: Any, method: str | None = None, **options: Any) -> Any:
        """The :class:`memkit.consolidate.Consolidator` of this memory (record-bound: its
        ``load_latest``/``inference`` refuse a stale adapter unless ``allow_stale=True``)."""
        from memkit.consolidate.facade import memory_consolidator

        return memory_consolidator(self, base_model, method, **options)

    def retrain_stale(self, base_model: Any, method: str | None = None, **options: Any) -> Any:
        """Rebuild stale adapters from the record, without deleted or replaced item versions
        (None when nothing was stale)."""
        from memkit.consolidate.facade import retrain_stale

        return retrain_stale(self, base_model, method, **options)

    def stats(self, *, scope: Scope | dict[str, Any] | str | None = None) -> dict[str, Any]:
        """Counts, sizes and per-backend figures; with ``scope``, only that scope's counts."""
        if scope is not None:
            scope_obj = Scope.coerce(scope)
            with self._op():
                return {"items": self.store.count(scope_obj),
                        "versions": self.store.count(scope_obj, current_only=False),
                        "scope": scope_obj.as_dict()}
        from memkit.lineage import adapter_stats

        conn = self.store.conn
        return {
            "items": self.store.count(),
            "versions": int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]),
            "namespaces": self.store.namespaces(),
            "audit_rows": int(conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]),
            "db_bytes": self.store.size_bytes(),
            "store": {"kind": self.store.kind, "location": self.store.location},
            "directory": str(self.directory) if self.directory else None,
            "embedder": self.embedder.name,
            "item_vectors": self.vectors.stats(),
            "backends": {n: {**b.stats(), "options": b.options.model_dump(mode="json"),
                             "position": self.indexer.position(n)}
                         for n, b in self.backends.items()},
            "indexing": {"mode": self.indexer.mode, "lag": self.indexer.lag(),
                         "errors": self.indexer.errors()},
            "adapters": adapter_stats(self.store, self.directory),
        }
