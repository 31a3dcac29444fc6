"""LangChain adapters: a ``VectorStore`` and a ``BaseRetriever`` over a memkit Memory.

Needs the [langchain] extra (``langchain-core``). Both pass LangChain's standard test suites
(``langchain-tests``); see tests/integrations/test_langchain_standard.py.

>>> from memkit import Memory
>>> from memkit.embed import HashEmbedder
>>> store = MemkitVectorStore(Memory.open(None, embedder=HashEmbedder()), scope={"user": "u1"})
>>> store.add_texts(["Alice moved to Paris.", "Bob likes tea."], ids=["a", "b"])
['a', 'b']
>>> [d.id for d in store.similarity_search("Where did Alice move?", k=1)]
['a']

**Ids.** LangChain ids are strings chosen by the caller (or uuid4 when absent); memkit ids are
integers that change with every version. The LangChain id is kept in the item's metadata under
``_langchain_id`` (stripped from the Documents returned) and mapped back on every call, so it
survives updates: adding a Document under an id that exists *updates* that item (a new memkit
version; ``as_of`` reads still see the old one). Items written to the memory some other way get
the id ``"memkit:<id>"``. memkit keeps one current item per text and scope: adding a text that
is already stored returns the existing document's id, and adding it under a *different*
explicit id is refused with :class:`~memkit.errors.InvalidInput`.

**Scope.** ``scope=`` on the constructor confines writes and reads. A Document whose metadata
has ``memkit_scope`` (a dict of scope fields, or a namespace) is written in that scope, which
must lie inside the store's; the key stays in its metadata.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from memkit._deps import require
from memkit.embed.base import Embedder, normalise
from memkit.errors import InvalidInput, ScopeViolation
from memkit.integrations._common import READ_OPTIONS, hit_metadata, read_kwargs
from memkit.memory import Memory
from memkit.types import SCOPE_FIELDS, MemoryItem, Scope

require("langchain_core", "langchain", "the LangChain integration")

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402
from langchain_core.vectorstores.utils import maximal_marginal_relevance  # noqa: E402
from pydantic import ConfigDict  # noqa: E402

__all__ = ["LangChainEmbedder", "MemkitEmbeddings", "MemkitRetriever", "MemkitVectorStore"]

ID_KEY = "_langchain_id"
SCOPE_KEY = "memkit_scope"
FOREIGN_PREFIX = "memkit:"


class LangChainEmbedder(Embedder):
    """A LangChain ``Embeddings`` object as a memkit :class:`~memkit.embed.Embedder`."""

    def __init__(self, embeddings: Embeddings) -> None:
        self.embeddings = embeddings
        self.name = f"langchain:{type(embeddings).__name__}"
        self.dim = len(embeddings.embed_query("dimension probe"))
        self.spec = None

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return normalise(np.asarray(self.embeddings.embed_documents(list(texts)), np.float32))

    def embed_queries(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray:
        return normalise(np.asarray([self.embeddings.embed_query(t) for t in texts], np.float32))


class MemkitEmbeddings(Embeddings):
    """A memkit Embedder as a LangChain ``Embeddings`` object (what ``.embeddings`` returns)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self.embedder.embed(texts)]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.embedder.embed_query(text)]


def _user_metadata(item: MemoryItem) -> dict[str, Any]:
    return {k: v for k, v in item.metadata.items() if k != ID_KEY}


def _lc_id(item: MemoryItem) -> str:
    value = item.metadata.get(ID_KEY)
    return value if isinstance(value, str) else f"{FOREIGN_PREFIX}{item.id}"


class _IdMap:
    """LangChain id -> the newest memkit id seen carrying it, kept current by scanning only
    the items written since the last scan; every answer is re-checked against the record."""

    def __init__(self, memory: Memory, scope: Scope) -> None:
        self.memory, self.scope = memory, scope
        self._latest: dict[str, int] = {}
        self._after = 0
        self._lock = threading.Lock()

    def note(self, lc_id: str, item_id: int) -> None:
        with self._lock:
            self._latest[lc_id] = item_id

    def resolve(self, lc_id: str) -> MemoryItem | None:
        """The current item carrying ``lc_id`` in this scope, or None."""
        with self._lock:
            for item in self.memory.store.iter_items(scope=self.scope, current_only=False,
                                                     after_id=self._after):
                key = item.metadata.get(ID_KEY)
                if isinstance(key, str):
                    self._latest[key] = item.id
                self._after = item.id
            item_id = self._latest.get(lc_id)
        if item_id is not None:
            found = self.memory.store.get_many([item_id]).get(item_id)
            if found is not None and found.is_current and found.metadata.get(ID_KEY) == lc_id:
                return found
        number = lc_id[len(FOREIGN_PREFIX):]
        if lc_id.startswith(FOREIGN_PREFIX) and number.isdigit():
            found = self.memory.store.get_many([int(number)]).get(int(number))
            if found is not None and found.is_current and ID_KEY not in found.metadata \
                    and self.scope.contains(found.scope):
                return found
        return None


class MemkitVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over a memkit :class:`~memkit.Memory`.

    ``memory``: an open Memory (the store does not close it unless it opened it). Without one,
    an in-memory Memory is opened (at ``path`` if given) embedding with ``embedding`` (any
    LangChain Embeddings) or memkit's default embedder. ``scope`` confines every write and
    read; ``read_options`` (backend, rerank, as_of, budget_tokens, rerank_options) are the
    defaults for searches, each overridable per call as a keyword argument.
    """

    def __init__(self, memory: Memory | None = None, *, embedding: Embeddings | None = None,
                 scope: Scope | dict[str, Any] | str | None = None, path: str | None = None,
                 **read_options: Any) -> None:
        unknown = sorted(set(read_options) - (set(READ_OPTIONS) - {"scope"}))
        if unknown:
            raise InvalidInput(f"unknown MemkitVectorStore option(s) {unknown}; "
                               f"allowed: {[o for o in READ_OPTIONS if o != 'scope']}")
        self._owns_memory = memory is None
        if memory is None:
            embedder = LangChainEmbedder(embedding) if embedding is not None else None
            memory = Memory.open(path, embedder=embedder)
        self.memory = memory
        self.scope = Scope.coerce(scope)
        self.read_options = dict(read_options)
        self._embedding = embedding
        self._ids = _IdMap(memory, self.scope)
        self._write_lock = threading.Lock()

    def close(self) -> None:
        """Close the memory if this store opened it."""
        if self._owns_memory:
            self.memory.close()

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding or MemkitEmbeddings(self.memory.embedder)

    # ---- writing ------------------------------------------------------------------------
    def _doc_scope(self, metadata: dict[str, Any]) -> Scope:
        if SCOPE_KEY not in metadata:
            return self.scope
        raw = Scope.coerce(metadata[SCOPE_KEY])
        merged = {f: getattr(self.scope, f) for f in SCOPE_FIELDS}
        for f in SCOPE_FIELDS:
            value = getattr(raw, f)
            if f == "namespace" and not isinstance(metadata[SCOPE_KEY], str) and \
                    "namespace" not in metadata[SCOPE_KEY]:
                continue  # a dict without a namespace keeps the store's
            if merged[f] is not None and value is not None and merged[f] != value:
                raise ScopeViolation(f"metadata {SCOPE_KEY!r} sets {f}={value!r} but this "
                                     f"store is confined to {f}={merged[f]!r}")
            if value is not None:
                merged[f] = value
        return Scope(**merged)  # type: ignore[arg-type]

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Add or update documents; returns their ids (``ids=`` wins over ``Document.id``)."""
        ids = kwargs.pop("ids", None)
        if kwargs:
            raise InvalidInput(f"unknown add_documents argument(s) {sorted(kwargs)}")
        if ids is not None and len(ids) != len(documents):
            raise InvalidInput(f"ids has {len(ids)} entries for {len(documents)} documents")
        wanted = list(ids) if ids is not None else [d.id for d in documents]
        plans = []
        for n, (doc, lc_id) in enumerate(zip(documents, wanted, strict=True)):
            if lc_id is not None and (not isinstance(lc_id, str) or not lc_id):
                raise InvalidInput(f"document {n}: id must be a non-empty string, got {lc_id!r}")
            meta = dict(doc.metadata)
            if ID_KEY in meta:
                raise InvalidInput(f"document {n}: metadata key {ID_KEY!r} is reserved")
            plans.append((doc.page_content, meta, self._doc_scope(meta), lc_id))
        with self._write_lock:
            return [self._upsert(*plan) for plan in plans]

    def _upsert(self, text: str, meta: dict[str, Any], scope: Scope, lc_id: str | None) -> str:
        if lc_id is not None:
            current = self._ids.resolve(lc_id)
            if current is not None:
                if current.scope == scope:
                    if current.text == text and _user_metadata(current) == meta:
                        return lc_id
                    new_id = self.memory.update(current.id, text,
                                                metadata={**meta, ID_KEY: lc_id},
                                                reason="langchain add_documents")
                    self._ids.note(lc_id, new_id)
                    return lc_id
                self.memory.delete([current.id], reason="langchain add_documents: new scope")
        explicit = lc_id is not None
        lc_id = lc_id if lc_id is not None else str(uuid.uuid4())
        written = self.memory.put(text, scope, metadata={**meta, ID_KEY: lc_id})
        if written.created:
            self._ids.note(lc_id, written.id)
            return lc_id
        existing = self.memory.get(written.id)
        if explicit and _lc_id(existing) != lc_id:
            raise InvalidInput(
                f"document {lc_id!r}: the same text is already stored in this scope as document "
                f"{_lc_id(existing)!r} (memkit keeps one item per text and scope)")
        return _lc_id(existing)

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings,
                   metadatas: list[dict[str, Any]] | None = None, *,
                   ids: list[str] | None = None, **kwargs: Any) -> MemkitVectorStore:
        """A new store (in memory, or at ``path=``) holding ``texts``, embedded with
        ``embedding``; other keyword arguments go to the constructor."""
        store = cls(embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    # ---- reading ------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        out = []
        for lc_id in dict.fromkeys(ids):
            item = self._ids.resolve(lc_id)
            if item is not None:
                out.append(Document(id=lc_id, page_content=item.text,
                                    metadata=_user_metadata(item)))
        return out

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete the documents with these ids (every version); unknown ids are ignored.
        ``ids=None`` is refused rather than emptying the memory."""
        if ids is None:
            raise InvalidInput("delete needs ids; memkit does not delete a whole scope this way "
                               "(use Memory.delete with the item ids)")
        with self._write_lock:
            found = [item.id for i in ids if (item := self._ids.resolve(i)) is not None]
            if found:
                self.memory.delete(sorted(set(found)), reason=kwargs.get("reason", "langchain"))
        return True

    def similarity_search_with_score(self, query: str, k: int = 4,
                                     filter: dict[str, Any] | None = None,  # noqa: A002
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """The ``k`` best documents with memkit's score (cosine for the dense backend).
        ``filter``: metadata key -> required value. Keyword arguments: memkit read options."""
        options = read_kwargs({**self.read_options, "scope": self.scope}, kwargs)
        if options["scope"] is not self.scope:
            wanted = Scope.coerce(options["scope"])
            if not self.scope.contains(wanted) and wanted != self.scope:
                raise ScopeViolation(f"scope {wanted.as_dict()} is outside this store's "
                                     f"{self.scope.as_dict()}")
        fetch = k
        while True:
            hits = self.memory.read(query, k=fetch, **options).hits
            kept = [h for h in hits if filter is None or
                    all(h.item.metadata.get(key) == v for key, v in filter.items())]
            if len(kept) >= k or len(hits) < fetch:
                break
            fetch *= 4
        return [(Document(id=_lc_id(h.item), page_content=h.item.text,
                          metadata=_user_metadata(h.item)), float(h.score)) for h in kept[:k]]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5,
                                      **kwargs: Any) -> list[Document]:
        """``fetch_k`` candidates from a memkit read (any backend), of which ``k`` are picked
        for relevance and diversity, on the memory's embeddings of the texts."""
        candidates = self.similarity_search_with_score(query, max(fetch_k, k), **kwargs)
        if not candidates:
            return []
        embedder = self.memory.embedder
        vectors = embedder.embed([doc.page_content for doc, _ in candidates])
        picked = maximal_marginal_relevance(embedder.embed_query(query), vectors.tolist(),
                                            lambda_mult=lambda_mult, k=k)
        return [candidates[i][0] for i in picked]

    def _select_relevance_score_fn(self) -> Any:
        backend = self.read_options.get("backend") or self.memory.config.backends[0]
        if backend != "dense":
            raise NotImplementedError(
                f"relevance scores in [0, 1] are defined for the dense backend (cosine), "
                f"not {backend!r}; use similarity_search_with_score")
        return lambda score: max(0.0, min(1.0, (score + 1.0) / 2.0))


class MemkitRetriever(BaseRetriever):
    """A LangChain retriever over ``Memory.read`` with every memkit read option.

    Each Document carries the item's metadata plus ``score``, ``backend``, ``rank``,
    ``evidence`` (why the backend found it) and ``memkit`` (id, version, scope, source,
    times). Any option can be overridden per call: ``retriever.invoke(q, k=2, as_of=t)``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Any
    """A :class:`memkit.Memory` (or the HTTP :class:`memkit.client.Client`)."""
    k: int = 4
    scope: Any = None
    backend: str | list[str] | None = None
    """One backend, or several fused by reciprocal rank."""
    rerank: str | None = None
    rerank_options: dict[str, Any] | None = None
    budget_tokens: int | None = None
    as_of: float | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        defaults = {name: getattr(self, name) for name in READ_OPTIONS}
        options = {k: v for k, v in read_kwargs(defaults, kwargs).items() if v is not None}
        result = self.memory.read(query, k=int(kwargs.get("k", self.k)), **options)
        return [Document(id=_lc_id(h.item), page_content=h.item.text,
                         metadata=hit_metadata(h, _user_metadata(h.item))) for h in result.hits]
