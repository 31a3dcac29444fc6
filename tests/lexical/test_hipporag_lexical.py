"""HippoRAG's lexical seeds (BM25 passages) and the two-hop bridge, through Memory.read."""

from __future__ import annotations

import numpy as np
import pytest

from memkit import Memory
from memkit.backends.hipporag.retriever import passage_seeds
from memkit.embed import HashEmbedder

pytest.importorskip("bm25s", reason="the [lexical] extra (bm25s) is not installed")

DOCS = [
    "Port Blair\nPort Blair is the capital of the Andaman Islands. It was founded in 1789.",
    "Andaman Islands\nThe Andaman Islands are part of India.",
    "Paris\nParis is the capital of France. It lies on the Seine.",
    "Seine\nThe Seine flows through Paris into the English Channel.",
    "Quokka\nThe quokka lives on Rottnest Island near Perth.",
]
#: no seeds but the ones under test
BARE = {"use_facts": False, "query_phrase_weight": 0.0, "dense_seed_passages": 0,
        "fusion": "ppr", "seed_fusion": "dense", "lexical_passage_weight": 0.0,
        "session_weight": 0.0}


def open_mem(**opts: object) -> tuple[Memory, list[int]]:
    mem = Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                      backend_options={"hipporag": {"extractor": "rules", **BARE, **opts}})
    return mem, [mem.write(d) for d in DOCS]


def phrases_of(mem: Memory, iid: int) -> set[str]:
    be = mem.backends["hipporag"]
    g = be._graph()
    return {be.phrase_text[int(g.phrase_ids[n])] for n in g.passage_phrases(iid).tolist()}


def test_lexical_seeds_start_the_walk_from_the_bm25_passages() -> None:
    mem, ids = open_mem()
    q = "which animal lives near Perth?"
    plain = mem.read(q, k=3, backend="hipporag", trace=True)
    assert plain.traces["hipporag"]["mode"] == "dense"  # no seed at all: dense fallback
    got = mem.read(q, k=3, backend="hipporag", trace=True,
                   read_options={"hipporag": {"lexical_seed_passages": 1}})
    trace = got.traces["hipporag"]
    assert trace["mode"] == "graph" and trace["lexical_top"] == [ids[4]]
    # the seeds are exactly the quokka passage's phrases, weighted 1 / #passages
    assert {p for p, _ in trace["seed_phrases"]} == phrases_of(mem, ids[4])
    assert got.hits[0].item.id == ids[4]
    be = mem.backends["hipporag"]
    g = be._graph()
    expected = passage_seeds([ids[4]], np.array([1.0]), g.passage_phrases,
                             g.phrase_passages, 1.0)
    assert sorted(w for _, w in trace["seed_phrases"]) == pytest.approx(
        sorted(expected.values()))


def test_bridge_reseeds_with_the_first_hops_entities() -> None:
    mem, ids = open_mem(query_phrase_weight=1.0)
    q = "When was Port Blair founded?"
    one = mem.read(q, k=5, backend="hipporag", trace=True)
    assert "bridge_phrases" not in one.traces["hipporag"]
    two = mem.read(q, k=5, backend="hipporag", trace=True,
                   read_options={"hipporag": {"bridge_passages": 1, "bridge_weight": 1.0}})
    trace = two.traces["hipporag"]
    first_seeds = {p for p, _ in one.traces["hipporag"]["seed_phrases"]}
    # the bridge: the top passage's phrases that were not seeds yet
    assert set(trace["bridge_phrases"]) == phrases_of(mem, ids[0]) - first_seeds
    assert "andaman islands" in trace["bridge_phrases"]
    ranked = [h.item.id for h in two.hits]
    assert ranked[:2] == [ids[0], ids[1]]
    assert two.hits[1].evidence["ppr"] > one.hits[[h.item.id for h in one.hits]
                                                  .index(ids[1])].evidence["ppr"]


def test_lexical_seeds_respect_scope_and_follow_deletes() -> None:
    mem = Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                      backend_options={"hipporag": {"extractor": "rules", **BARE}})
    mine = [mem.write(d, scope={"user": "u1"}) for d in DOCS[:4]]
    theirs = mem.write("Zyxwv Depot\nZyxwv Depot stores grain in Paris.", scope={"user": "u2"})
    opts = {"hipporag": {"lexical_seed_passages": 3}}
    got = mem.read("zyxwv depot in Paris", k=4, scope={"user": "u1"}, backend="hipporag",
                   trace=True, read_options=opts)
    top = got.traces["hipporag"]["lexical_top"]
    assert top and theirs not in top and set(top) <= set(mine)
    assert theirs not in [h.item.id for h in got.hits]
    everyone = mem.read("zyxwv depot", k=2, backend="hipporag", trace=True,
                        read_options=opts).traces["hipporag"]["lexical_top"]
    assert everyone[0] == theirs
    mem.delete([theirs])
    after = mem.read("zyxwv depot in Paris", k=2, backend="hipporag", trace=True,
                     read_options=opts).traces["hipporag"]["lexical_top"]
    assert theirs not in after


def test_lexical_passage_weight_moves_mass_to_bm25_passages() -> None:
    mem, ids = open_mem(query_phrase_weight=1.0)
    q = "Paris capital Seine"
    base = {h.item.id: h.evidence["ppr"] for h in mem.read(q, k=5, backend="hipporag").hits}
    boosted = {h.item.id: h.evidence["ppr"] for h in mem.read(
        q, k=5, backend="hipporag",
        read_options={"hipporag": {"lexical_passage_weight": 1.0}}).hits}
    # the Paris passage matches every query word: its share of the mass grows
    share = boosted[ids[2]] / sum(boosted.values())
    assert share > base[ids[2]] / sum(base.values())


def test_seed_passages_from_fused_dense_and_bm25() -> None:
    """With rrf seed fusion the one seed passage is the quokka one whatever dense says: it is
    BM25's only match (1/61 from BM25 plus its dense share) and the dense leader, if another
    passage, has only 1/61."""
    mem, ids = open_mem(dense_seed_passages=1)
    q = "where do quokkas live?"
    dense_only = mem.read(q, k=3, backend="hipporag", trace=True)
    assert "seed_passages" not in dense_only.traces["hipporag"]
    got = mem.read(q, k=3, backend="hipporag", trace=True,
                   read_options={"hipporag": {"seed_fusion": "rrf"}})
    trace = got.traces["hipporag"]
    assert trace["seed_passages"] == [ids[4]]
    assert {p for p, _ in trace["seed_phrases"]} == phrases_of(mem, ids[4])
    with pytest.raises(Exception, match="seed_fusion"):
        mem.read(q, backend="hipporag", read_options={"hipporag": {"seed_fusion": "vote"}})


def test_lexical_rrf_fuses_the_graph_ranking_with_bm25() -> None:
    from memkit.backends.hipporag.retriever import weighted_rrf
    from memkit.lexical import BM25Index

    mem, ids = open_mem(query_phrase_weight=1.0)
    q = "Paris Seine quokka"
    graph = [h.item.id for h in mem.read(q, k=5, backend="hipporag").hits]  # all 5 passages
    ix = BM25Index()
    ix.add(ids, ix.tokenize(DOCS))
    lexical = [i for i, _ in ix.top(q, 100)]
    expected = weighted_rrf([(graph, 1.0), (lexical, 3.0)], 60)
    got = mem.read(q, k=5, backend="hipporag",
                   read_options={"hipporag": {"lexical_rrf_weight": 3.0}}).hits
    assert [(h.item.id, pytest.approx(h.score)) for h in got] == \
        [(i, pytest.approx(s)) for i, s in expected[:5]]
    assert got[0].item.id != graph[0]  # BM25 x3 moved its best match to the top
