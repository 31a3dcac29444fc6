"""Dates as graph nodes (issue 17, round 4): relative dates resolved by hand against known
session dates, query date patterns, the date nodes' arrays, and date-seeded reads that stay
inside their scope."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from memkit import Memory
from memkit.backends.hipporag.dates import (
    DatePattern,
    anchor_date,
    matches,
    month,
    query_dates,
    relative,
    resolve,
    week,
    weekend,
    year,
)
from memkit.backends.hipporag.graph import assemble
from memkit.backends.hipporag.linked import DATE_ID_BASE, add_date_nodes, passage_dates
from memkit.backends.hipporag.linking import LinkPassage
from memkit.embed import HashEmbedder
from memkit.errors import InvalidInput

# 8 May 2023 was a Monday (LoCoMo's first session date)
MON = date(2023, 5, 8)


def keys(text: str, anchor: date | None = MON) -> list[str]:
    return [s.key for s in resolve(text, anchor)]


def test_relative_days_against_the_session_date() -> None:
    assert keys("I went yesterday") == ["2023-05-07"]
    assert keys("the day before yesterday") == ["2023-05-06"]  # not also "yesterday"
    assert keys("We met last night, and again tonight; see you tomorrow") == \
        ["2023-05-07", "2023-05-08", "2023-05-09"]
    assert keys("It happened 3 days ago") == ["2023-05-05"]
    assert keys("two days ago and a day ago") == ["2023-05-06", "2023-05-07"]
    # last Saturday from a Monday: two days back; next Friday: four days on
    assert keys("last Saturday") == ["2023-05-06"]
    assert keys("next Friday") == ["2023-05-12"]
    # "last Monday" said on a Monday is a week back, never the day itself
    assert keys("last Monday") == ["2023-05-01"]
    assert keys("next Monday") == ["2023-05-15"]


def test_relative_weeks_months_years() -> None:
    # the ISO week of 8 May 2023 is week 19: last week 18, next week 20
    assert keys("last week") == ["2023-W18"] and keys("this week") == ["2023-W19"]
    assert keys("next week") == ["2023-W20"] and keys("the past week") == ["2023-W18"]
    assert week(date(2023, 5, 3)).start == date(2023, 5, 1)
    assert week(date(2023, 5, 3)).end == date(2023, 5, 7)
    assert keys("last weekend") == ["2023-W18-weekend"]
    assert weekend(date(2023, 5, 1)).start == date(2023, 5, 6)  # Saturday 6 May
    assert keys("two weeks ago") == ["2023-W17"]  # 24 April is in week 17
    assert keys("last month and next month") == ["2023-04", "2023-06"]
    assert keys("a couple of months ago") == ["2023-03"]
    assert resolve("last month", date(2023, 1, 15)) == [month(2022, 12)]  # across a year
    assert keys("last year, next year, 3 years ago") == ["2022", "2024", "2020"]


def test_absolute_dates_and_no_anchor() -> None:
    assert keys("On 8 May, 2023 and May 9th 2023 and 2023-05-10") == \
        ["2023-05-08", "2023-05-09", "2023-05-10"]
    assert keys("back in July 2022") == ["2022-07"]
    # a day and month without a year: the anchor's year; without an anchor: skipped
    assert keys("see you on June 3rd") == ["2023-06-03"]
    assert keys("see you on June 3rd", None) == []
    # no anchor: relative words resolve to nothing; impossible days are no dates
    assert keys("yesterday", None) == [] and keys("February 30, 2023") == []
    # a month or a year alone is no date in a turn ("May" is a verb, 2000 a price)
    assert keys("I may go in May, it cost 2000 dollars") == []
    assert anchor_date("1:56 pm on 8 May, 2023") == MON
    assert anchor_date("2023/05/20 (Sat) 02:21") == date(2023, 5, 20)
    assert anchor_date("no date here") is None


def test_relative_positions_are_in_text_order() -> None:
    found = relative("next month, then yesterday", MON)
    assert [(pos, s.key) for pos, s in found] == [(0, "2023-06"), (17, "2023-05-07")]


def test_query_dates_and_matching() -> None:
    assert query_dates("What did Gina find on 1 February, 2023?") == [DatePattern(2023, 2, 1)]
    assert query_dates("What setback did Melanie face in October 2023?") == \
        [DatePattern(2023, 10, None)]
    assert query_dates("When did Melanie go camping in June?") == [DatePattern(None, 6, None)]
    assert query_dates("How many times has Melanie gone to the beach in 2023?") == \
        [DatePattern(2023, None, None)]
    assert query_dates("What did she do yesterday?") == []
    assert query_dates("May I ask where she went?") == []
    may3 = resolve("on 3 May, 2023")[0]
    assert matches(may3, DatePattern(2023, 5, None)) and matches(may3, DatePattern(None, 5, 3))
    assert not matches(may3, DatePattern(2023, 5, 4)) and not matches(may3, DatePattern(2022))
    # a week overlapping two months matches both; a year holds every month
    w = week(date(2023, 5, 31))  # 29 May - 4 June
    assert matches(w, DatePattern(2023, 6, 2)) and matches(w, DatePattern(None, 5, None))
    assert matches(year(2023), DatePattern(None, 2, 3))
    assert not matches(year(2023), DatePattern(2024, 2, 3))


def test_passage_dates_skip_the_written_session_prefix() -> None:
    date_s = "1:56 pm on 8 May, 2023"
    p = LinkPassage(1, f"[{date_s}] Caroline: I went to a support group yesterday.",
                    date=date_s)
    assert [s.key for s in passage_dates(p, False)] == ["2023-05-07"]
    assert [s.key for s in passage_dates(p, True)] == ["2023-05-07", "2023-05-08"]
    no_anchor = LinkPassage(2, "Caroline: I went yesterday.")
    assert passage_dates(no_anchor, True) == []
    # an undated document gets no date node even for an absolute date (its extraction holds
    # the date as a phrase already); the same text dated gets it
    text = "The bridge opened on 8 May, 2023."
    assert passage_dates(LinkPassage(3, text), False) == []
    assert [s.key for s in passage_dates(LinkPassage(4, text, date=date_s), False)] == \
        ["2023-05-08"]


def test_add_date_nodes_hand_computed_arrays() -> None:
    # phrases 10, 11 (nodes 0, 1); passages 1, 2, 3 (nodes 2, 3, 4 before dates)
    g = assemble(np.array([10, 11]), np.array([1, 2, 3]), np.zeros((0, 3)),
                 np.array([[1, 10], [2, 11], [3, 11]], float), np.zeros((0, 3)),
                 np.zeros((0, 3), np.int64), 3)
    d7, d8 = resolve("8 May, 2023 and 7 May, 2023")[::-1]  # 7 May, 8 May
    # passage 1 and 3 name 7 May in group "a"; passage 2 names 7 May in group "b" and 8 May
    dg = add_date_nodes(g, [[("a", d7)], [("b", d7), ("b", d8)], [("a", d7)]])
    assert dg.n_phrases == 5 and dg.n_nodes == 8  # three date nodes: (a,7) (b,7) (b,8)
    assert dg.phrase_ids.tolist()[2:] == [DATE_ID_BASE, DATE_ID_BASE + 1, DATE_ID_BASE + 2]
    assert [s.key for s in dg.date_nodes or ()] == ["2023-05-07", "2023-05-07", "2023-05-08"]
    a = dg.adj.toarray()
    # passages are now nodes 5, 6, 7; their phrase edges survive at the shifted index
    assert a[5, 0] == a[0, 5] == 1 and a[6, 1] == 1 and a[7, 1] == 1
    # date (a, 7 May) = node 2 joins passages 1 and 3; (b, 7 May) only passage 2
    assert a[2, 5] == a[2, 7] == a[5, 2] == 1 and a[2, 6] == 0
    assert a[3, 6] == a[4, 6] == 1 and a[3, 5] == 0
    assert dg.phrase_passages.tolist() == [1, 2, 2, 1, 1]
    assert sorted(dg.passage_phrases(2).tolist()) == [1, 3, 4]
    assert a.sum() == 2 * (3 + 4)  # 3 phrase edges + 4 date edges, both directions
    assert add_date_nodes(g, [[], [], []]) is g  # no dates: the graph as it was


def test_date_nodes_shift_link_edges_and_scope_like_phrases() -> None:
    from dataclasses import replace

    from memkit.backends.hipporag.scoped import scoped_view

    g = assemble(np.array([10, 11]), np.array([1, 2, 3]), np.zeros((0, 3)),
                 np.array([[1, 10], [2, 11], [3, 11]], float), np.zeros((0, 3)),
                 np.zeros((0, 3), np.int64), 3)
    g = replace(g, link_edges=np.array([[2.0, 3.0, 0.5], [0.0, 1.0, 0.8]]))  # P1-P2, 10-11
    d7 = resolve("7 May, 2023")[0]
    dg = add_date_nodes(g, [[("a", d7)], [("a", d7)], []])
    assert dg.link_edges is not None
    # one date node: passage nodes 2, 3 become 3, 4; phrase nodes stay
    assert dg.link_edges.tolist() == [[3.0, 4.0, 0.5], [0.0, 1.0, 0.8]]
    assert g.link_edges is not None and g.link_edges[0, 0] == 2.0  # the input untouched
    view = scoped_view(dg, np.array([True, False, True]))
    # the date node (node 2) is seen through passage 1 only; passage 2 is out of scope
    assert view.visible.tolist() == [True, True, True]
    assert view.phrase_passages.tolist() == [1, 1, 1]
    assert view.adj[2, 3] == 1 and view.adj[2, 4] == 0
    only3 = scoped_view(dg, np.array([False, False, True]))
    assert only3.visible.tolist() == [False, True, False]


def test_dates_with_the_llm_free_defaults_session_links_on() -> None:
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": {"extractor": "rules"}}) as mem:
        ids = _write(mem, TURNS)
        res = mem.read("When did Ann adopt the grey kitten?", k=4, scope="c1",
                       backend="hipporag", trace=True,
                       read_options={"hipporag": {"date_weight": 0.3, "date_session": True,
                                                  "date_question_weight": 0.3}})
    t = res.traces["hipporag"]
    assert t["link_edges"] > 0 and t["dated_passages"] == 2  # "yesterday", "last weekend"
    assert res.hits[0].item.id == ids[0]


TURNS = [  # (scope, session date, speaker, text)
    ("c1", "1:00 pm on 8 May, 2023", "Ann", "I adopted a grey kitten yesterday!"),
    ("c1", "1:00 pm on 8 May, 2023", "Bob", "Lovely. I repaired my old bicycle."),
    ("c1", "2:00 pm on 20 June, 2023", "Ann", "My cousin visited from Lisbon."),
    ("c1", "2:00 pm on 20 June, 2023", "Bob", "I baked bread last weekend."),
]
BARE = {"extractor": "rules", "use_facts": False, "query_phrase_weight": 0.0,
        "dense_seed_passages": 1, "fusion": "ppr", "seed_fusion": "dense",
        "lexical_passage_weight": 0.0, "session_weight": 0.0,
        "date_weight": 0.0, "date_question_weight": 0.0}


def _write(mem: Memory, turns: list[tuple[str, str, str, str]]) -> list[int]:
    return [mem.write(f"[{d}] {who}: {text}", scope=scope,
                      metadata={"speaker": who, "session": 1 + n // 2, "date": d})
            for n, (scope, d, who, text) in enumerate(turns)]


def test_a_query_date_seeds_the_turns_of_that_day() -> None:
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": BARE}) as mem:
        ids = _write(mem, TURNS)
        q = "What did Ann do on 7 May, 2023?"
        plain = mem.read(q, k=4, scope="c1", backend="hipporag", trace=True)
        dated = mem.read(q, k=4, scope="c1", backend="hipporag", trace=True,
                         read_options={"hipporag": {"date_weight": 1.0}})
        with pytest.raises(InvalidInput, match="date_weight"):
            mem.read(q, scope="c1", backend="hipporag",
                     read_options={"hipporag": {"date_weight": -1.0}})
    # only turn 0 implies 7 May ("yesterday" on 8 May): its node is the one seeded
    assert dated.traces["hipporag"]["date_nodes"] == ["2023-05-07"]
    assert "date_nodes" not in plain.traces["hipporag"]
    ppr = {h.item.id: h.evidence["ppr"] for h in plain.hits}
    ppr_d = {h.item.id: h.evidence["ppr"] for h in dated.hits}
    assert dated.hits[0].item.id == ids[0]
    assert ppr_d[ids[0]] / max(ppr_d.get(ids[1], 0.0), 1e-12) > \
        ppr.get(ids[0], 0.0) / max(ppr.get(ids[1], 0.0), 1e-12)


def test_session_dates_join_the_turns_of_a_month_query() -> None:
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": BARE}) as mem:
        ids = _write(mem, TURNS)
        res = mem.read("What happened in June 2023?", k=4, scope="c1", backend="hipporag",
                       trace=True, read_options={"hipporag": {"date_weight": 1.0,
                                                              "date_session": True}})
    # June: the session day 20 June and Bob's "last weekend" (17-18 June); not May's nodes
    assert sorted(res.traces["hipporag"]["date_nodes"]) == ["2023-06-20", "2023-W24-weekend"]
    assert {h.item.id for h in res.hits[:2]} == {ids[2], ids[3]}


def test_date_nodes_never_carry_another_scopes_writes() -> None:
    other = [("c2", "1:00 pm on 8 May, 2023", "Cid", "I adopted a puppy yesterday."),
             ("c2", "1:00 pm on 8 May, 2023", "Dee", "We went sailing yesterday.")]
    opts = {"hipporag": {"date_weight": 1.0, "date_session": True}}
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": BARE}) as mem:
        _write(mem, TURNS)

        def scores() -> list[tuple[int, float]]:
            res = mem.read("What did Ann adopt on 7 May, 2023?", k=4, scope="c1",
                           backend="hipporag", read_options=opts)
            return [(h.id, h.score) for h in res.hits]

        before = scores()
        _write(mem, other)
        after = scores()
    assert before and [i for i, _ in after] == [i for i, _ in before]
    np.testing.assert_allclose([s for _, s in after], [s for _, s in before], rtol=1e-6,
                               atol=1e-9)


def test_a_when_question_lifts_the_turns_that_name_a_date() -> None:
    from memkit.backends.hipporag.dates import asks_for_a_date

    assert asks_for_a_date("When did Ann adopt a kitten?")
    assert asks_for_a_date("How long ago was Bob in Lisbon?")
    assert not asks_for_a_date("What did Ann adopt?")
    turns = [("c1", "1:00 pm on 8 May, 2023", "Ann", "My grey kitten Milo is asleep."),
             ("c1", "1:00 pm on 8 May, 2023", "Bob", "Milo the grey kitten came yesterday."),
             ("c1", "2:00 pm on 20 June, 2023", "Ann", "Milo loves the garden.")]
    opts = {"hipporag": {"date_question_weight": 1.0}}
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": BARE}) as mem:
        ids = _write(mem, turns)
        q = "When did the grey kitten Milo come?"
        plain = mem.read(q, k=3, scope="c1", backend="hipporag", trace=True)
        lifted = mem.read(q, k=3, scope="c1", backend="hipporag", trace=True,
                          read_options=opts)
        other = mem.read("What is the grey kitten called?", k=3, scope="c1",
                         backend="hipporag", trace=True, read_options=opts)
    # one turn of three implies a date ("yesterday"); the session date alone does not count
    assert lifted.traces["hipporag"]["dated_passages"] == 1
    assert "dated_passages" not in plain.traces["hipporag"]
    assert "dated_passages" not in other.traces["hipporag"]  # not a time question
    ppr = {h.item.id: h.evidence["ppr"] for h in plain.hits}
    ppr_l = {h.item.id: h.evidence["ppr"] for h in lifted.hits}
    assert ppr_l[ids[1]] / ppr_l[ids[0]] > ppr[ids[1]] / ppr[ids[0]]
    assert lifted.hits[0].item.id == ids[1]


def test_date_spans_are_resolved_once_per_passage(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new graph generation (every write makes one) resolves only the passages not seen
    before: an item's text and date never change under its id."""
    from memkit.backends.hipporag import linked as linked_mod

    d = "1:56 pm on 8 May, 2023"
    record = {1: LinkPassage(1, "I went yesterday.", date=d),
              2: LinkPassage(2, "Nothing dated here.", date=d),
              3: LinkPassage(3, "See you tomorrow!", date=d)}
    asked: list[list[int]] = []

    def fake_read(store: object, ids: np.ndarray) -> list[LinkPassage]:
        asked.append(ids.tolist())
        return [record[i] for i in ids.tolist()]

    monkeypatch.setattr(linked_mod, "read_passages", fake_read)
    cache = linked_mod.LinkedGraphs()
    first = cache.passage_spans(None, np.array([1, 2]), False)  # type: ignore[arg-type]
    again = cache.passage_spans(None, np.array([1, 2, 3]), False)  # type: ignore[arg-type]
    assert asked == [[1, 2], [3]]
    assert [[s.key for _, s in spans] for spans in first] == [["2023-05-07"], []]
    assert [[s.key for _, s in spans] for spans in again] == [["2023-05-07"], [], ["2023-05-09"]]
    cache.passage_spans(None, np.array([3]), True)  # type: ignore[arg-type]
    assert asked[-1] == [3]  # with the session day: another entry per passage
