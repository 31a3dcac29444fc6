"""A LangGraph ``BaseStore`` over a memkit Memory: long-term memory for LangGraph agents.

Needs the [langgraph] extra. ``put`` / ``get`` / ``search`` / ``delete`` / ``list_namespaces``,
their ``a*`` variants and ``batch`` / ``abatch`` behave as LangGraph documents for its stores;
``search(..., query=...)`` is a memkit read (any backend, fused or reranked).

>>> from memkit import Memory
>>> from memkit.embed import HashEmbedder
>>> store = MemkitStore(Memory.open(None, embedder=HashEmbedder()))
>>> store.put(("u1", "memories"), "tea", {"text": "I like genmaicha tea."})
>>> store.get(("u1", "memories"), "tea").value
{'text': 'I like genmaicha tea.'}
>>> [i.key for i in store.search(("u1",), query="which tea?", limit=1)]
['tea']

**Namespaces and scopes.** Every item lives in the memkit namespace given to the constructor
(default ``"langgraph"``; the tenant boundary). A LangGraph namespace ``(a, b, *rest)`` with
key ``k`` maps to the memkit scope ``user=a, agent=b, session="rest/.../k"``, so a search under
the prefix ``(a,)`` or ``(a, b)`` is one scoped memkit read; deeper prefixes are filtered on
the exact namespace kept in the item's metadata (``langgraph``: namespace, key, value).
Labels that are not valid memkit scope values (over 200 characters) are hashed.

**Text.** What memkit indexes is the text at the store's ``index={"fields": [...]}`` paths (or
a put's ``index=[...]``), default the whole value as JSON. ``index=False`` items are stored and
listed but never ranked by a query (they fill a page after the ranked ones, like LangGraph's
InMemoryStore). Updating a key writes a new memkit version; ``delete`` removes every version.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from memkit._deps import require
from memkit.errors import InvalidInput
from memkit.memory import Memory
from memkit.types import MemoryItem, Scope

require("langgraph.store.base", "langgraph", "the LangGraph store")

from langgraph.store.base import (  # noqa: E402
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from langgraph.store.base import validate_op_namespace as _validate_op  # noqa: E402
from langgraph.store.base.embed import get_text_at_path, tokenize_path  # noqa: E402

__all__ = ["MemkitStore"]

META_KEY = "langgraph"


def _label(value: str) -> str:
    """``value`` as a memkit scope field (hashed when it is not a valid one)."""
    if 0 < len(value) <= 200 and value.isprintable():
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:40]


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _matches(value: Any, wanted: Any) -> bool:
    """LangGraph's filter semantics: equality, nested dicts, and $eq/$ne/$gt/$gte/$lt/$lte."""
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            return all(_compare(value, op, arg) for op, arg in wanted.items())
        return isinstance(value, dict) and all(_matches(value.get(k), v)
                                               for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return isinstance(value, (list, tuple)) and len(value) == len(wanted) and \
            all(_matches(a, b) for a, b in zip(value, wanted, strict=True))
    return bool(value == wanted)


def _compare(value: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return bool(value == arg)
    if op == "$ne":
        return bool(value != arg)
    if op not in ("$gt", "$gte", "$lt", "$lte"):
        raise InvalidInput(f"filter operator {op!r} is not supported; use $eq, $ne, $gt, "
                           "$gte, $lt or $lte")
    if value is None:
        return False
    a, b = float(value), float(arg)
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _namespace_matches(condition: MatchCondition, ns: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(ns) < len(path):
        return False
    part = ns[:len(path)] if condition.match_type == "prefix" else ns[len(ns) - len(path):]
    if condition.match_type not in ("prefix", "suffix"):
        raise InvalidInput(f"namespace match type {condition.match_type!r} is not supported")
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True))


class MemkitStore(BaseStore):
    """LangGraph's ``BaseStore`` on a memkit :class:`~memkit.Memory`.

    ``namespace``: the memkit namespace (tenant) holding this store's items. ``index``:
    LangGraph's index config; only ``fields`` is used (memkit embeds with the memory's own
    embedder). ``backend``, ``rerank``: passed to ``Memory.read`` for query searches.
    """

    supports_ttl = False

    def __init__(self, memory: Memory, *, namespace: str = "langgraph",
                 index: IndexConfig | None = None, backend: str | list[str] | None = None,
                 rerank: str | None = None) -> None:
        self.memory = memory
        self.namespace = Scope(namespace=namespace).namespace
        self.fields = list((index or {}).get("fields") or ["$"])
        self.backend = backend
        self.rerank = rerank
        self._put_lock = threading.Lock()  # find-then-write of one key is atomic in-process

    # ---- mapping ------------------------------------------------------------------------
    def _item_scope(self, ns: tuple[str, ...], key: str) -> Scope:
        return Scope(namespace=self.namespace, user=_label(ns[0]),
                     agent=_label(ns[1]) if len(ns) > 1 else None,
                     session=_label("/".join([*ns[2:], key])))

    def _prefix_scope(self, prefix: tuple[str, ...]) -> Scope:
        return Scope(namespace=self.namespace,
                     user=_label(prefix[0]) if prefix else None,
                     agent=_label(prefix[1]) if len(prefix) > 1 else None)

    @staticmethod
    def _record(item: MemoryItem) -> dict[str, Any] | None:
        rec = item.metadata.get(META_KEY)
        return rec if isinstance(rec, dict) and "key" in rec else None

    def _to_item(self, item: MemoryItem, score: float | None = None,
                 search: bool = False) -> Item:
        rec = self._record(item)
        assert rec is not None
        fields = {"namespace": tuple(rec["ns"]), "key": rec["key"], "value": rec["value"],
                  "created_at": _when(item.created_at), "updated_at": _when(item.valid_from)}
        if search:
            return SearchItem(score=score, **fields)
        return Item(**fields)

    def _current(self, ns: tuple[str, ...], key: str) -> MemoryItem | None:
        scope = self._item_scope(ns, key)
        if len(ns) == 1:
            scope = Scope(namespace=scope.namespace, user=scope.user, session=scope.session)
        for item in self.memory.store.iter_items(scope=scope, current_only=True):
            rec = self._record(item)
            if rec is not None and rec["key"] == key and tuple(rec["ns"]) == ns:
                return item
        return None

    def _in_prefix(self, prefix: tuple[str, ...]) -> Iterator[MemoryItem]:
        for item in self.memory.store.iter_items(scope=self._prefix_scope(prefix),
                                                 current_only=True):
            rec = self._record(item)
            if rec is not None and tuple(rec["ns"][:len(prefix)]) == prefix:
                yield item

    def _text(self, value: dict[str, Any], index: list[str] | None) -> tuple[str, bool]:
        texts: list[str] = []
        for path in index if index is not None else self.fields:
            texts.extend(t for t in get_text_at_path(value, tokenize_path(path)) if t.strip())
        if texts:
            return "\n".join(texts), True
        return json.dumps(value, ensure_ascii=False, sort_keys=True), False

    # ---- operations ---------------------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order; results line up with ``ops``."""
        results: list[Result] = []
        for op in ops:
            _validate_op(op)
            if isinstance(op, GetOp):
                found = self._current(tuple(op.namespace), op.key)
                results.append(None if found is None else self._to_item(found))
            elif isinstance(op, PutOp):
                with self._put_lock:
                    self._put(op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(self._search(op))  # type: ignore[arg-type]
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise InvalidInput(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))

    def _put(self, op: PutOp) -> None:
        ns = tuple(op.namespace)
        if not ns:
            raise InvalidInput("namespace must have at least one label")
        if op.ttl is not None:
            raise InvalidInput("MemkitStore does not support ttl")
        existing = self._current(ns, op.key)
        if op.value is None:
            if existing is not None:
                self.memory.delete([existing.id], reason="langgraph delete")
            return
        value = dict(op.value)
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"value for key {op.key!r} in {ns} is not JSON-serialisable: "
                               f"{exc}") from exc
        text, indexed = (json.dumps(value, ensure_ascii=False, sort_keys=True), False) \
            if op.index is False else self._text(value, op.index)
        meta = {META_KEY: {"ns": list(ns), "key": op.key, "value": value, "indexed": indexed}}
        if existing is not None:
            self.memory.update(existing.id, text, metadata=meta, reason="langgraph put")
            return
        written = self.memory.put(text, self._item_scope(ns, op.key), metadata=meta)
        if not written.created:
            other = self._record(self.memory.get(written.id)) or {}
            raise InvalidInput(
                f"key {op.key!r} in {ns}: the same text is already stored under key "
                f"{other.get('key')!r} in {tuple(other.get('ns', ()))}, whose memkit scope "
                "is the same; use a different key")

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        if op.limit <= 0:
            return []

        def wanted(item: MemoryItem) -> bool:
            rec = self._record(item)
            return rec is not None and tuple(rec["ns"][:len(prefix)]) == prefix and \
                all(_matches(rec["value"].get(k), v) for k, v in (op.filter or {}).items())

        end = op.offset + op.limit
        if not op.query:
            items = sorted((i for i in self._in_prefix(prefix) if wanted(i)),
                           key=lambda i: (-i.valid_from, -i.id))
            return [self._to_item(i, search=True) for i in items[op.offset:end]]  # type: ignore[misc]
        ranked: list[tuple[MemoryItem, float]] = []
        fetch = max(end, 1)
        while True:
            hits = self.memory.read(op.query, k=fetch, scope=self._prefix_scope(prefix),
                                    backend=self.backend, rerank=self.rerank).hits
            ranked = [(h.item, h.score) for h in hits
                      if wanted(h.item) and (self._record(h.item) or {}).get("indexed", True)]
            if len(ranked) >= end or len(hits) < fetch:
                break
            fetch *= 4
        page = [self._to_item(i, s, search=True) for i, s in ranked[op.offset:end]]
        if len(page) < op.limit:
            unranked = [i for i in self._in_prefix(prefix)
                        if wanted(i) and not (self._record(i) or {}).get("indexed", True)]
            page += [self._to_item(i, None, search=True) for i in unranked[:op.limit - len(page)]]
        return page  # type: ignore[return-value]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        seen = {tuple(rec["ns"]) for item in self._in_prefix(())
                if (rec := self._record(item)) is not None}
        if op.match_conditions:
            seen = {ns for ns in seen if all(_namespace_matches(c, ns)
                                             for c in op.match_conditions)}
        if op.max_depth is not None:
            seen = {ns[:op.max_depth] for ns in seen}
        return sorted(seen)[op.offset:op.offset + op.limit]
