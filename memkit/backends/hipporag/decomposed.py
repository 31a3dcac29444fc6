"""A decomposed HippoRAG read: the LLM splits the question into sub-questions, each seeds the
walk, and a later hop that refers to an earlier one is seeded by what that hop found.

The decomposition (prompt, parser, placeholder check) is :mod:`memkit.decomposition`, shared
with panini. Per retrieval sub-question *i*, in order:

1. its seeds are computed as a plain read's (:meth:`GraphSearch.seed`: facts after the
   optional filter, query phrases, seed passages; the passage weights of the reset vector);
2. *bridge* (a sub-question that refers to ``<ENTITY_Qj>``): hop *j* is walked on its own,
   and the phrases of its ``decompose_bridge_passages`` best passages that hop *j*'s text
   does not name - the entities hop *j* found (its seeds from facts included: the answer
   of "Who directed Casablanca?" is the object of the fact it matched), the LLM-free
   two-hop bridge of :meth:`GraphSearch.bridge` - are added to hop *i*'s seeds (``bridge_weight`` x
   max(minmax(PPR), 0.1) / #passages). The placeholder in hop *i*'s text is replaced by the
   heaviest of them before step 1, so that its dense, fact and phrase channels see a name;
   with none, it is dropped.

The walk: each hop's reset vector r_i (phrase seeds + passage weights) is normalised to sum
1, and one PPR runs from their mean. PPR is linear in its reset vector, so this one walk
*is* the sum of one walk per sub-question with each hop weighted equally: fusing per-hop
PPR scores would give the same ranking at N times the cost, and weighting by raw seed mass
instead would let the hop with the most matched phrases drown the others (a bridge hop
typically has fewer). Rank fusion (RRF) of per-hop rankings would discard the mass that
reaches a passage from two hops at once, which is what a multi-hop answer passage gets.
The final ranking's dense fill-up (and fusion) is the original question's dense ranking.
The single-query bridge (``bridge_passages``) is not run in a decomposed read: the hops'
bridge takes its place. Each hop's LLM calls (the filter, when on: one per retrieval hop)
are listed in ``trace["llm"]`` after the decomposition's.

A decomposition that cannot be used (unparseable output, bad placeholders, one hop) runs the
plain read, with the reason in ``trace["decomposition"]["fallback"]``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from memkit.backends.base import AllowedIds
from memkit.backends.hipporag.graph import GraphArrays
from memkit.backends.hipporag.retriever import RetrievalOptions
from memkit.backends.hipporag.search import GraphSearch, Seeding, charge
from memkit.decomposition import PLACEHOLDER, Decomposition, decompose_llm
from memkit.types import Cost, Scored

if TYPE_CHECKING:
    from memkit.backends.hipporag.backend import HippoRAGBackend


def decomposed_read(search: GraphSearch, be: HippoRAGBackend, g: GraphArrays, query: str,
                    k: int, allowed: AllowedIds, o: RetrievalOptions,
                    trace: dict[str, Any]) -> list[Scored]:
    """Decompose ``query`` with the backend's LLM and run the decomposed read (the plain
    read when the decomposition falls back)."""
    d = decompose_llm(be.llm, query)
    charge(trace, "decompose", Cost(**d.cost), query)
    trace["decomposition"] = d.as_dict()
    if d.fallback is None and sum(s.requires_retrieval for s in d.questions) < 2:
        trace["decomposition"]["fallback"] = "a single retrieval hop: the plain read"
    if trace["decomposition"]["fallback"] is not None:
        return search.run(be, g, query, k, allowed, o, trace)
    return run_hops(search, be, g, query, d, k, allowed, o, trace)


def run_hops(search: GraphSearch, be: HippoRAGBackend, g: GraphArrays, query: str,
             d: Decomposition, k: int, allowed: AllowedIds, o: RetrievalOptions,
             trace: dict[str, Any]) -> list[Scored]:
    """The read of a usable decomposition ``d`` (see the module docstring)."""
    g, vis = search.prepare(be, g, allowed, o, trace)
    op = search.operator(g, None if vis.allowed_all else vis.allowed_mask, o.ppr_method)
    hops: list[Seeding | None] = []
    walks: dict[int, np.ndarray] = {}
    found: dict[int, list[str]] = {}  # hop -> its bridge phrases, heaviest first
    named: dict[int, list[int]] = {}  # hop -> the phrase nodes its text names
    hop_traces: list[dict[str, Any]] = []
    for i, sq in enumerate(d.questions):
        ht: dict[str, Any] = {"question": sq.text}
        hop_traces.append(ht)
        if not sq.requires_retrieval:
            hops.append(None)
            continue
        bridge: dict[int, float] = {}
        for j in sq.deps:
            prev = hops[j]
            if prev is None or not prev.seeds:
                continue
            if j not in walks:
                walks[j] = search.walk(op, g, prev.base, prev.seeds, vis.allowed_mask, o)
            # what hop j found: its best passages' phrases, less those its question names
            # (its own seeds from facts, e.g. the answer's node, are what a later hop needs)
            got = search.bridge(g, vis, walks[j], prev, o.decompose_bridge_passages,
                                o.bridge_weight, skip=set(named[j]))
            found[j] = [_text(be, g, n) for n, _ in
                        sorted(got.items(), key=lambda nw: (-nw[1], nw[0]))]
            for node, w in got.items():
                bridge[node] = bridge.get(node, 0.0) + w
        text = _fill(sq.text, found)
        ht["text"] = text
        named[i] = search.named(be, g, vis, text)
        sd = search.seed(be, g, vis, text, allowed, o, ht)
        if sd is None:
            return []
        for node, w in bridge.items():
            sd.seeds[node] = sd.seeds.get(node, 0.0) + w
        if bridge:
            ht["bridge_phrases"] = sorted(_text(be, g, n) for n in bridge)
        ht["seed_phrases"] = _weighted(be, g, sd.seeds)
        hops.append(sd)
    trace["hops"] = hop_traces
    for ht in hop_traces:  # each hop's LLM calls (the filter) in the read's list
        trace.setdefault("llm", []).extend(ht.pop("llm", []))
    used = [h for h in hops if h is not None]
    reset, seeds = union_reset(g, used)
    # the original question's rankings for the fill-up and the fusions of the final ranking
    dense = search.dense(be, be.embedder.embed_query(query, o.passage_instruction), allowed, o)
    lex = None if o.lexical_rrf_weight <= 0 else search.lexicon.top(
        be.ctx.store, (g.generation, id(g)), g.passage_ids, query, 100, allowed)
    merged = Seeding(dense=dense, base=np.zeros(g.n_nodes), seeds=seeds,
                     fact_ends=[fe for h in used for fe in h.fact_ends], lex=lex)
    if not seeds:
        reason = "; ".join(f"hop {n + 1}: {h.no_seed_reason()}"
                           for n, h in enumerate(hops) if h is not None)
        return search.fallback(dense, k, reason, trace)
    pscores = search.walk(op, g, reset, {}, vis.allowed_mask, o)
    return search.rank(be, g, pscores, seeds, merged, k, allowed, o, trace)


def union_reset(g: GraphArrays, hops: list[Seeding]) -> tuple[np.ndarray, dict[int, float]]:
    """The mean of the hops' reset vectors, each normalised to sum 1 (a hop with nothing
    adds nothing); and its phrase part, as seeds.

    >>> from memkit.backends.hipporag.search import Seeding
    >>> g = type("G", (), {"n_nodes": 3, "n_phrases": 2})()
    >>> a = Seeding((None, None), np.zeros(3), {0: 2.0})
    >>> b = Seeding((None, None), np.array([0.0, 0.0, 1.0]), {1: 1.0})
    >>> r, s = union_reset(g, [a, b]); r.tolist(), s
    ([0.5, 0.25, 0.25], {0: 0.5, 1: 0.25})
    """
    reset = np.zeros(g.n_nodes)
    for h in hops:
        r = h.base.copy()
        for node, w in h.seeds.items():
            r[node] += w
        total = float(r.sum())
        if total > 0:
            reset += r / total
    if hops:
        reset /= len(hops)
    seeds = {int(n): float(reset[n]) for n in np.flatnonzero(reset[:g.n_phrases])}
    return reset, seeds


def _fill(text: str, found: dict[int, list[str]]) -> str:
    """The sub-question with each ``<ENTITY_Qn>`` replaced by the heaviest phrase hop n's
    bridge found (dropped when it found none).

    >>> _fill("Who married <ENTITY_Q1>?", {0: ["michael curtiz", "casablanca"]})
    'Who married michael curtiz?'
    >>> _fill("Who married <ENTITY_Q1>?", {})
    'Who married ?'
    """
    def sub(m: re.Match[str]) -> str:
        names = found.get(int(m.group(1)) - 1, [])
        return names[0] if names else ""

    return PLACEHOLDER.sub(sub, text)


def _text(be: HippoRAGBackend, g: GraphArrays, node: int) -> str:
    return be.phrase_text.get(int(g.phrase_ids[node]), "")


def _weighted(be: HippoRAGBackend, g: GraphArrays, seeds: dict[int, float]
              ) -> list[tuple[str, float]]:
    return sorted(((_text(be, g, n), float(w)) for n, w in seeds.items()),
                  key=lambda tw: (-tw[1], tw[0]))[:50]


__all__ = ["decomposed_read", "run_hops", "union_reset"]
