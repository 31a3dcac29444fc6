"""The Backend protocol and registry. The Memory facade knows backends only through this file.

A backend is a *derived index* over the system of record. The facade feeds it the record's
change feed (``add`` for written/updated items, ``remove`` for deleted/expired ones) and
remembers, per backend, the last change it applied (the watermark), so a backend that lags the
record - after a crash, or when it is added to an existing memory - catches up on open.

Rules every backend follows:

* ``add`` and ``remove`` are idempotent: a change may be replayed after a crash, and when
  several processes open one directory each replays the others' changes into its in-memory
  state (so ``add`` of an item whose derived rows are already in SQLite must reuse them).
* ``retrieve`` returns only ids in ``allowed`` (the facade filters again, but scope is a
  security boundary, so each backend enforces it too).
* Derived state lives in the memory directory (``ctx.directory``) or in the memory's SQLite
  (``ctx.store``, own tables created with ``ctx.store.migrate(<name>, [...])``); files are
  written to a temporary name and renamed. A backend never reads another backend's tables:
  passage vectors come from the shared item-vector store (``ctx.vectors.ensure(items)``).
* ``retrieve`` leaves no state behind: its cost and trace are part of the returned
  :class:`Retrieval` (the facade meters LLM and embedding calls made inside it).
* Settings are a pydantic ``Options`` model (strict: a typo is a ConfigError naming it).
* A backend that cannot index an item right now (an LLM is down) records that and retries it
  later; it never raises out of ``add`` for one bad item.

Registering a backend::

    class MineOptions(Options):
        boost: float = 1.0

    @register_backend("mine")
    class MyBackend(Backend):
        name = "mine"
        options_model = MineOptions
        def add(self, items, prepared=None): ...
        def remove(self, ids): ...
        def retrieve(self, query, k, *, allowed, options=None):
            return Retrieval([Scored(i, 1.0) for i in allowed.ids[:k].tolist()])

Packages register through the ``memkit.backends`` entry-point group - memkit's own backends
are declared there by its ``pyproject.toml`` too (see :mod:`memkit.registry`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from memkit.embed.base import Embedder
from memkit.options import Options
from memkit.registry import registry
from memkit.store.sqlite import Store
from memkit.types import Cost, MemoryItem, Scope, Scored
from memkit.vectors.faiss_index import id_bitmap
from memkit.vectors.items import ItemVectors

if TYPE_CHECKING:
    from memkit.llm.base import LLM


@dataclass
class AllowedIds:
    """The ids a read may return: a sorted int64 array from the record's scope/validity query.

    >>> a = AllowedIds(np.array([2, 5, 9]))
    >>> 5 in a, 4 in a, len(a)
    (True, False, 3)
    """

    ids: np.ndarray
    #: what the ids were computed from, for a backend that filters in its own SQL (pgvector)
    scope: Scope | None = None
    as_of: float | None = None
    now: float | None = None
    event_at: float | None = None  # only items holding in event time then (None: any)

    def __contains__(self, item_id: object) -> bool:
        if not isinstance(item_id, (int, np.integer)):
            return False
        pos = int(np.searchsorted(self.ids, item_id))
        return pos < len(self.ids) and int(self.ids[pos]) == int(item_id)

    def __len__(self) -> int:
        return len(self.ids)

    def mask(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``ids`` are allowed (vectorised)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(self.ids) == 0:
            return np.zeros(len(ids), dtype=bool)
        pos = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
        return self.ids[pos] == ids

    def bitmap(self) -> np.ndarray:
        """Little-endian bitmap over ids (bit i set when id i is allowed), for faiss selectors."""
        return id_bitmap(self.ids)


@dataclass
class Retrieval:
    """What ``Backend.retrieve`` returns: the scored ids, what this one call cost, and (always
    cheap to build) a trace of what the backend did - the facts and phrases that seeded a
    graph walk, the decomposition and chains of a QA-network read. A return value, never
    state left on the backend, so concurrent reads each get their own."""

    scored: list[Scored]
    cost: Cost = field(default_factory=Cost)
    trace: dict[str, Any] = field(default_factory=dict)


@dataclass
class BackendContext:
    """What a backend gets injected: where to keep files, the record, the embedder, the shared
    item vectors, the LLM, and live components (objects, never saved: a spaCy pipeline, a
    custom extractor) by name."""

    directory: Path | None  # None for an in-memory memory (tests)
    store: Store
    embedder: Embedder
    vectors: ItemVectors
    llm: LLM | None = None
    components: dict[str, Any] = field(default_factory=dict)
    progress: bool = False


class NoReadOptions(Options):
    """A backend that takes no per-read options."""


class Backend(ABC):
    """A derived index over the record. Subclasses set ``name`` (and ``options_model``, a
    pydantic model of their settings) and implement ``add``, ``remove`` and ``retrieve``.

    Indexing is split in two so that slow work never blocks readers: ``prepare(items)`` does
    the expensive, side-effect-free part (embedding, extraction) with no lock that readers
    need; ``add(items, prepared)`` applies it to the backend's state under the backend's
    write lock. Backends that have nothing slow to do leave ``prepare`` as it is."""

    name: ClassVar[str] = "backend"
    #: the backend's settings (saved in memkit.toml); subclasses override
    options_model: ClassVar[type[Options]] = Options
    #: what ``Memory.read(..., read_options={name: {...}})`` may pass to one read
    read_options_model: ClassVar[type[Options]] = NoReadOptions
    #: names of live objects it accepts in ``BackendContext.components``
    components: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, ctx: BackendContext, options: Options | None = None) -> None:
        self.ctx = ctx
        self.options = options if options is not None else type(self).options_model()

    def open(self) -> int | None:
        """Load persisted state; rebuild what is missing or corrupt from the record.

        Returns the change-feed position the loaded in-memory state reflects when the backend
        knows it (a file labelled with it), else None: the indexer then replays from the
        backend's shared watermark."""
        return None

    def prepare(self, items: Sequence[MemoryItem]) -> Any:
        """The slow, side-effect-free part of indexing ``items`` (embedding, extraction),
        run without the backend's write lock. Its result is handed to :meth:`add`."""
        return None

    def expect(self, items: Sequence[Any]) -> None:  # noqa: B027 - optional hook
        """A hint: these items (anything with ``.text`` and ``.metadata``, not committed yet)
        are about to be written, so a backend may start slow work that needs only their text
        (``write_many`` calls it before it embeds a group; HippoRAG and Panini start parsing).
        It must change no state a read sees; the items may never arrive."""

    @abstractmethod
    def add(self, items: Sequence[MemoryItem], prepared: Any = None) -> None:
        """Index these items (idempotent); ``prepared`` is :meth:`prepare`'s result or None."""

    @abstractmethod
    def remove(self, ids: Sequence[int]) -> None:
        """Forget these ids and everything derived only from them (idempotent)."""

    @abstractmethod
    def retrieve(self, query: str, k: int, *, allowed: AllowedIds,
                 options: Options | None = None) -> Retrieval:
        """Up to ``k`` results among ``allowed``, best first, with score and evidence, plus
        the call's cost and trace. ``options`` is a ``read_options_model`` instance or None."""

    def flush(self, position: int) -> None:  # noqa: B027 - optional hook
        """Persist in-memory state (atomic file replace), labelled with ``position``: the
        change-feed position it reflects."""

    def reset(self) -> None:
        """Drop all derived state and set this backend's watermark to 0, so that the next
        sync rebuilds it from the record. Call it through ``Memory.rebuild``."""
        self.ctx.store.set_watermark(self.name, 0)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (files are flushed by the indexer before this is called)."""

    def stats(self) -> dict[str, Any]:
        return {}

    def erasure_terms(self, ids: Sequence[int]) -> list[str]:
        """Strings derived only from these items (about to be deleted) that may appear
        elsewhere than in the backend's own rows - e.g. in cached LLM prompts - so that the
        facade can erase them there too. Default: none."""
        return []


BACKENDS = registry("backends", {
    "dense": "memkit.backends.dense:DenseBackend",
    "hipporag": "memkit.backends.hipporag:HippoRAGBackend",
    "panini": "memkit.backends.panini:PaniniBackend",
    "bm25": "memkit.backends.lexical:LexicalBackend",
})


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator: make a backend available under ``name`` (run-time registration;
    packages declare a ``memkit.backends`` entry point instead)."""
    return BACKENDS.register(name)  # type: ignore[no-any-return]


def backend_names() -> list[str]:
    return BACKENDS.names()


def resolve_backend(name: str) -> type[Backend]:
    """The backend class registered under ``name`` (entry point or run-time)."""
    return BACKENDS.resolve(name)  # type: ignore[no-any-return]
