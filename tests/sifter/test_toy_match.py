"""toy_match_examples: the relevance toys for the CPU GRPO proof (deterministic, fair)."""

from __future__ import annotations

from collections import Counter

import pytest

from memkit.errors import InvalidInput
from memkit.sifterlab.data import (
    _MATCH_FRUITS,
    _MATCH_KEYS,
    _MATCH_VALUES,
    CATEGORY_QUESTION,
    COLOUR_QUESTION,
    toy_match_examples,
)
from memkit.sifterlab.working import SimulatedWorkingLLM, WorkingAgent


@pytest.mark.parametrize("mode", ["category", "choice", "key"])
def test_deterministic_in_seed(mode: str) -> None:
    a = toy_match_examples(20, seed=3, mode=mode)
    b = toy_match_examples(20, seed=3, mode=mode)
    c = toy_match_examples(20, seed=4, mode=mode)
    assert [(e.question, [u.text for u in e.units], e.gold) for e in a] == \
        [(e.question, [u.text for u in e.units], e.gold) for e in b]
    assert [[u.text for u in e.units] for e in a] != [[u.text for u in e.units] for e in c]


@pytest.mark.parametrize("mode", ["category", "choice", "key"])
def test_gold_position_uniform(mode: str) -> None:
    exs = toy_match_examples(4000, n_units=4, seed=0, mode=mode)
    counts = Counter(e.gold[0] for e in exs)
    assert set(counts) == {0, 1, 2, 3}
    # each position 1000 ± 4 sigma (sigma = sqrt(4000 * 1/4 * 3/4) ≈ 27)
    assert all(abs(c - 1000) < 110 for c in counts.values())
    assert all(len(e.gold) == 1 for e in exs)


def test_category_only_gold_is_a_fruit() -> None:
    for e in toy_match_examples(300, n_units=4, seed=1, mode="category"):
        texts = [u.text for u in e.units]
        fruits = [i for i, t in enumerate(texts) if t in _MATCH_FRUITS]
        assert fruits == e.gold
        assert all(t in _MATCH_KEYS for i, t in enumerate(texts) if i not in e.gold)
        assert len(set(texts)) == 4
        assert e.question == CATEGORY_QUESTION
        assert e.answers == [texts[e.gold[0]]]


def test_choice_gold_is_what_the_question_asks_for() -> None:
    asked = Counter()
    for e in toy_match_examples(400, n_units=4, seed=1, mode="choice"):
        texts = [u.text for u in e.units]
        fruits = [i for i, t in enumerate(texts) if t in _MATCH_FRUITS]
        colours = [i for i, t in enumerate(texts) if t in _MATCH_VALUES]
        assert len(fruits) == len(colours) == 1 and len(set(texts)) == 4
        want = colours if e.question == COLOUR_QUESTION else fruits
        assert e.question in (COLOUR_QUESTION, CATEGORY_QUESTION) and e.gold == want
        assert e.answers == [texts[e.gold[0]]]
        asked[e.question] += 1
    # both questions are asked, so a policy ignoring the question scores about 0.5
    assert all(150 < c < 250 for c in asked.values())
    with pytest.raises(InvalidInput, match="2 <= n_units"):
        toy_match_examples(1, n_units=1, mode="choice")


def test_key_question_word_only_in_gold() -> None:
    for e in toy_match_examples(300, n_units=4, seed=1, mode="key"):
        holders = [i for i, u in enumerate(e.units) if e.question in u.text.split()]
        assert holders == e.gold
        key, value = e.units[e.gold[0]].text.split()
        assert key == e.question and e.answers == [value]


def test_no_word_is_substring_of_another() -> None:
    words = _MATCH_KEYS + _MATCH_FRUITS + _MATCH_VALUES
    assert len(set(words)) == len(words)
    assert not [(a, b) for a in words for b in words if a != b and a in b]


@pytest.mark.parametrize("mode", ["category", "choice", "key"])
def test_simulated_llm_correct_iff_gold_shown(mode: str) -> None:
    exs = toy_match_examples(40, seed=5, mode=mode)
    agent = WorkingAgent(SimulatedWorkingLLM.from_examples(exs))
    for e in exs:
        g = e.gold[0]
        others = [u for i, u in enumerate(e.units) if i != g]
        got = agent.answer_many([(e.question, [e.units[g]]), (e.question, others),
                                 (e.question, [])])
        assert got[0] == e.answers[0]
        assert got[1] != e.answers[0] and got[2] != e.answers[0]


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInput):
        toy_match_examples(1, mode="nope")
    with pytest.raises(InvalidInput):
        toy_match_examples(1, n_units=0)
