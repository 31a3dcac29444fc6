"""LLM-free linking across passages (titles, mentions, aliases, sessions): edges computed by
hand on toy corpora, the linked graph's arrays, and linked reads through Memory.read."""

from __future__ import annotations

import numpy as np
import pytest

from memkit import Memory
from memkit.backends.hipporag.graph import assemble
from memkit.backends.hipporag.linked import LinkSettings, link_graph
from memkit.backends.hipporag.linking import (
    LinkPassage,
    acronym,
    alias_key,
    alias_links,
    build_links,
    dates_in,
    mention_keys,
)
from memkit.embed import HashEmbedder
from memkit.errors import InvalidInput

# three passages, titles in metadata (as `memkit eval` writes MuSiQue), phrases 10..18
PASSAGES = [
    LinkPassage(1, "Green Day\nGreen Day is a band from Berkeley.", "Green Day"),
    LinkPassage(2, "Dookie\nDookie is the third album by Green Day's trio, released on "
                   "1 February 1994.", "Dookie"),
    LinkPassage(3, "Berkeley\nThe city of Berkeley hosted The Dookie Tour on February 1, "
                   "1994.", "Berkeley"),
]
PHRASES = {10: "Green Day", 11: "Berkeley", 12: "Dookie", 13: "1 February 1994",
           14: "February 1, 1994", 15: "NYC", 16: "New York City", 17: "The Beatles",
           18: "Beatles'"}
MENTIONED = {1: [10], 2: [12, 13], 3: [11, 14]}  # what the extractor linked


def test_alias_keys_acronyms_and_dates() -> None:
    assert alias_key("The Beatles") == alias_key("Beatles'") == "beatles"
    assert alias_key("Obama’s") == "obama"
    assert alias_key("1 February 1994") == alias_key("February 1st, 1994") == \
        alias_key("1994-02-01") == "1994 02 01"
    assert alias_key("February 1994") == "1994 02"
    assert alias_key("U.S.A.") == "usa"
    assert acronym("Federal Bureau of Investigation") == "fbi"
    assert acronym("the big apple") is None and acronym("Paris") is None
    assert dates_in("[1:56 pm on 8 May, 2023] Caroline: hi") == ["2023 05 08"]
    assert dates_in("May 32, 2023 and 2023-13-01") == []  # no such dates


def test_mention_keys_are_names_and_dates_not_fragments() -> None:
    keys = mention_keys("Later the United States of America's army left Paris on 3 May 1945.")
    assert "united states of america" in keys and "paris" in keys and "1945 05 03" in keys
    # a capitalised run is one name: its words alone are not matched
    assert "states" not in keys and "america" not in keys and "army" not in keys
    assert "united states" not in keys


def test_hand_computed_edges_on_a_toy_corpus() -> None:
    links = build_links(PASSAGES, PHRASES, MENTIONED, mentions=True, titles=True,
                        aliases=True)
    # P1 names Berkeley (a phrase of P3); P2 names Green Day (P1's phrase, possessive cut);
    # P3 names the date of P2 in another form (13 and 14 share a key: the lower id is used)
    assert links.mentions == [(1, 11), (2, 10), (3, 13)]
    # P1 names P3's title, P2 names P1's title; "The Dookie Tour" is not "Dookie"
    assert links.titles == [(1, 2), (1, 3)]
    assert links.aliases == [(13, 14), (15, 16), (17, 18)]
    assert links.sessions == []
    off = build_links(PASSAGES, PHRASES, MENTIONED)
    assert off.counts() == {"mentions": 0, "titles": 0, "aliases": 0, "sessions": 0}


def test_links_never_cross_groups() -> None:
    scoped = [LinkPassage(p.id, p.text, p.title, group="a" if p.id == 1 else "b")
              for p in PASSAGES]
    links = build_links(scoped, PHRASES, MENTIONED, mentions=True, titles=True)
    # P1 (group a) no longer sees Berkeley (only P3 in group b was linked to it) nor P3;
    # P2 (group b) names Green Day, a phrase only group a's P1 was linked to: no link
    assert links.mentions == [(3, 13)]
    assert links.titles == []


def test_ambiguous_and_short_acronyms_are_not_aliases() -> None:
    phrases = {1: "UTA", 2: "University of Texas Arlington", 3: "Utah Transit Authority",
               4: "BC", 5: "Brown County", 6: "IBM", 7: "International Business Machines"}
    assert alias_links(phrases) == [(6, 7)]


def test_session_links_join_turns_of_one_session() -> None:
    turns = [LinkPassage(i, f"turn {i}", group="conv1", session=1, order=float(i))
             for i in (4, 5, 6, 7)]
    turns += [LinkPassage(8, "alone", group="conv1", session=2, order=8.0),
              LinkPassage(9, "other conversation", group="conv2", session=1, order=1.0)]
    window1 = build_links(turns, {}, {}, session_window=1).sessions
    # neighbours: 4-5, 5-6, 6-7; the busier end of each has 2 neighbours -> 1/2
    assert window1 == [(4, 5, 0.5), (5, 6, 0.5), (6, 7, 0.5)]
    whole = build_links(turns, {}, {}, session_window=0).sessions
    assert [(a, b) for a, b, _ in whole] == [(4, 5), (4, 6), (4, 7), (5, 6), (5, 7), (6, 7)]
    assert [w for _, _, w in whole] == pytest.approx([1 / 3] * 6)
    assert build_links(turns, {}, {}, session_window=-1).sessions == []


def test_link_graph_adds_the_edges_at_their_nodes() -> None:
    # phrases 10, 11 (nodes 0, 1); passages 1, 2 (nodes 2, 3); P1 mentions 10, P2 mentions 11
    g = assemble(np.array([10, 11]), np.array([1, 2]), np.zeros((0, 3)),
                 np.array([[1, 10], [2, 11]], float), np.zeros((0, 3)),
                 np.zeros((0, 3), np.int64), 7)
    links = build_links([], {}, {})
    links.mentions, links.titles, links.aliases = [(1, 11)], [(1, 2)], [(10, 11)]
    links.sessions = [(1, 2, 0.5)]
    s = LinkSettings(mentions=True, title_weight=0.5, alias_weight=0.8, session_weight=2.0)
    lg = link_graph(g, links, s)
    a = lg.adj.toarray()
    assert a[2, 1] == a[1, 2] == 1.0  # the new mention: passage 1 - phrase 11
    assert a[2, 3] == a[3, 2] == pytest.approx(0.5 + 2.0 * 0.5)  # title + session
    assert a[0, 1] == a[1, 0] == pytest.approx(0.8)  # alias
    assert lg.phrase_passages.tolist() == [1, 2]  # phrase 11 now has two passages
    assert sorted(lg.passage_phrases(1).tolist()) == [0, 1]
    assert g.adj[2, 1] == 0 and lg.generation == 7  # the original arrays are untouched


DOCS = [
    ("Fjord Logistics\nFjord Logistics is owned by Nordic Shipping Group.", "Fjord Logistics"),
    ("Nordic Shipping Group\nNordic Shipping Group is based in Oslo.", "Nordic Shipping Group"),
    ("Zebra Crossing\nA grey zebra crossing painted near the quay.", "Zebra Crossing"),
    ("Quay Works\nNobody here mentions a zebra crossing.", "Quay Works"),
]
BARE = {"extractor": "rules", "use_facts": False, "query_phrase_weight": 0.0,
        "dense_seed_passages": 1, "fusion": "ppr", "seed_fusion": "dense",
        "lexical_passage_weight": 0.0, "session_weight": 0.0,
        "date_weight": 0.0, "date_question_weight": 0.0}


def _open(**opts: object) -> tuple[Memory, list[int]]:
    mem = Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                      backend_options={"hipporag": {**BARE, **opts}})
    return mem, [mem.write(t, metadata={"title": title}) for t, title in DOCS]


def test_a_title_link_carries_the_walk_to_the_named_passage() -> None:
    mem, ids = _open()
    q = "Fjord Logistics owner"
    plain = mem.read(q, k=4, backend="hipporag", trace=True)
    linked = mem.read(q, k=4, backend="hipporag", trace=True,
                      read_options={"hipporag": {"link_title_weight": 5.0}})
    ppr = {h.item.id: h.evidence["ppr"] for h in plain.hits}
    ppr_l = {h.item.id: h.evidence["ppr"] for h in linked.hits}
    assert linked.traces["hipporag"]["link_edges"] >= 1
    assert "link_edges" not in plain.traces["hipporag"]
    # passage 0 names passage 1's title: the edge moves walk mass to passage 1
    assert ppr_l[ids[1]] > ppr.get(ids[1], 0.0)
    mem.close()


def test_negative_link_settings_are_refused_naming_the_option() -> None:
    mem, _ = _open()
    with pytest.raises(InvalidInput, match="session_window"):
        mem.read("Oslo", backend="hipporag",
                 read_options={"hipporag": {"session_weight": 1.0, "session_window": -2}})
    mem.close()


ALL_LINKS = {"link_mentions": True, "link_title_weight": 1.0, "link_alias_weight": 1.0,
             "session_weight": 1.0, "session_window": 0}


def test_linked_scoped_reads_ignore_other_tenants() -> None:
    a_docs = ["Fjord Logistics\nFjord Logistics is owned by Nordic Shipping Group.",
              "Nordic Shipping Group\nNordic Shipping Group is based in Oslo.",
              "Oslo\nOslo is the capital of Norway and home of Fjord Logistics."]
    b_docs = ["Nordic Shipping Group\nThe Nordic Shipping Group sold Fjord Logistics.",
              "Oslo Harbour\nOslo Harbour is run by Nordic Shipping Group."]
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": {"extractor": "rules", **ALL_LINKS}}) as mem:
        for n, t in enumerate(a_docs):
            mem.write(t, scope="acme", metadata={"title": t.split("\n")[0], "session": 1,
                                                 "turn": n})
        mem.write("A third scope keeps acme's reads scoped.", scope="initech")

        def scores() -> list[tuple[int, float]]:
            res = mem.read("Who owns Fjord Logistics?", k=3, scope="acme", backend="hipporag")
            return [(h.id, h.score) for h in res.hits]

        before = scores()
        for t in b_docs:
            mem.write(t, scope="globex", metadata={"title": t.split("\n")[0], "session": 1})
        after = scores()
    assert before and [i for i, _ in after] == [i for i, _ in before]
    np.testing.assert_allclose([s for _, s in after], [s for _, s in before], rtol=1e-6,
                               atol=1e-9)


def test_a_speaker_named_in_the_query_lifts_their_turns() -> None:
    turns = [("Caroline", "I went hiking at Lake Tahoe last weekend."),
             ("Melanie", "Lake Tahoe sounds lovely, I went hiking there too."),
             ("Caroline", "Next I want to visit Yosemite.")]
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": {**BARE, "dense_seed_passages": 2}}) as mem:
        ids = [mem.write(f"{who}: {text}", scope="c1",
                         metadata={"speaker": who, "session": 1}) for who, text in turns]
        q = "Where did Melanie go hiking at Lake Tahoe?"
        plain = mem.read(q, k=3, scope="c1", backend="hipporag", trace=True)
        lifted = mem.read(q, k=3, scope="c1", backend="hipporag", trace=True,
                          read_options={"hipporag": {"speaker_weight": 1.0}})
    assert lifted.traces["hipporag"]["speakers"] == ["melanie"]
    assert "speakers" not in plain.traces["hipporag"]
    ppr = {h.item.id: h.evidence["ppr"] for h in plain.hits}
    ppr_l = {h.item.id: h.evidence["ppr"] for h in lifted.hits}
    # Melanie's turn gains walk mass relative to Caroline's turns
    assert ppr_l[ids[1]] / ppr_l[ids[0]] > ppr.get(ids[1], 0.0) / ppr[ids[0]]
    assert lifted.hits[0].item.id == ids[1]


def test_the_llm_free_defaults_drop_the_bm25_knobs_without_bm25s(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from memkit.backends.hipporag.options import (
        HippoRAGOptions,
        llm_free_defaults,
        retrieval_options,
    )

    with_bm25 = retrieval_options(HippoRAGOptions(), has_llm=False)
    assert (with_bm25.session_weight, with_bm25.session_window) == (1.0, 2)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bm25s" else real(name, *a))
    assert "seed_fusion" not in llm_free_defaults()
    ro = retrieval_options(HippoRAGOptions(), has_llm=False)
    assert (ro.seed_fusion, ro.lexical_passage_weight) == ("dense", 0.0)
    assert (ro.session_weight, ro.dense_seed_passages) == (1.0, 2)  # the rest stays


def test_session_and_title_links_on_the_test_store(tmp_path, request) -> None:  # type: ignore[no-untyped-def]
    """The links read the record and the phrase table through the store protocol: the same
    edges on SQLite and (MEMKIT_TEST_STORE=postgres) on Postgres."""
    import os

    kw = {}
    if os.environ.get("MEMKIT_TEST_STORE", "sqlite") == "postgres":
        kw["store"] = request.getfixturevalue("pg_dsn")
    with Memory.open(tmp_path / "mem", backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": {**BARE}}, **kw) as mem:
        for n, (text, title) in enumerate(DOCS):
            mem.write(text, scope="c1", metadata={"title": title, "session": 1, "turn": n})
        res = mem.read("Fjord Logistics owner", k=4, scope="c1", backend="hipporag",
                       trace=True, read_options={"hipporag": {
                           "link_title_weight": 1.0, "session_weight": 1.0,
                           "session_window": 1}})
    # one title edge (passage 0 names "Nordic Shipping Group") + 3 session neighbours
    assert res.traces["hipporag"]["link_edges"] == 4
    assert len(res.hits) == 4
