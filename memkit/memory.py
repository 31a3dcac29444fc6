"""The Memory facade: open / write / write_many / read / get / update / delete / forget / stats.

>>> from memkit.embed import HashEmbedder
>>> with Memory.open(None, embedder=HashEmbedder()) as mem:
...     i = mem.write("Alice moved to Paris in 2021.", scope={"user": "u1"})
...     mem.read("Where did Alice move?", k=1, scope={"user": "u1"})[0].text
'Alice moved to Paris in 2021.'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from memkit._locks import RWLock
from memkit.admission import (
    admit,
    admit_record,
    check_id,
    check_ids,
    check_now,
    check_policy,
    check_read,
    check_reason,
    check_records,
)
from memkit.backends.base import AllowedIds, Backend, BackendContext, Scored, resolve_backend
from memkit.config import CONFIG_NAME, MemoryConfig
from memkit.embed import Embedder, load_embedder
from memkit.errors import ConfigError, InvalidInput, MemkitError, NotFound
from memkit.fusion import approx_tokens, reciprocal_rank_fusion
from memkit.store.sqlite import NewItem, Store
from memkit.types import Cost, Hit, MemoryItem, ReadResult, Scope, WriteReport, Written

log = logging.getLogger("memkit")

_REMOVING_OPS = {"delete", "expire"}


class Memory:
    """One memory: a system of record plus derived indexes (backends). Thread-safe."""

    def __init__(self, store: Store, directory: Path | None, config: MemoryConfig,
                 embedder: Embedder, llm: Any = None, progress: bool = False) -> None:
        self.store = store
        self.directory = directory
        self.config = config
        self.embedder = embedder
        self.llm = llm
        self.progress = progress
        self._lock = RWLock()
        self._seen_seq = -1
        # change-feed position each backend *in this process* has applied; the persisted
        # watermark is shared by every process that opens the directory
        self._applied: dict[str, int] = {}
        self._closed = False
        ctx_common = {"directory": directory, "store": store, "embedder": embedder, "llm": llm,
                      "progress": progress}
        self.backends: dict[str, Backend] = {}
        for name in config.backends:
            cls = resolve_backend(name)
            options = dict(config.backend_options.get(name, {}))
            ctx = BackendContext(options=options, **ctx_common)  # type: ignore[arg-type]
            backend = cls(ctx, **options)
            backend.open()
            self.backends[name] = backend
        self.sync()

    # ---- opening and closing ------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path | None = None, *, backends: Sequence[str] | None = None,
             embedder: Embedder | str | None = None, llm: Any = None,
             config: MemoryConfig | None = None, progress: bool = False,
             **options: Any) -> Memory:
        """Open (creating if needed) the memory in directory ``path``; ``None`` = in memory.

        A new directory saves its configuration to ``memkit.toml``; reopening without
        ``backends``/``embedder`` uses the saved one. ``options`` are MemoryConfig fields
        (e.g. ``max_item_chars``, ``backend_options``)."""
        directory = None if path is None else Path(path).expanduser()
        saved = None
        if directory is not None:
            if directory.exists() and not directory.is_dir():
                raise InvalidInput(f"memory path {directory} exists and is not a directory")
            directory.mkdir(parents=True, exist_ok=True)
            if (directory / CONFIG_NAME).exists():
                saved = MemoryConfig.load(directory / CONFIG_NAME)
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
        emb = load_embedder(embedder if embedder is not None else config.embedder)
        if llm is None and config.llm:
            from memkit.llm import load_llm  # the LLM boundary is optional

            llm = load_llm(config.llm)
        store = Store.open(":memory:" if directory is None else directory / "memory.db",
                           durability=config.durability)
        if llm is not None:
            llm = _cached(llm, store)
        try:
            mem = cls(store, directory, config, emb, llm=llm, progress=progress)
        except BaseException:
            store.close()
            raise
        if directory is not None:
            config.save(directory / CONFIG_NAME)
        return mem

    def close(self) -> None:
        if self._closed:
            return
        with self._lock.write():
            for backend in self.backends.values():
                backend.close()
            self.store.close()
            self._closed = True

    def flush(self) -> None:
        """Persist every backend's files now (they are also flushed on close)."""
        with self._lock.write():
            for backend in self.backends.values():
                backend.flush()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- keeping indexes in step with the record ----------------------------------------
    def sync(self, batch_size: int = 256) -> dict[str, int]:
        """Bring every backend up to the record's change feed; returns changes applied."""
        with self._lock.write():
            applied = {name: self._sync_backend(name, backend, batch_size)
                       for name, backend in self.backends.items()}
            self._seen_seq = self.store.last_seq()
        return applied

    def _sync_backend(self, name: str, backend: Backend, batch_size: int) -> int:
        start = self._applied.get(name)
        if start is None:
            start = self.store.watermark(name)
        changes = self.store.changes_since(start)
        if not changes:
            self._applied[name] = start
            return 0
        touched = list(dict.fromkeys(c.item_id for c in changes))
        removed = {c.item_id for c in changes if c.op in _REMOVING_OPS}
        bar = tqdm(total=len(touched), desc=f"indexing ({name})",
                   disable=not self.progress or len(touched) < batch_size)
        for start in range(0, len(touched), batch_size):
            chunk = touched[start:start + batch_size]
            present = self.store.get_many([i for i in chunk if i not in removed])
            gone = [i for i in chunk if i not in present]
            if gone:
                backend.remove(gone)
            backend.add([present[i] for i in chunk if i in present])
            bar.update(len(chunk))
        bar.close()
        last = changes[-1].seq
        self._applied[name] = last
        if last > self.store.watermark(name):
            self.store.set_watermark(name, last)
        return len(changes)

    def rebuild(self, backends: Sequence[str] | None = None) -> dict[str, int]:
        """Drop the derived state of these backends (default: all) and rebuild it from the
        record. The record itself is never touched."""
        names = list(self.backends) if backends is None else list(backends)
        with self._lock.write():
            for name in names:
                self.backends[name].reset()
                self._applied[name] = 0
        return self.sync()

    def _catch_up(self) -> None:
        """Another process may have written to this memory: index what it wrote."""
        if self.store.last_seq() != self._seen_seq:
            self.sync()

    # ---- write --------------------------------------------------------------------------
    def write(self, text: str, scope: Scope | dict[str, Any] | str | None = None, *,
              source: str | None = None, confidence: float = 1.0, ttl: float | None = None,
              metadata: dict[str, Any] | None = None) -> int:
        """Write one memory; returns its id (the existing id when the same text is already
        current in the same scope). Raises InvalidInput, writing nothing, on bad input."""
        return self.put(text, scope, source=source, confidence=confidence, ttl=ttl,
                        metadata=metadata).id

    def put(self, text: str, scope: Scope | dict[str, Any] | str | None = None, *,
            source: str | None = None, confidence: float = 1.0, ttl: float | None = None,
            metadata: dict[str, Any] | None = None) -> Written:
        """:meth:`write` that also says whether it created an item: ``Written(id, created)``
        (``created`` is False for a duplicate of a current item in the same scope)."""
        new = admit(text, scope=scope, source=source, confidence=confidence, ttl=ttl,
                    metadata=metadata, max_chars=self.config.max_item_chars)
        iid, created = self._commit([new])[0]
        return Written(iid, created)

    def _commit(self, new: list[NewItem]) -> list[tuple[int, bool]]:
        with self._lock.write():
            result = self.store.insert_items(new)
            self._sync_all(batch_size=max(len(new), 1))
        return result

    def write_many(self, records: Iterable[str | dict[str, Any]], *,
                   scope: Scope | dict[str, Any] | str | None = None, batch_size: int = 64,
                   progress: bool | None = None, total: int | None = None,
                   desc: str = "writing") -> WriteReport:
        """Write many memories in batches (one transaction and one embedding call per batch).

        Records are strings or dicts with write fields (text, scope, source, confidence, ttl,
        metadata, created_at). Resumable: rerunning after an interruption skips what is already
        in (content-hash dedup within a scope). Invalid records are reported, not raised."""
        check_records(records, batch_size)
        report = WriteReport()
        show = self.progress if progress is None else progress
        if total is None and hasattr(records, "__len__"):
            total = len(records)  # type: ignore[arg-type]
        bar = tqdm(total=total, desc=desc, disable=not show, unit="item")
        batch: list[NewItem] = []

        def flush_batch() -> None:
            for iid, created in self._commit(batch):
                if created:
                    report.added.append(iid)
                else:
                    report.skipped_duplicates += 1
            bar.update(len(batch))
            batch.clear()

        for n, record in enumerate(records):
            try:
                batch.append(admit_record(record, default_scope=scope,
                                          max_chars=self.config.max_item_chars))
            except InvalidInput as exc:
                report.rejected.append((f"record {n}", str(exc)))
                bar.update(1)
            if len(batch) >= batch_size:
                flush_batch()
        if batch:
            flush_batch()
        bar.close()
        return report

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
        with self._lock.read():
            return self._scoped(item_id, scope)

    def versions(self, item_id: int, *, scope: Scope | dict[str, Any] | str | None = None
                 ) -> list[MemoryItem]:
        """All versions of the item's chain, oldest first."""
        check_id(item_id)
        with self._lock.read():
            self._scoped(item_id, scope)
            return self.store.versions(item_id)

    def update(self, item_id: int, text: str, *, reason: str | None = None,
               metadata: dict[str, Any] | None = None, confidence: float | None = None,
               source: str | None = None,
               scope: Scope | dict[str, Any] | str | None = None) -> int:
        """Supersede item ``item_id`` with a new version; returns the new version's id. The old
        version keeps its text and gets ``valid_until``; ``read(as_of=...)`` still sees it."""
        check_id(item_id)
        check_reason(reason)
        with self._lock.write():
            old = self._scoped(item_id, scope)
            new = admit(text, scope=old.scope,
                        source=source if source is not None else old.source,
                        confidence=old.confidence if confidence is None else confidence,
                        metadata=old.metadata if metadata is None else metadata,
                        max_chars=self.config.max_item_chars)
            new.expires_at = old.expires_at
            new_id = self.store.supersede(old.id, new, reason=reason)
            self._sync_all(batch_size=16)
        return new_id

    def delete(self, ids: int | Sequence[int], *, reason: str | None = None,
               scope: Scope | dict[str, Any] | str | None = None) -> list[int]:
        """Delete items, with all their versions, from the record and every index; audited.
        All-or-nothing: raises NotFound, deleting nothing, if any id does not exist (or is
        outside ``scope``)."""
        id_list = check_ids(ids)
        check_reason(reason)
        if not id_list:
            return []
        with self._lock.write():
            if scope is not None:
                missing = [i for i in id_list if not self._visible(i, scope)]
                if missing:
                    raise NotFound(f"no item with id(s) {missing}; nothing was deleted")
            deleted = self.store.delete(id_list, reason=reason)
            self._sync_all(batch_size=256)
        return deleted

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
        with self._lock.write():
            if policy == "ttl":
                ids = self.store.expired_ids(now, scope=scope_obj)
            elif policy == "superseded":
                ids = self.store.superseded_ids(scope=scope_obj)
            else:
                raise InvalidInput(f"unknown forget policy {policy!r}; use 'ttl' or 'superseded'")
            gone = self.store.delete(ids, reason=policy, op="expire",
                                     whole_chain=False) if ids else []
            self._sync_all(batch_size=256)
        return gone

    def _sync_all(self, batch_size: int) -> None:
        """Apply the record's new changes to every backend (caller holds the write lock)."""
        for name, backend in self.backends.items():
            self._sync_backend(name, backend, batch_size=batch_size)
        self._seen_seq = self.store.last_seq()

    def audit(self, item_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The audit log, newest first (optionally for one item id)."""
        return self.store.audit_log(item_id, limit)

    # ---- read ---------------------------------------------------------------------------
    def read(self, query: str, k: int = 5, scope: Scope | dict[str, Any] | str | None = None,
             *, backend: str | Sequence[str] | None = None, as_of: float | None = None,
             budget_tokens: int | None = None, rerank: str | None = None,
             rerank_options: dict[str, Any] | None = None) -> ReadResult:
        """The ``k`` best memories for ``query`` visible in ``scope``.

        ``backend``: a name, several (comma-separated or a list: fused by reciprocal rank), or
        None for the first configured. ``as_of``: see the versions valid at that time.
        ``budget_tokens``: drop trailing hits that would exceed this context size.
        ``rerank``: a reranker name (e.g. ``"sifter"``) applied to the hits."""
        check_read(query, k, backend=backend, as_of=as_of, budget_tokens=budget_tokens,
                   rerank=rerank, rerank_options=rerank_options)
        names = self._backend_names(backend)
        scope_obj = Scope.coerce(scope)
        t0 = time.perf_counter()
        self._catch_up()
        timings: dict[str, float] = {}
        cost = Cost()
        with self._lock.read():
            allowed = AllowedIds(self.store.allowed_ids(scope_obj, as_of=as_of))
            rankings: dict[str, list[Scored]] = {}
            for name in names:
                tb = time.perf_counter()
                fetch = k if rerank is None else max(k, int((rerank_options or {}).get(
                    "candidates", 4 * k)))
                rankings[name] = self.backends[name].retrieve(query, fetch, allowed=allowed)
                timings[name] = (time.perf_counter() - tb) * 1000
                spent = self.backends[name].cost()
                cost.llm_calls += int(spent.get("llm_calls", 0))
                cost.prompt_tokens += int(spent.get("prompt_tokens", 0))
                cost.completion_tokens += int(spent.get("completion_tokens", 0))
            fetch_n = max(len(r) for r in rankings.values()) if rankings else 0
            scored = rankings[names[0]] if len(names) == 1 else \
                reciprocal_rank_fusion(rankings, k=fetch_n)
            items = self.store.get_many([s.id for s in scored])
        hits = []
        for s in scored:
            item = items.get(s.id)
            if item is None or s.id not in allowed or not scope_obj.contains(item.scope):
                continue  # deleted meanwhile, or a backend returned something out of scope
            label = names[0] if len(names) == 1 else "+".join(names)
            hits.append(Hit(item=item, score=s.score, backend=label, evidence=s.evidence))
        if rerank is not None:
            tr = time.perf_counter()
            from memkit.rerank import resolve_reranker

            reranker = resolve_reranker(rerank, self, **(rerank_options or {}))
            hits = reranker.rerank(query, hits, k)
            timings["rerank"] = (time.perf_counter() - tr) * 1000
            cost.add(getattr(reranker, "last_cost", Cost()))
        hits = hits[:k]
        if budget_tokens is not None:
            hits = _trim_to_budget(hits, budget_tokens)
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        cost.ms = (time.perf_counter() - t0) * 1000
        return ReadResult(query=query, hits=hits, cost=cost, timings=timings)

    def _backend_names(self, backend: str | Sequence[str] | None) -> list[str]:
        if backend is None:
            return [self.config.backends[0]]
        names = [b.strip() for b in backend.split(",")] if isinstance(backend, str) \
            else list(backend)
        unknown = [b for b in names if b not in self.backends]
        if unknown or not names:
            raise InvalidInput(
                f"backend(s) {unknown or names} not open in this memory; open: "
                f"{list(self.backends)} (open with Memory.open(..., backends=[...]))"
            )
        return names

    # ---- answer and stats ---------------------------------------------------------------
    def answer(self, question: str, k: int = 5,
               scope: Scope | dict[str, Any] | str | None = None, **read_options: Any) -> Any:
        """Read, then have the configured LLM answer from the hits, citing item ids."""
        if self.llm is None:
            raise ConfigError("answer() needs an LLM: Memory.open(..., llm=...) or config.llm")
        from memkit.generate.reader import answer_from_hits

        result = self.read(question, k=k, scope=scope, **read_options)
        return answer_from_hits(self.llm, question, result)

    def consolidate(self, base_model: Any, method: str = "replay", *,
                    since: float | None = None,
                    scope: Scope | dict[str, Any] | str | None = None,
                    **options: Any) -> Any:
        """Fold the current memories not yet consolidated (optionally: written since
        ``since``, within ``scope``) into a LoRA adapter stored in this memory's directory.

        ``base_model`` is a local model path or a factory returning (model, tokenizer);
        ``options`` go to :class:`memkit.consolidate.Consolidator` (method_options, lora,
        train, seed, ...). Items carrying ``metadata={"question", "answer"}`` train as QA
        pairs, others as next-token text. Needs the [train] extra. Returns the round's
        manifest; a crash mid-training leaves the previous adapter intact."""
        if self.directory is None:
            raise ConfigError("consolidation stores adapters in the memory directory: open "
                              "the memory with a path, not in memory")
        from memkit.consolidate import Consolidator

        options.setdefault("progress", self.progress)
        consolidator = Consolidator(self.directory, base_model, method, **options)
        with self._lock.read():
            items = list(self.store.iter_items(
                scope=Scope.coerce(scope) if scope is not None else None))
        return consolidator.consolidate(items, since=since)

    def stats(self, *, scope: Scope | dict[str, Any] | str | None = None) -> dict[str, Any]:
        """Counts, sizes and per-backend figures; with ``scope``, only that scope's counts."""
        if scope is not None:
            scope_obj = Scope.coerce(scope)
            with self._lock.read():
                return {"items": self.store.count(scope_obj),
                        "versions": self.store.count(scope_obj, current_only=False),
                        "scope": scope_obj.as_dict()}
        conn = self.store.conn
        db_bytes = 0
        if self.directory is not None:
            db_bytes = sum(p.stat().st_size for p in self.directory.glob("memory.db*"))
        return {
            "items": self.store.count(),
            "versions": int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]),
            "namespaces": self.store.namespaces(),
            "audit_rows": int(conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]),
            "db_bytes": db_bytes,
            "directory": str(self.directory) if self.directory else None,
            "embedder": self.embedder.name,
            "backends": {n: b.stats() for n, b in self.backends.items()},
        }


def _trim_to_budget(hits: list[Hit], budget_tokens: int) -> list[Hit]:
    out: list[Hit] = []
    used = 0
    for hit in hits:
        cost = approx_tokens(hit.item.text)
        if out and used + cost > budget_tokens:
            break
        out.append(hit)
        used += cost
    return out


def _cached(llm: Any, store: Store) -> Any:
    """Wrap the LLM in the persistent call cache kept in the memory's SQLite."""
    try:
        from memkit.llm.cache import CachedLLM
    except ImportError:
        return llm
    if isinstance(llm, CachedLLM):
        return llm
    try:
        # its own connection to memory.db (sharing the store's would bypass the store's lock)
        return CachedLLM(llm, store.path if store.path is not None else store.db)
    except MemkitError:
        raise
    except Exception as exc:  # pragma: no cover - defensive: never lose the LLM over a cache
        log.warning("LLM call cache unavailable: %s", exc)
        return llm

