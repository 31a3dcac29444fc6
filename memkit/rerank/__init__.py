"""Rerankers: a stage applied to a read's hits (``Memory.read(..., rerank="name")``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Protocol

from memkit.errors import ConfigError
from memkit.types import Cost, Hit


@dataclass
class Reranked:
    """What a reranker returns: the reordered hits, the call's cost and a trace."""

    hits: list[Hit]
    cost: Cost = field(default_factory=Cost)
    trace: dict[str, Any] = field(default_factory=dict)


class Reranker(Protocol):
    def rerank(self, query: str, hits: list[Hit], k: int) -> Reranked:
        """Reorder (and cut to ``k``) the hits of one read; no state is left behind."""
        ...


_REGISTRY: dict[str, str | Any] = {
    "sifter": "memkit.backends.sifter.rerank:SifterReranker",
}


def register_reranker(name: str, factory: Any) -> None:
    """``factory(memory, **options)`` must return a Reranker."""
    _REGISTRY[name] = factory


def resolve_reranker(name: str, memory: Any, **options: Any) -> Reranker:
    target = _REGISTRY.get(name)
    if target is None:
        raise ConfigError(f"unknown reranker {name!r}; known: {sorted(_REGISTRY)}")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(import_module(module), attr)
        _REGISTRY[name] = target
    return target(memory, **options)  # type: ignore[no-any-return]
