"""The body of ``Memory.read``: which backends, their per-read options, asking each one under
its read lock (after catching it up, for a strongly consistent read), fusing the rankings,
reranking, and the token budget. Everything is a return value: concurrent reads share no
state."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memkit.backends.base import AllowedIds
from memkit.errors import ConfigError, InvalidInput
from memkit.fusion import approx_tokens, fuse
from memkit.metering import metered
from memkit.options import Options, parse_options
from memkit.types import Cost, Hit, Scope, Scored

if TYPE_CHECKING:
    from memkit.memory import Memory


@dataclass
class Gathered:
    """What the backends of one read returned, fused into hits."""

    hits: list[Hit]
    cost: Cost = field(default_factory=Cost)
    timings: dict[str, float] = field(default_factory=dict)
    traces: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)


def backend_names(mem: Memory, backend: str | Sequence[str] | None) -> list[str]:
    """The backends a read asks: ``None`` is the first configured one."""
    if backend is None:
        return [mem.config.backends[0]]
    names = [b.strip() for b in backend.split(",")] if isinstance(backend, str) \
        else list(backend)
    unknown = [b for b in names if b not in mem.backends]
    if unknown or not names:
        raise InvalidInput(
            f"backend(s) {unknown or names} not open in this memory; open: "
            f"{list(mem.backends)} (open with Memory.open(..., backends=[...]))"
        )
    return names


def read_options_for(mem: Memory, names: list[str], raw: dict[str, dict[str, Any]] | None
                     ) -> dict[str, Options | None]:
    """Each asked backend's typed per-read options (strict: a typo is an InvalidInput)."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise InvalidInput("read_options must be a dict of backend name -> options")
    stray = [n for n in raw if n not in names]
    if stray:
        raise InvalidInput(f"read_options for backend(s) {stray} not read here: {names}")
    out: dict[str, Options | None] = {}
    for name in names:
        model = mem.backends[name].read_options_model
        try:
            out[name] = parse_options(model, raw[name], f"{name} read") \
                if name in raw else None
        except ConfigError as exc:
            raise InvalidInput(str(exc)) from None
    return out


def gather(mem: Memory, query: str, names: list[str], fetch: int, allowed: AllowedIds,
           per_read: dict[str, Options | None], *, consistency: str, trace: bool,
           fusion: Any, weights: dict[str, float] | None, scope: Scope, target: int
           ) -> Gathered:
    """Ask every backend in ``names`` (each under its own read lock) and fuse the rankings;
    hits the record no longer holds, or outside ``scope``, are dropped."""
    out = Gathered(hits=[])
    rankings: dict[str, list[Scored]] = {}
    for name in names:
        tb = time.perf_counter()
        if consistency == "strong":
            mem.indexer.ensure(name, target)
        with metered() as spent, mem.indexer.reading(name) as be:
            out.positions[name] = mem.indexer.position(name)
            got = be.retrieve(query, fetch, allowed=allowed, options=per_read[name])
        out.cost.add(merge_cost(spent, got.cost))
        rankings[name] = got.scored
        if trace:
            out.traces[name] = got.trace
        out.timings[name] = (time.perf_counter() - tb) * 1000
    fetch_n = max(len(r) for r in rankings.values()) if rankings else 0
    scored = rankings[names[0]] if len(names) == 1 else fuse(rankings, fetch_n, fusion, weights)
    items = mem.store.get_many([s.id for s in scored])
    label = names[0] if len(names) == 1 else "+".join(names)
    for s in scored:
        item = items.get(s.id)
        if item is None or s.id not in allowed or not scope.contains(item.scope):
            continue  # deleted meanwhile, or a backend returned something out of scope
        out.hits.append(Hit(item=item, score=s.score, backend=label, evidence=s.evidence))
    return out


def rerank_hits(mem: Memory, query: str, hits: list[Hit], k: int, rerank: str,
                options: dict[str, Any] | None, *, cost: Cost, timings: dict[str, float],
                traces: dict[str, dict[str, Any]] | None) -> list[Hit]:
    """The hits reordered by reranker ``rerank``; its cost and time are added to the read's
    (and its trace, when ``traces`` is given)."""
    from memkit.rerank import resolve_reranker

    tr = time.perf_counter()
    reranker = resolve_reranker(rerank, mem, **(options or {}))
    with metered() as spent:
        reranked = reranker.rerank(query, hits, k)
    cost.add(merge_cost(spent, reranked.cost))
    if traces is not None:
        traces["rerank"] = reranked.trace
    timings["rerank"] = (time.perf_counter() - tr) * 1000
    return reranked.hits


def merge_cost(metered_cost: Cost, reported: Cost) -> Cost:
    """A call's cost: what the meter saw, or what the callee reported if it saw more (a
    callee that spends outside this context, e.g. on a server, reports it itself)."""
    out = Cost()
    for f in ("llm_calls", "prompt_tokens", "completion_tokens", "embed_calls",
              "cached_llm_calls", "embedded_texts"):
        setattr(out, f, max(getattr(metered_cost, f), getattr(reported, f)))
    return out


def trim_to_budget(hits: list[Hit], budget_tokens: int) -> list[Hit]:
    """The leading hits that fit in ``budget_tokens`` (at least one)."""
    out: list[Hit] = []
    used = 0
    for hit in hits:
        cost = approx_tokens(hit.item.text)
        if out and used + cost > budget_tokens:
            break
        out.append(hit)
        used += cost
    return out
