"""Rerankers: a stage applied to a read's hits (``Memory.read(..., rerank="name")``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from memkit.registry import registry
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


RERANKERS = registry("rerankers", {
    "sifter": "memkit.backends.sifter.rerank:SifterReranker",
    "facts": "memkit.conversation.rerank:FactReranker",
})


def register_reranker(name: str, factory: Any) -> None:
    """``factory(memory, **options)`` must return a Reranker (run-time registration;
    packages declare a ``memkit.rerankers`` entry point instead)."""
    RERANKERS.register(name, factory)


def resolve_reranker(name: str, memory: Any, **options: Any) -> Reranker:
    return RERANKERS.resolve(name)(memory, **options)  # type: ignore[no-any-return]
