"""Beam search over QA chains with a dictionary retriever: known chains, scores and pruning."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memkit.backends.panini.chains import (
    BeamParams,
    beam_search,
    chain_score,
    components,
    harmonic_mean,
    normalised,
    substitute,
)
from memkit.backends.panini.render import NO_EVIDENCE, render_evidence
from memkit.backends.panini.retrieval import AnswerRef, QACandidate
from memkit.decomposition import validate


def cand(qa_id: int, item_id: int, question: str, answer: str, score: float) -> QACandidate:
    return QACandidate(qa_id, item_id, question, (AnswerRef(answer.casefold(), answer),), score)


def dict_retriever(table: dict[str, list[QACandidate]], calls: list[str]
                   ) -> Callable[[str], list[QACandidate]]:
    """Retrieval by exact (substituted) sub-question text; records every call."""

    def retrieve(text: str) -> list[QACandidate]:
        calls.append(text)
        return list(table.get(text, []))

    return retrieve


def test_chain_score_is_geometric_mean_of_normalised_similarities() -> None:
    # 0.5*(0.8+1)=0.9, 0.5*(0.2+1)=0.6 -> sqrt(0.54)
    assert chain_score([0.8, 0.2]) == pytest.approx(math.sqrt(0.9 * 0.6))
    assert normalised(-1.0) == 1e-6 and normalised(3.0) == 1.0
    assert harmonic_mean([0.9, 0.6]) == pytest.approx(2 / (1 / 0.9 + 1 / 0.6))


@given(st.lists(st.floats(-1, 1), min_size=1, max_size=6))
def test_chain_score_lies_between_worst_and_best_hop(sims: list[float]) -> None:
    s = chain_score(sims)
    lo, hi = min(normalised(x) for x in sims), max(normalised(x) for x in sims)
    assert lo - 1e-9 <= s <= hi + 1e-9


def test_three_hop_chain_follows_the_right_entities() -> None:
    table = {
        "Who directed Casablanca?": [cand(1, 10, "Who directed Casablanca?", "Michael Curtiz", .9),
                                     cand(2, 11, "Who directed Heat?", "Michael Mann", .3)],
        "Who is the spouse of Michael Curtiz?": [
            cand(3, 20, "Who was Michael Curtiz married to?", "Bess Meredyth", .8)],
        "Who is the spouse of Michael Mann?": [
            cand(4, 21, "Who is Michael Mann married to?", "Summer Mann", .5)],
        "Where was Bess Meredyth born?": [
            cand(5, 30, "Where was Bess Meredyth born?", "Buffalo", .7)],
        "Where was Summer Mann born?": [cand(6, 31, "Where was Summer Mann born?", "Ohio", .1)],
    }
    calls: list[str] = []
    d = validate(["Who directed Casablanca?", "Who is the spouse of <ENTITY_Q1>?",
                  "Where was <ENTITY_Q2> born?"], "q")
    res = beam_search(d, dict_retriever(table, calls))
    best = res.chains[0]
    assert [s.pair.qa_id for s in best.steps] == [1, 3, 5]
    assert best.bindings == {0: "Michael Curtiz", 1: "Bess Meredyth"}
    assert best.score == pytest.approx((0.95 * 0.9 * 0.85) ** (1 / 3))
    assert [s.pair.qa_id for s in res.chains[1].steps] == [2, 4, 6]
    assert "Where was Bess Meredyth born?" in calls
    text = render_evidence(res.chains[:1])
    assert text.splitlines()[-1] == "Q: Where was Bess Meredyth born? A: Buffalo"


def test_join_of_two_branches_uses_harmonic_mean_and_threshold() -> None:
    table = {
        "Who directed Dune?": [cand(1, 1, "Who directed Dune?", "Denis Villeneuve", .9)],
        "Who composed for Dune?": [cand(2, 2, "Who composed the score of Dune?", "Hans Zimmer",
                                        .8),
                                   cand(3, 3, "Who composed for Dunes?", "Nobody", -0.9)],
        "Which film did Denis Villeneuve and Hans Zimmer make together first?": [
            cand(4, 4, "Which film did Villeneuve and Zimmer first make?", "Blade Runner 2049",
                 .6)],
        "Which film did Denis Villeneuve and Nobody make together first?": [
            cand(5, 5, "x", "Wrong", .99)],
    }
    calls: list[str] = []
    d = validate(["Who directed Dune?", "Who composed for Dune?",
                  "Which film did <ENTITY_Q1> and <ENTITY_Q2> make together first?"], "q")
    assert d.questions[2].deps == (0, 1)
    res = beam_search(d, dict_retriever(table, calls), BeamParams(join_threshold=0.3))
    # the (Villeneuve, Nobody) combination scores H(0.95, 0.05) < 0.3 and is pruned
    assert "Which film did Denis Villeneuve and Nobody make together first?" not in calls
    assert len(res.chains) == 1
    chain = res.chains[0]
    assert [s.pair.qa_id for s in chain.steps] == [1, 2, 4]
    assert chain.score == pytest.approx((0.95 * 0.9 * 0.8) ** (1 / 3))
    assert components(d.questions) == [[0, 1, 2]]


def test_dead_end_abstains() -> None:
    table = {"Who founded Acme?": [cand(1, 1, "Who founded Acme?", "Jane Roe", .9)]}
    d = validate(["Who founded Acme?", "Where was <ENTITY_Q1> born?"], "q")
    res = beam_search(d, dict_retriever(table, []))
    assert res.chains == [] and res.hop_beams == {0: 1, 1: 0}
    assert render_evidence(res.chains) == NO_EVIDENCE


def test_beam_pruning_keeps_width_and_one_chain_per_entity() -> None:
    first = [cand(1, 1, "a", "A", .9), cand(2, 2, "a2", "A", .85), cand(3, 3, "b", "B", .8),
             cand(4, 4, "c", "C", .7), cand(5, 5, "d", "D", .6)]
    table = {"Q1?": first}
    for name, s in (("A", .5), ("B", .5), ("C", .99), ("D", .99)):
        table[f"Next {name}?"] = [cand(10 + ord(name), 50, f"next {name}", f"{name}2", s)]
    calls: list[str] = []
    d = validate(["Q1?", "Next <ENTITY_Q1>?"], "q")
    res = beam_search(d, dict_retriever(table, calls), BeamParams(beam_width=2))
    # hop 1 keeps one chain per answer (A once, via its best pair) and only the 2 best
    assert calls == ["Q1?", "Next A?", "Next B?"]
    assert res.hop_beams[0] == 2
    assert [c.steps[0].pair.qa_id for c in res.chains] == [1, 3]


def test_chain_does_not_bounce_back_to_a_bound_entity() -> None:
    table = {"Who directed Heat?": [cand(1, 1, "Who directed Heat?", "Michael Mann", .9)],
             "Where was Michael Mann born?": [
                 cand(2, 1, "Who directed Heat?", "Michael Mann", .95),
                 cand(3, 2, "Where was Michael Mann born?", "Chicago", .7)]}
    d = validate(["Who directed Heat?", "Where was <ENTITY_Q1> born?"], "q")
    res = beam_search(d, dict_retriever(table, []))
    assert [[s.pair.qa_id for s in c.steps] for c in res.chains] == [[1, 3]]


def test_single_hop_keeps_the_best_pairs() -> None:
    table = {"Who?": [cand(i, i, f"q{i}", f"a{i}", 1 - i / 10) for i in range(1, 8)]}
    res = beam_search(validate(["Who?"], "Who?"), dict_retriever(table, []),
                      BeamParams(single_hop_pairs=3))
    assert [c.steps[0].pair.qa_id for c in res.chains] == [1, 2, 3]


def test_substitute_leaves_unbound_placeholders() -> None:
    assert substitute("<ENTITY_Q1> and <ENTITY_Q3>", {0: "A"}) == "A and <ENTITY_Q3>"
