"""One HippoRAG query over the graph arrays: seeds, reset vector, PPR, ranking, evidence.

Kept apart from the backend so the benchmark can run retrieval variants on one built graph.
PPR operators are cached per graph generation and per scope: when ``allowed`` leaves out
some passages of the graph, the walk runs on the graph without them (their nodes lose all
edges), so nothing outside the caller's scope shapes the ranking, and only allowed passages
are ranked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Container
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from memkit.backends.base import AllowedIds
from memkit.backends.hipporag.dates import asks_for_a_date, matches, query_dates
from memkit.backends.hipporag.graph import GraphArrays
from memkit.backends.hipporag.lexical import PassageLexicon
from memkit.backends.hipporag.linked import LinkedGraphs, LinkSettings
from memkit.backends.hipporag.ppr import PPROperator
from memkit.backends.hipporag.push import LocalPPR
from memkit.backends.hipporag.rerank import rocchio, session_diverse
from memkit.backends.hipporag.retriever import (
    FilterResult,
    RetrievalOptions,
    filter_prompt,
    link_query_phrases,
    match_facts,
    minmax,
    passage_seeds,
    query_ngrams,
    seed_weights,
    weighted_rrf,
)
from memkit.backends.hipporag.scoped import ScopedView, scoped_view
from memkit.errors import LLMError
from memkit.fusion import fuse
from memkit.metering import metered
from memkit.types import LLM_COUNTS, Cost, Scored

if TYPE_CHECKING:
    from memkit.backends.hipporag.backend import HippoRAGBackend


@dataclass
class Visible:
    """What one read's scope sees of the graph: the allowed passages (mask over the graph's
    passages), the phrases' passage counts in the scope, and which phrases are visible."""

    allowed_mask: np.ndarray
    allowed_all: bool
    per_phrase: np.ndarray
    visible: np.ndarray


@dataclass
class Seeding:
    """What one query text seeds a walk with: phrase-node seeds, the passage part of the
    reset vector (``base``), the passages whose phrases seeded it, the seed facts' ends, and
    the dense (and BM25) rankings of the text."""

    dense: tuple[np.ndarray, np.ndarray]
    base: np.ndarray
    seeds: dict[int, float] = field(default_factory=dict)
    seed_passages: set[int] = field(default_factory=set)
    fact_ends: list[tuple[str, tuple[int, int]]] = field(default_factory=list)
    lex: tuple[np.ndarray, np.ndarray] | None = None
    filter_emptied: bool = False

    def no_seed_reason(self) -> str:
        return ("no fact survived the recognition filter" if self.filter_emptied
                else "no seed phrase")


class GraphSearch:
    """Retrieval with cached PPR operators (LRU over (generation, scope))."""

    def __init__(self, cache_size: int = 4) -> None:
        self.cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.cache_size = cache_size
        self._lock = threading.Lock()  # concurrent readers share the LRU
        self.lexicon = PassageLexicon()  # BM25 over the passages, built on first use
        self.linked = LinkedGraphs()  # the graph with link edges, per generation and setting

    def _cached(self, key: tuple[Any, ...], build: Any) -> Any:
        with self._lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
        value = build()  # outside the lock: concurrent readers may build the same twice
        with self._lock:
            self.cache[key] = value
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return value

    def view(self, g: GraphArrays, allowed_mask: np.ndarray) -> ScopedView:
        """The graph as the scope of ``allowed_mask`` sees it (cached per scope)."""
        key = ("view", g.generation, id(g), np.packbits(allowed_mask).tobytes())
        return self._cached(key, lambda: scoped_view(g, allowed_mask))  # type: ignore[no-any-return]

    def operator(self, g: GraphArrays, allowed_mask: np.ndarray | None, method: str) -> Any:
        """The PPR operator over the whole graph, or over one scope's view of it."""
        key = ("op", g.generation, id(g), method,
               b"" if allowed_mask is None else np.packbits(allowed_mask).tobytes())

        def build() -> Any:
            adj = g.adj if allowed_mask is None else self.view(g, allowed_mask).adj
            return LocalPPR(adj) if method == "push" else PPROperator(adj)

        return self._cached(key, build)

    def run(self, be: HippoRAGBackend, g: GraphArrays, query: str, k: int,
            allowed: AllowedIds, o: RetrievalOptions,
            trace: dict[str, Any] | None = None) -> list[Scored]:
        """Rank the allowed passages; ``trace`` (if given) is filled with what seeded the
        walk: seed phrases with weights, seed facts, and whether dense was fallen back on."""
        trace = {} if trace is None else trace
        g, vis = self.prepare(be, g, allowed, o, trace)
        sd = self.seed(be, g, vis, query, allowed, o, trace)
        if sd is None:
            return []
        if not sd.seeds:
            return self.fallback(sd.dense, k, sd.no_seed_reason(), trace)
        op = self.operator(g, None if vis.allowed_all else vis.allowed_mask, o.ppr_method)
        pscores = self.walk(op, g, sd.base, sd.seeds, vis.allowed_mask, o)
        seeds = sd.seeds
        if o.bridge_passages > 0:
            bridge = self.bridge(g, vis, pscores, sd, o.bridge_passages, o.bridge_weight)
            if bridge:
                trace["bridge_phrases"] = sorted(
                    be.phrase_text.get(int(g.phrase_ids[n]), "") for n in bridge)[:50]
                seeds = {**seeds}
                for node, w in bridge.items():
                    seeds[node] = seeds.get(node, 0.0) + w
                pscores = self.walk(op, g, sd.base, seeds, vis.allowed_mask, o)
        return self.rank(be, g, pscores, seeds, sd, k, allowed, o, trace)

    def prepare(self, be: HippoRAGBackend, g: GraphArrays, allowed: AllowedIds,
                o: RetrievalOptions, trace: dict[str, Any]) -> tuple[GraphArrays, Visible]:
        """The graph a read walks (with link edges when the read asks for them) and what
        the read's scope sees of it."""
        trace["mode"] = "graph"
        links = LinkSettings.of(o)
        if links.active:
            g = self.linked.get(be.ctx.store, g, links)
            trace["link_edges"] = int(0 if g.link_edges is None else len(g.link_edges))
        return g, self.visible(g, allowed)

    def visible(self, g: GraphArrays, allowed: AllowedIds) -> Visible:
        allowed_mask = allowed.mask(g.passage_ids)
        allowed_all = bool(allowed_mask.all())
        # a scoped read sees only its scope's part of the graph (no cross-scope signal)
        if allowed_all:
            return Visible(allowed_mask, True, g.phrase_passages,
                           np.ones(g.n_phrases, dtype=bool))
        view = self.view(g, allowed_mask)
        return Visible(allowed_mask, False, view.phrase_passages, view.visible)

    def seed(self, be: HippoRAGBackend, g: GraphArrays, vis: Visible, query: str,
             allowed: AllowedIds, o: RetrievalOptions, trace: dict[str, Any]
             ) -> Seeding | None:
        """What ``query`` seeds the walk with (steps 1-4): phrase seeds from facts (after the
        filter), query phrases and seed passages, and the passage part of the reset vector.
        None when no allowed passage has a vector."""
        qvec = be.embedder.embed_query(query, o.passage_instruction)
        fvec = qvec if o.fact_instruction == o.passage_instruction else \
            be.embedder.embed_query(query, o.fact_instruction)
        # dense passage scores over the allowed passages (the fallback and the passage seeds)
        d_ids, d_scores = self.dense(be, qvec, allowed, o)
        if len(d_ids) == 0:
            return None
        if o.prf_passages > 0 and o.prf_weight > 0:
            # Rocchio feedback: the dense channel reads the query moved towards its first
            # pass's top passages (the seed passages and passage weights follow it)
            fb = d_ids[:o.prf_passages]
            qvec = rocchio(qvec, be.passage_index.vectors(fb), o.prf_weight)
            d_ids, d_scores = self.dense(be, qvec, allowed, o)
            trace["prf_passages"] = fb.tolist()
        in_graph = np.isin(d_ids, g.passage_ids)
        per_phrase = vis.per_phrase
        sd = Seeding(dense=(d_ids, d_scores), base=np.zeros(g.n_nodes))
        seeds: dict[int, float] = {}
        if o.use_facts and be.fact_vectors_ready():
            seed_facts = self._fact_seeds(be, g, query, fvec, o, allowed, vis.allowed_all,
                                          trace)
            trace["facts"] = [t for _, t, _ in seed_facts]
            sd.filter_emptied = o.use_filter and not seed_facts
            rows = np.searchsorted(g.fact_ids, [f for f, _, _ in seed_facts])
            triples = [(int(g.fact_nodes[r, 0]), int(g.fact_nodes[r, 1]), s)
                       for r, (_, _, s) in zip(rows, seed_facts, strict=True)]
            seeds = seed_weights(triples, per_phrase, o.linking_top_k)
            sd.fact_ends = [(t, (s, ob)) for (_, t, _), (s, ob, _) in
                            zip(seed_facts, triples, strict=True)]
            if sd.filter_emptied and not self._other_channels(o):
                # the paper pipeline: facts are its only seeds, and none is left
                return sd
        extra: dict[int, float] = {}
        if o.query_phrase_weight > 0:
            for node in self.named(be, g, vis, query):
                extra[node] = extra.get(node, 0.0) + o.query_phrase_weight / max(
                    1, int(per_phrase[node]))
        fused_seeds = o.seed_fusion != "dense" and o.dense_seed_passages > 0
        lex: tuple[np.ndarray, np.ndarray] | None = None
        deep_lex = o.lexical_passage_weight > 0 or fused_seeds or o.lexical_rrf_weight > 0
        if o.lexical_seed_passages > 0 or deep_lex:
            n_lex = max(o.lexical_seed_passages, 100 if deep_lex else 0)
            lex = self.lexicon.top(be.ctx.store, (g.generation, id(g)), g.passage_ids, query,
                                   n_lex, allowed)
            trace["lexical_top"] = lex[0][:o.lexical_seed_passages].tolist()
        sd.lex = lex
        seed_passages: list[int] = []
        if fused_seeds and lex is not None:
            # the seed passages from dense and BM25 fused (memkit.fusion), not dense alone
            dense_top = [Scored(int(i), float(s)) for i, s, ok in
                         zip(d_ids[:100], d_scores[:100], in_graph[:100], strict=True) if ok]
            seed_rank = fuse({"dense": dense_top, "bm25": [
                Scored(int(i), float(s)) for i, s in zip(*lex, strict=True)]},
                o.dense_seed_passages, o.seed_fusion)
            seed_passages = [s.id for s in seed_rank]
            trace["seed_passages"] = seed_passages
            for node, w in passage_seeds(seed_passages, np.array([s.score for s in seed_rank]),
                                         g.passage_phrases, per_phrase,
                                         o.dense_seed_weight).items():
                extra[node] = extra.get(node, 0.0) + w
        elif o.dense_seed_passages > 0:
            top = [i for i, ok in zip(d_ids[:o.dense_seed_passages], in_graph, strict=False)
                   if ok]
            seed_passages = [int(i) for i in top]
            norm = minmax(d_scores[:len(top)]) if len(top) > 1 else np.ones(len(top))
            for iid, s in zip(top, norm, strict=True):
                for node in g.passage_phrases(int(iid)).tolist():
                    extra[node] = extra.get(node, 0.0) + o.dense_seed_weight * max(
                        float(s), 0.1) / max(1, int(per_phrase[node]))
        sd.seed_passages = set(seed_passages)
        if lex is not None and o.lexical_seed_passages > 0:
            top_lex = lex[0][:o.lexical_seed_passages]
            sd.seed_passages.update(top_lex.tolist())
            for node, w in passage_seeds(
                    top_lex.tolist(), lex[1][:len(top_lex)], g.passage_phrases,
                    per_phrase, o.lexical_seed_weight).items():
                extra[node] = extra.get(node, 0.0) + w
        if o.date_weight > 0 and g.date_nodes:
            for node, w in self.date_seeds(g, vis, query, o.date_weight, trace).items():
                extra[node] = extra.get(node, 0.0) + w
        for node, w in extra.items():
            seeds[node] = seeds.get(node, 0.0) + w
        sd.seeds = seeds
        # reset vector: phrase seeds + dense (and BM25) passage weights
        gi = d_ids[in_graph]
        sd.base[g.passage_nodes(gi)] += minmax(d_scores[in_graph]) * o.passage_node_weight
        if lex is not None and o.lexical_passage_weight > 0 and len(lex[0]):
            sd.base[g.passage_nodes(lex[0])] += minmax(lex[1]) * o.lexical_passage_weight
        if o.date_question_weight > 0 and asks_for_a_date(query):
            dated = np.flatnonzero(self.linked.dated(be.ctx.store, g) & vis.allowed_mask)
            if len(dated):  # the answer is a date: the turns that name or imply one
                sd.base[g.n_phrases + dated] += o.date_question_weight / len(dated)
            trace["dated_passages"] = int(len(dated))
        if o.speaker_weight > 0:
            self._speaker_seeds(be, g, query, sd.base, vis.allowed_mask, o.speaker_weight,
                                trace)
        return sd

    @staticmethod
    def date_seeds(g: GraphArrays, vis: Visible, query: str, weight: float,
                   trace: dict[str, Any]) -> dict[int, float]:
        """The visible date nodes whose span holds a day the query names: ``weight`` split
        evenly over them, each share divided by the node's passage count."""
        patterns = query_dates(query)
        if not patterns or not g.date_nodes:
            return {}
        first = g.n_phrases - len(g.date_nodes)
        hit = [first + j for j, span in enumerate(g.date_nodes)
               if vis.visible[first + j] and any(matches(span, p) for p in patterns)]
        trace["date_nodes"] = [g.date_nodes[n - first].key for n in hit][:50]
        return {n: weight / len(hit) / max(1, int(vis.per_phrase[n])) for n in hit}

    @staticmethod
    def named(be: HippoRAGBackend, g: GraphArrays, vis: Visible, text: str) -> list[int]:
        """The visible phrase nodes ``text`` names (n-gram match, longest first)."""
        out = []
        for pid in link_query_phrases(text, be.lookup_phrase):
            node = int(g.phrase_nodes(np.array([pid]))[0])
            if node < g.n_phrases and g.phrase_ids[node] == pid and vis.visible[node]:
                out.append(node)
        return out

    @staticmethod
    def dense(be: HippoRAGBackend, qvec: np.ndarray, allowed: AllowedIds,
              o: RetrievalOptions) -> tuple[np.ndarray, np.ndarray]:
        """The allowed passages by dense score against the query vector ``qvec``."""
        n_dense = min(len(allowed), o.dense_candidates, be.passage_index.ntotal)
        return be.passage_index.search(qvec, n_dense, allowed.ids)  # type: ignore[no-any-return]

    @staticmethod
    def _other_channels(o: RetrievalOptions) -> bool:
        """Whether seeds come from more than the facts (the LLM-free channels)."""
        return (o.query_phrase_weight > 0 or o.dense_seed_passages > 0
                or o.lexical_seed_passages > 0)

    def bridge(self, g: GraphArrays, vis: Visible, pscores: np.ndarray, sd: Seeding,
               n: int, weight: float, skip: Container[int] | None = None
               ) -> dict[int, float]:
        """Two-hop bridge seeds: the visible phrases of the ``n`` best passages of a walk
        (``pscores``) beyond the passages whose phrases seeded it, less ``skip`` (default:
        the walk's seeds)."""
        seeded = sd.seed_passages
        skip = sd.seeds if skip is None else skip
        first = np.argsort(-pscores, kind="stable")[:n + len(seeded)]
        first = first[(pscores[first] > 0) & ~np.isin(g.passage_ids[first], list(seeded))]
        first = first[:n]
        return passage_seeds(
            [int(g.passage_ids[i]) for i in first], pscores[first], g.passage_phrases,
            vis.per_phrase, weight, skip=lambda node: node in skip or not vis.visible[node])

    def rank(self, be: HippoRAGBackend, g: GraphArrays, pscores: np.ndarray,
             seeds: dict[int, float], sd: Seeding, k: int, allowed: AllowedIds,
             o: RetrievalOptions, trace: dict[str, Any]) -> list[Scored]:
        """Step 5: the passages by PPR mass (or fused), with their evidence."""
        d_ids, d_scores = sd.dense
        lex = sd.lex
        order = np.argsort(-pscores, kind="stable")
        order = order[pscores[order] > 0]
        graph_rank = [int(g.passage_ids[i]) for i in order[:max(k, 100)]]
        if o.session_diversity > 0:
            # at most session_diversity turns of one session in the top k (the rest follow)
            sess = self.linked.sessions(be.ctx.store, g)
            row = {int(g.passage_ids[i]): int(i) for i in order[:max(k, 100)]}
            graph_rank = session_diverse(
                graph_rank, lambda iid: int(sess[row[iid]]) if sess[row[iid]] >= 0 else None,
                k, o.session_diversity)
        ppr_of = {int(g.passage_ids[i]): float(pscores[i]) for i in order[:max(k, 100)]}
        dense_of = {int(i): float(s) for i, s in zip(d_ids[:1000], d_scores[:1000],
                                                      strict=True)}
        if o.fusion == "rrf":
            fused = weighted_rrf([(graph_rank, o.graph_rrf_weight),
                                  ([int(i) for i in d_ids[:max(k, 100)]], 1.0)], o.rrf_k)
        else:
            fused = [(i, ppr_of[i]) for i in graph_rank[:k]]
            for i in d_ids[:k].tolist():  # fill up with dense hits PPR never reached
                if len(fused) >= k:
                    break
                if i not in ppr_of:
                    fused.append((i, 0.0))
        if o.lexical_rrf_weight > 0 and lex is not None:
            # the graph's ranking (dense after what PPR never reached) fused with BM25's
            primary = graph_rank + [i for i in d_ids[:100].tolist() if i not in ppr_of]
            fused = weighted_rrf([(primary, 1.0), (lex[0].tolist(), o.lexical_rrf_weight)],
                                 o.rrf_k)
            trace["lexical_rrf"] = o.lexical_rrf_weight
        seed_text = {node: be.phrase_text.get(int(g.phrase_ids[node]), "")
                     for node in seeds}
        trace["seed_phrases"] = sorted(((seed_text[n], float(w)) for n, w in seeds.items()),
                                       key=lambda tw: -tw[1])[:50]
        trace["fusion"] = o.fusion
        out = []
        for iid, score in fused[:k]:
            if iid not in allowed:
                continue
            mentioned = set(g.passage_phrases(iid).tolist()) if iid in ppr_of else set()
            out.append(Scored(iid, float(score), {
                "mode": "graph", "ppr": ppr_of.get(iid, 0.0), "dense": dense_of.get(iid),
                "seed_phrases": sorted(seed_text[n] for n in seeds if n in mentioned),
                "facts": [t for t, (a, b) in sd.fact_ends if a in mentioned or b in mentioned],
            }))
        return out

    @staticmethod
    def walk(op: Any, g: GraphArrays, base: np.ndarray, seeds: dict[int, float],
              allowed_mask: np.ndarray, o: RetrievalOptions) -> np.ndarray:
        """PPR from ``base`` (passage weights) + ``seeds`` (phrase nodes): the allowed
        passages' mass (-1 for passages outside the scope)."""
        reset = base.copy()
        for node, w in seeds.items():
            reset[node] += w
        if o.ppr_method == "push":
            nz = np.flatnonzero(reset)
            scores = op.run(dict(zip(nz.tolist(), reset[nz].tolist(), strict=True)),
                            o.damping, o.push_eps)[0]
        else:
            scores = op.run(reset, o.damping, o.tol).scores
        return np.where(allowed_mask, scores[g.n_phrases:], -1.0)

    def _speaker_seeds(self, be: HippoRAGBackend, g: GraphArrays, query: str,
                       base: np.ndarray, allowed_mask: np.ndarray, weight: float,
                       trace: dict[str, Any]) -> None:
        """The turns of every speaker the query names get ``weight`` on the reset vector
        (a seeded speaker node spreading evenly to its turns)."""
        grams = set(query_ngrams(query))
        named = []
        for name, idx in self.linked.speakers(be.ctx.store, g).items():
            mine = idx[allowed_mask[idx]]
            if name in grams and len(mine):
                base[g.n_phrases + mine] += weight
                named.append(name)
        trace["speakers"] = sorted(named)

    def fallback(self, dense: tuple[np.ndarray, np.ndarray], k: int, why: str,
                  trace: dict[str, Any]) -> list[Scored]:
        trace.update(mode="dense", fallback=why)
        ids, scores = dense
        return [Scored(int(i), float(s), {"dense": float(s), "mode": "dense", "fallback": why})
                for i, s in zip(ids[:k], scores[:k], strict=True)]

    def _fact_seeds(self, be: HippoRAGBackend, g: GraphArrays, query: str, qvec: np.ndarray,
                    o: RetrievalOptions, allowed: AllowedIds, allowed_all: bool,
                    trace: dict[str, Any]) -> list[tuple[int, str, float]]:
        """Top facts (id, text, normalised score), after the LLM filter when enabled."""
        n = min(be.fact_index.ntotal, o.fact_candidates)
        f_ids, f_scores = be.fact_index.search(qvec, n)
        if not allowed_all:  # only facts some visible passage supports (no cross-scope text)
            visible = g.facts_visible(f_ids, allowed.mask)
            f_ids, f_scores = f_ids[visible], f_scores[visible]
        if len(f_ids) == 0:
            return []
        norm = minmax(f_scores)  # over the visible facts only: no cross-scope normalisation
        top = list(zip(f_ids[:o.fact_top_k].tolist(), norm[:o.fact_top_k].tolist(),
                       strict=True))
        if not top:
            return []
        rows = be.ctx.store.conn.execute(
            f"SELECT f.id, s.surface, f.pred, o.surface FROM hipporag_facts f "
            f"JOIN hipporag_phrases s ON s.id = f.subj JOIN hipporag_phrases o ON o.id = f.obj "
            f"WHERE f.id IN ({','.join('?' * len(top))})", [f for f, _ in top]).fetchall()
        triple = {r[0]: (r[1], r[2], r[3]) for r in rows}
        top = [(f, s) for f, s in top if f in triple and f in set(g.fact_ids.tolist())]
        if o.use_filter and be.llm is not None and top:
            cands = [triple[f] for f, _ in top]
            with metered() as spent:
                try:
                    res = be.llm.complete_json(filter_prompt(query, cands), FilterResult)
                except LLMError as exc:  # filter unavailable: keep the unfiltered top facts
                    res = None
                    trace["filter_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            charge(trace, "filter", spent, query)
            if res is not None:
                keep = match_facts(res.fact, cands)
                top = [top[i] for i in keep]
                trace["filter_kept"] = len(top)
        return [(f, " ".join(triple[f]), s) for f, s in top]


def charge(trace: dict[str, Any], feature: str, spent: Cost, query: str) -> None:
    """Record one LLM feature's spending in the read's trace (``trace["llm"]``: one entry
    per call site, which the backend sums into the read's cost)."""
    trace.setdefault("llm", []).append({"feature": feature, "query": query,
                                        **spent.llm_counts()})


def llm_cost(trace: dict[str, Any]) -> Cost:
    """The read's LLM cost: the sum of its features' entries in ``trace["llm"]``."""
    total = Cost()
    for e in trace.get("llm", []):
        total.add(Cost(**{name: e[name] for name in LLM_COUNTS}))
    return total
