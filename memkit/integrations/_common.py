"""What every framework adapter shares: read options and how a Hit becomes plain metadata."""

from __future__ import annotations

from typing import Any

from memkit.errors import InvalidInput
from memkit.types import Hit, MemoryItem

#: the keyword arguments of ``Memory.read`` an adapter passes through (besides query and k)
READ_OPTIONS = ("scope", "backend", "as_of", "budget_tokens", "rerank", "rerank_options")


def read_kwargs(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Per-call ``overrides`` over the adapter's ``defaults``; unknown names are an error."""
    unknown = sorted(set(overrides) - set(READ_OPTIONS) - {"k"})
    if unknown:
        raise InvalidInput(
            f"unknown read option(s) {unknown}; allowed: k, {', '.join(READ_OPTIONS)}")
    out = {name: defaults.get(name) for name in READ_OPTIONS}
    out.update({name: v for name, v in overrides.items() if name != "k"})
    return out


def item_fields(item: MemoryItem) -> dict[str, Any]:
    """The memkit facts about an item, JSON-ready (no text)."""
    return {"id": item.id, "root_id": item.root_id, "version": item.version,
            "scope": {k: v for k, v in item.scope.as_dict().items() if v is not None},
            "source": item.source, "created_at": item.created_at,
            "valid_from": item.valid_from, "confidence": item.confidence}


def hit_metadata(hit: Hit, user_metadata: dict[str, Any]) -> dict[str, Any]:
    """User metadata plus ``score``, ``backend``, ``rank``, ``evidence`` and ``memkit``
    (id, version, scope, source, ...). memkit's keys win over user keys of the same name."""
    return {**user_metadata, "score": float(hit.score), "backend": hit.backend,
            "rank": hit.rank, "evidence": hit.evidence, "memkit": item_fields(hit.item)}
