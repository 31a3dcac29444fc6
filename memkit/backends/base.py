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
  written to a temporary name and renamed.
* A backend that cannot index an item right now (an LLM is down) records that and retries it
  later; it never raises out of ``add`` for one bad item.

Registering a backend::

    @register_backend("mine")
    class MyBackend(Backend):
        ...

Third-party packages register through the ``memkit.backends`` entry-point group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from memkit.embed.base import Embedder
from memkit.errors import ConfigError
from memkit.store.sqlite import Store
from memkit.types import MemoryItem
from memkit.vectors.faiss_index import id_bitmap


@dataclass
class AllowedIds:
    """The ids a read may return: a sorted int64 array from the record's scope/validity query.

    >>> a = AllowedIds(np.array([2, 5, 9]))
    >>> 5 in a, 4 in a, len(a)
    (True, False, 3)
    """

    ids: np.ndarray

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
class Scored:
    """What ``Backend.retrieve`` returns: an id, its score and the evidence for it. The facade
    turns these into :class:`~memkit.types.Hit` objects carrying the record's items."""

    id: int
    score: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class BackendContext:
    """What a backend gets injected: where to keep files, the record, the embedder, the LLM."""

    directory: Path | None  # None for an in-memory memory (tests)
    store: Store
    embedder: Embedder
    llm: Any = None  # memkit.llm.LLM or None
    options: dict[str, Any] = field(default_factory=dict)
    progress: bool = False


class Backend(ABC):
    """A derived index over the record. Subclasses set ``name`` and implement three methods."""

    name: ClassVar[str] = "backend"

    def __init__(self, ctx: BackendContext, **options: Any) -> None:
        self.ctx = ctx
        self.options = options

    def open(self) -> None:  # noqa: B027 - optional hook
        """Load persisted state; rebuild what is missing or corrupt from the record."""

    @abstractmethod
    def add(self, items: Sequence[MemoryItem]) -> None:
        """Index these items (idempotent)."""

    @abstractmethod
    def remove(self, ids: Sequence[int]) -> None:
        """Forget these ids and everything derived only from them (idempotent)."""

    @abstractmethod
    def retrieve(self, query: str, k: int, *, allowed: AllowedIds) -> list[Scored]:
        """Up to ``k`` results among ``allowed``, best first, with score and evidence."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Persist in-memory state (atomic file replace)."""

    def reset(self) -> None:
        """Drop all derived state and set this backend's watermark to 0, so that the next
        sync rebuilds it from the record. Call it through ``Memory.rebuild``."""
        self.ctx.store.set_watermark(self.name, 0)

    def close(self) -> None:
        self.flush()

    def stats(self) -> dict[str, Any]:
        return {}

    def cost(self) -> dict[str, Any]:
        """LLM calls/tokens spent by the last retrieve, if any (merged into ReadResult.cost)."""
        return {}


_REGISTRY: dict[str, Callable[..., Backend] | str] = {
    "dense": "memkit.backends.dense:DenseBackend",
    "hipporag": "memkit.backends.hipporag:HippoRAGBackend",
    "panini": "memkit.backends.panini:PaniniBackend",
}


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator: make a backend available under ``name``."""

    def deco(cls: type[Backend]) -> type[Backend]:
        _REGISTRY[name] = cls
        return cls

    return deco


def backend_names() -> list[str]:
    names = set(_REGISTRY)
    names.update(ep.name for ep in entry_points(group="memkit.backends"))
    return sorted(names)


def resolve_backend(name: str) -> type[Backend]:
    """The backend class registered under ``name`` (built-in, decorated or entry point)."""
    target = _REGISTRY.get(name)
    if target is None:
        for ep in entry_points(group="memkit.backends"):
            if ep.name == name:
                target = ep.value
    if target is None:
        raise ConfigError(f"unknown backend {name!r}; known: {backend_names()}")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            cls = getattr(import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("memkit"):
                raise ConfigError(f"backend {name!r} is not available in this build") from exc
            raise
        _REGISTRY[name] = cls
        return cls  # type: ignore[no-any-return]
    return target  # type: ignore[return-value]
