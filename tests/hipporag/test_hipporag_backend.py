"""The HippoRAG backend through the public Memory API: graph, scopes, delete, persistence,
fallbacks, incremental synonymy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.backends.hipporag.graph import GraphArrays
from memkit.backends.hipporag.synonymy import synonym_edges
from memkit.embed import HashEmbedder
from memkit.vectors import FaissIndex

DOCS = [
    "Port Blair\nPort Blair is the capital of the Andaman Islands. It was founded in 1789.",
    "Andaman Islands\nThe Andaman Islands are part of India.",
    "Paris\nParis is the capital of France. It lies on the Seine.",
    "Seine\nThe Seine flows through Paris into the English Channel.",
]


def open_mem(path: Path | None, **opts: object) -> Memory:
    options = {"extractor": "rules", **opts}
    return Memory.open(path, backends=["hipporag", "dense"], embedder=HashEmbedder(64),
                       backend_options={"hipporag": options})


def phrases(mem: Memory) -> set[str]:
    return {r[0] for r in mem.store.conn.execute("SELECT text FROM hipporag_phrases")}


def test_registered_and_reads_through_facade(tmp_path: Path) -> None:
    with open_mem(tmp_path / "m") as mem:
        ids = [mem.write(d) for d in DOCS]
        res = mem.read("Port Blair Andaman Islands", k=2, backend="hipporag")
        assert [h.item.id for h in res.hits][0] in (ids[0], ids[1])
        assert {h.item.id for h in res.hits} == {ids[0], ids[1]}
        hit = res.hits[0]
        assert hit.backend == "hipporag" and hit.evidence["mode"] == "graph"
        assert "port blair" in hit.evidence["seed_phrases"] or \
            "andaman islands" in hit.evidence["seed_phrases"]
        assert mem.backends["hipporag"].stats()["passages"] == 4


def test_graph_walk_reaches_second_hop() -> None:
    mem = open_mem(None, query_phrase_weight=1.0, dense_seed_passages=0, use_facts=False,
                   fusion="ppr")
    ids = [mem.write(d) for d in DOCS]
    # the query names only Port Blair; the Andaman Islands passage is one phrase-hop away
    ranked = [h.item.id for h in mem.read("Port Blair", k=4, backend="hipporag").hits]
    assert ranked[0] == ids[0]
    assert ranked.index(ids[1]) < ranked.index(ids[2])


def test_empty_memory_returns_no_hits() -> None:
    mem = open_mem(None)
    assert mem.read("anything at all", backend="hipporag").hits == []


def test_query_matching_nothing_falls_back_to_dense() -> None:
    mem = open_mem(None, use_facts=False, query_phrase_weight=1.0, dense_seed_passages=0)
    mem.write("just lower case words here without names")
    res = mem.read("zzz qqq", k=3, backend="hipporag")
    assert len(res.hits) == 1
    assert res.hits[0].evidence["fallback"] == "no seed phrase"


def test_scope_is_respected_in_ranking_and_walk() -> None:
    mem = open_mem(None)
    a = mem.write(DOCS[0], scope={"user": "alice"})
    b = mem.write(DOCS[1], scope={"user": "bob"})
    c = mem.write(DOCS[2], scope={"user": "alice"})
    for q in ("Andaman Islands", "Port Blair capital", "India"):
        got = {h.item.id for h in mem.read(q, k=5, scope={"user": "alice"},
                                           backend="hipporag").hits}
        assert b not in got and got <= {a, c}
    # the backend itself filters (not only the facade)
    from memkit.backends.base import AllowedIds

    be = mem.backends["hipporag"]
    out = be.retrieve("Andaman Islands India", 5, allowed=AllowedIds(np.array([a, c])))
    assert {s.id for s in out.scored} <= {a, c}


def test_delete_takes_unsupported_facts_and_phrases(tmp_path: Path) -> None:
    with open_mem(tmp_path / "m") as mem:
        ids = [mem.write(d) for d in DOCS]
        assert {"port blair", "andaman islands", "1789"} <= phrases(mem)
        facts_before = mem.store.conn.execute("SELECT COUNT(*) FROM hipporag_facts").fetchone()
        mem.delete([ids[0]])
        left = phrases(mem)
        assert "port blair" not in left and "1789" not in left
        assert "andaman islands" in left  # still mentioned by passage 2
        facts_after = mem.store.conn.execute("SELECT COUNT(*) FROM hipporag_facts").fetchone()
        assert facts_after[0] < facts_before[0]
        assert not mem.store.conn.execute(
            "SELECT 1 FROM hipporag_support WHERE item_id = ?", (ids[0],)).fetchone()
        hits = mem.read("Port Blair", k=5, backend="hipporag").hits
        assert ids[0] not in {h.item.id for h in hits}
        be = mem.backends["hipporag"]
        assert ids[0] not in be.passage_index
        g = be._graph()
        assert ids[0] not in set(g.passage_ids.tolist())
        # delete everything: the graph is empty again
        mem.delete(ids[1:])
        assert phrases(mem) == set()
        assert mem.read("Paris", backend="hipporag").hits == []


def test_shared_relation_weight_counts_passages() -> None:
    mem = open_mem(None)
    a = mem.write("Alpha Corp\nAlpha Corp is based in Berlin.")
    mem.write("Berlin notes\nAlpha Corp is based in Berlin. Nice city.")
    be = mem.backends["hipporag"]
    g = be._graph()
    s, o = (int(g.phrase_nodes(np.array([be.phrase_by_text[t]]))[0])
            for t in ("alpha corp", "berlin"))
    assert g.adj[s, o] == pytest.approx(2.0)  # two passages assert the relation
    mem.delete([a])
    g = be._graph()
    s, o = (int(g.phrase_nodes(np.array([be.phrase_by_text[t]]))[0])
            for t in ("alpha corp", "berlin"))
    assert g.adj[s, o] == pytest.approx(1.0)


def test_persisted_graph_reloads_and_survives_corruption(tmp_path: Path) -> None:
    with open_mem(tmp_path / "m") as mem:
        for d in DOCS:
            mem.write(d)
        before = [(h.item.id, round(h.score, 9)) for h in
                  mem.read("Seine Paris", k=3, backend="hipporag").hits]
    npz = tmp_path / "m" / "hipporag" / "graph.npz"
    assert npz.exists() and (tmp_path / "m" / "hipporag" / "phrases.faiss").exists()
    with open_mem(tmp_path / "m") as mem:
        be = mem.backends["hipporag"]
        assert be.arrays is not None  # loaded from graph.npz, not rebuilt
        after = [(h.item.id, round(h.score, 9)) for h in
                 mem.read("Seine Paris", k=3, backend="hipporag").hits]
    assert after == before
    npz.write_bytes(b"not a zip")
    (tmp_path / "m" / "hipporag" / "facts.faiss").write_bytes(b"junk")
    with open_mem(tmp_path / "m") as mem:
        again = [(h.item.id, round(h.score, 9)) for h in
                 mem.read("Seine Paris", k=3, backend="hipporag").hits]
    assert again == before
    assert GraphArrays.load(npz).generation >= 1  # rewritten on close


def test_stale_graph_file_is_not_used(tmp_path: Path) -> None:
    with open_mem(tmp_path / "m") as mem:
        mem.write(DOCS[0])
    old = (tmp_path / "m" / "hipporag" / "graph.npz").read_bytes()
    with open_mem(tmp_path / "m") as mem:
        mem.write(DOCS[1])
    (tmp_path / "m" / "hipporag" / "graph.npz").write_bytes(old)  # a crash before flush
    with open_mem(tmp_path / "m") as mem:
        assert mem.backends["hipporag"]._graph().stats()["passages"] == 2


def test_add_is_idempotent() -> None:
    mem = open_mem(None)
    i = mem.write(DOCS[0])
    be = mem.backends["hipporag"]
    n = be.stats()
    be.add([mem.get(i)])
    assert be.stats() == n


def test_synonymy_is_incremental_and_bounded() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 16)).astype(np.float32)
    near = base + 0.05 * rng.normal(size=(3, 16)).astype(np.float32)
    far = rng.normal(size=(3, 16)).astype(np.float32)
    vecs = np.vstack([near, far])
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = FaissIndex(16)
    index.add(np.arange(1, 7), vecs)
    texts = ["alpha one", "alpha two", "alpha three", "x", "far two", "far three"]
    # only phrase 1 is new: its edges go to 2 and 3 (cos >= 0.8), not to the far ones
    edges = synonym_edges(index, np.array([1]), vecs[:1], texts[:1], threshold=0.8)
    assert {(a, b) for a, b, _ in edges} == {(1, 2), (1, 3)}
    assert all(s >= 0.8 for _, _, s in edges)
    capped = synonym_edges(index, np.array([1]), vecs[:1], texts[:1], threshold=0.8,
                           max_neighbors=1)
    assert len(capped) == 1
    # a phrase with <= 2 letters/digits gets no synonymy edges
    assert synonym_edges(index, np.array([4]), vecs[3:4], ["x"], threshold=-1.0) == []


def test_unknown_option_is_rejected() -> None:
    from memkit.errors import ConfigError

    with pytest.raises(ConfigError):
        open_mem(None, no_such_option=1)


def test_other_scopes_facts_never_seed_or_show_in_evidence() -> None:
    mem = open_mem(None, use_facts=True, query_phrase_weight=0.0, dense_seed_passages=0,
                   fusion="ppr")
    a = mem.write("Port Blair\nPort Blair is the capital of the Andaman Islands.",
                  scope={"user": "alice"})
    mem.write("Secret memo\nSecret Corp acquired Port Blair Harbour in 2020.",
              scope={"user": "bob"})
    res = mem.read("Secret Corp acquired Port Blair Harbour", k=3, scope={"user": "alice"},
                   backend="hipporag")
    assert [h.item.id for h in res.hits] == [a]
    for h in res.hits:
        assert not any("Secret" in f for f in h.evidence.get("facts", []))
    # bob sees his own fact as evidence
    bob = mem.read("Secret Corp acquired Port Blair Harbour", k=3, scope={"user": "bob"},
                   backend="hipporag")
    assert any("Secret Corp" in f for h in bob.hits for f in h.evidence.get("facts", []))


def test_push_method_ranks_like_power_iteration() -> None:
    opts = {"use_facts": False, "query_phrase_weight": 1.0, "dense_seed_passages": 2}
    power = open_mem(None, **opts)
    push = open_mem(None, ppr_method="push", push_eps=1e-9, **opts)
    for m in (power, push):
        for d in DOCS:
            m.write(d)
    q = "Port Blair and the Seine"
    a = [(h.item.id, round(h.evidence["ppr"], 6)) for h in power.read(q, k=4,
                                                                       backend="hipporag").hits]
    b = [(h.item.id, round(h.evidence["ppr"], 6)) for h in push.read(q, k=4,
                                                                      backend="hipporag").hits]
    assert a == b


def test_query_is_embedded_with_fact_and_passage_instructions() -> None:
    seen: list[str | None] = []

    class Recording(HashEmbedder):
        def embed_queries(self, texts, instruction=None):  # type: ignore[no-untyped-def]
            seen.append(instruction)
            return super().embed_queries(texts, instruction)

    mem = Memory.open(None, backends=["hipporag", "dense"], embedder=Recording(64),
                      backend_options={"hipporag": {
                          "extractor": "rules", "use_facts": True,
                          "fact_instruction": "Given a question, retrieve relevant triplet facts",
                          "passage_instruction": "Given a question, retrieve passages"}})
    for d in DOCS:
        mem.write(d)
    seen.clear()
    mem.read("Port Blair", backend="hipporag")
    assert seen == ["Given a question, retrieve passages",
                    "Given a question, retrieve relevant triplet facts"]


def test_a_graph_write_computed_before_another_writer_committed_is_recomputed(
        tmp_path: Path) -> None:
    """Two writers on one memory (two opens, as two processes have). B commits a passage with
    new phrases after A computed its update but before A's transaction: A's new phrase ids
    would collide with B's and B's phrases would be inserted twice. A's write notices the
    graph changed, reloads B's rows and recomputes."""
    a = open_mem(tmp_path / "m")
    b = open_mem(tmp_path / "m")
    try:
        a.write("Oslo\nOslo is the capital of Norway.")
        gs = a.backends["hipporag"].gs
        real_apply, raced = gs.apply, []

        def apply_after_b(up, expect_generation=None):  # type: ignore[no-untyped-def]
            if not raced:  # B's write lands between A's computing and A's transaction
                raced.append(b.write("Trondheim\nTrondheim lies north of Bergen in Norway."))
            if expect_generation is None:
                return real_apply(up)
            return real_apply(up, expect_generation)

        gs.apply = apply_after_b  # type: ignore[method-assign]
        a.write("Stavanger\nStavanger lies south of Bergen in Norway.")
        assert a.indexer.errors() == {}  # the write went through, no retry left for later
        rows = a.store.conn.execute("SELECT id, text FROM hipporag_phrases").fetchall()
        ids, texts = [r[0] for r in rows], [r[1] for r in rows]
        assert raced and len(ids) == len(set(ids)) and len(texts) == len(set(texts))
        assert {"stavanger", "trondheim", "bergen", "norway", "oslo"} <= set(texts)
        assert len(a.read("Stavanger Bergen", k=3, backend="hipporag").hits) >= 2
    finally:
        a.close()
        b.close()
