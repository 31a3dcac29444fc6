"""Every reward function against hand-worked values (ALGORITHMS.md §3)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memkit.sifterlab.reward import (
    cold_start_weight,
    curriculum_priority,
    fibonacci_cutoffs,
    format_gate,
    marginal_utility_reward,
    mixed_reward,
    ndcg_at_k,
    outcome_reward,
    recall_at_k,
    retrieval_reward,
    reward_cutoffs,
    tier_weights,
    token_f1,
)


def ranking(ids, think="ok"):
    return f"<think>{think}</think><ranking>{','.join(map(str, ids))}</ranking>"


# ----- format gate ---------------------------------------------------------------------------

def test_gate_accepts_exactly_min_10_n_distinct_in_range_ids():
    assert format_gate(ranking([2, 0, 1]), 3)
    assert format_gate(ranking(range(10)), 15)
    assert format_gate("the reasoning</think><ranking>1,0</ranking>", 2)  # <think> in prompt


@pytest.mark.parametrize("text,n", [
    (ranking([0, 1]), 3),                                 # too few (need 3)
    (ranking(range(11)), 15),                             # too many (need 10)
    (ranking([0, 0, 1]), 3),                              # duplicate -> 2 distinct
    (ranking([0, 1, 3]), 3),                              # out of range
    ("<ranking>0,1,2</ranking>", 3),                      # no </think>
    ("<think>x</think>0,1,2", 3),                         # no ranking tags
    ("<think>x</think><ranking>0,1,2", 3),                # unclosed ranking
    ("<think>x</think><ranking>0, 1 and 2</ranking>", 3),  # prose inside
    ("", 3),
])
def test_gate_rejects(text, n):
    assert not format_gate(text, n)


# ----- cut-offs and weights ------------------------------------------------------------------

def test_cutoffs():
    assert fibonacci_cutoffs(10) == [1, 2, 3, 5, 8, 10]
    assert fibonacci_cutoffs(13) == [1, 2, 3, 5, 8, 13]
    assert fibonacci_cutoffs(4) == [1, 2, 3, 4]
    assert fibonacci_cutoffs(2) == [1, 2]
    assert reward_cutoffs(10) == [0, 1, 2, 3, 5, 8, 10]
    assert reward_cutoffs(0) == [0]


def test_tier_weights_match_the_spec_to_four_places():
    w = tier_weights([1, 2, 3, 5, 8, 10])
    assert [round(x, 4) for x in w] == [0.3691, 0.1309, 0.1131, 0.0714, 0.0264, 0.2891]


def test_tier_weights_single_and_invalid():
    assert tier_weights([1]) == [1.0]
    assert tier_weights([3]) == [0.5]
    with pytest.raises(ValueError):
        tier_weights([2, 1])
    with pytest.raises(ValueError):
        tier_weights([0, 1])


@given(st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=12, unique=True))
def test_weights_telescope_to_first_position_gain(ks):
    ks = sorted(ks)
    assert math.isclose(sum(tier_weights(ks)), 1 / math.log2(ks[0] + 1), rel_tol=1e-9)


# ----- marginal-utility outcome reward -------------------------------------------------------

def test_marginal_utility_hand_worked():
    s = {0: 0.2, 1: 0.4, 2: 0.5, 3: 0.6, 5: 0.7, 8: 0.8, 10: 0.9}
    # -0.2 + .369070*.4 + .130930*.5 + .113147*.6 + .071388*.7 + .026400*.8 + .289065*.9
    assert marginal_utility_reward(s) == pytest.approx(0.412232, abs=2e-6)


def test_marginal_utility_includes_the_k1_term():
    # the reference code drops k=1; the spec keeps it: gold first -> R = 1, not 1 - w1
    s = {0: 0.0, 1: 1.0, 2: 1.0, 3: 1.0, 5: 1.0, 8: 1.0, 10: 1.0}
    assert marginal_utility_reward(s) == pytest.approx(1.0)


@pytest.mark.parametrize("first_useful,expected", [
    (1, 1.0), (2, 0.630930), (3, 0.5), (5, 0.386853), (8, 0.315465), (10, 0.289065),
])
def test_binary_answers_reward_is_position_gain_of_first_useful_cutoff(first_useful, expected):
    s = {k: float(k >= first_useful) for k in reward_cutoffs(10)}
    assert marginal_utility_reward(s) == pytest.approx(expected, abs=1e-6)


def test_no_gain_over_baseline_is_zero_and_harm_is_negative():
    assert marginal_utility_reward({0: 1.0, 1: 1.0, 3: 1.0}) == pytest.approx(0.0)
    assert marginal_utility_reward({0: 1.0, 1: 0.0, 2: 0.0, 3: 1.0}) == pytest.approx(-0.5)


def test_marginal_utility_needs_s0():
    with pytest.raises(ValueError):
        marginal_utility_reward({1: 1.0})


def test_outcome_reward_calls_each_cutoff_with_the_ranked_prefix():
    seen = []

    def score_at(units):
        seen.append(list(units))
        return 1.0 if 4 in units else 0.0

    r, scores = outcome_reward(ranking([7, 1, 4, 0, 2, 3, 5, 6, 8, 9]), 12, score_at)
    assert seen == [[], [7], [7, 1], [7, 1, 4], [7, 1, 4, 0, 2], [7, 1, 4, 0, 2, 3, 5, 6],
                    [7, 1, 4, 0, 2, 3, 5, 6, 8, 9]]
    assert scores == {0: 0.0, 1: 0.0, 2: 0.0, 3: 1.0, 5: 1.0, 8: 1.0, 10: 1.0}
    assert r == pytest.approx(0.5)


def test_outcome_reward_gate_failure_is_zero_without_calls():
    calls = []
    r, scores = outcome_reward(ranking([0, 0]), 4, lambda u: calls.append(u) or 1.0)
    assert (r, scores, calls) == (0.0, {}, [])


# ----- retrieval reward and metrics ----------------------------------------------------------

def test_retrieval_reward_is_dcg_over_gold_count():
    # gold 0 at position 1 (0-based) and 1 at position 2: (1/log2 3 + 1/log2 4) / 2
    assert retrieval_reward(ranking([2, 0, 1]), 3, [0, 1]) == pytest.approx(0.565465, abs=1e-6)
    assert retrieval_reward(ranking([0, 1, 2]), 3, [0]) == pytest.approx(1.0)
    assert retrieval_reward(ranking([0, 0, 2]), 3, [0]) == 0.0  # gated
    assert retrieval_reward(ranking([0, 1, 2]), 3, []) == 0.0


def test_retrieval_reward_gold_outside_top10_counts_zero():
    assert retrieval_reward(ranking(range(10)), 12, [11]) == 0.0


def test_ndcg_and_recall_hand_worked():
    assert ndcg_at_k([3, 1, 2], [1, 2], 3) == pytest.approx(1.130930 / 1.630930, abs=1e-6)
    assert ndcg_at_k([1, 3], [1], 1) == 1.0
    assert ndcg_at_k([3, 1], [1], 1) == 0.0
    assert ndcg_at_k([3, 1], [], 5) == 0.0
    assert recall_at_k([5, 4, 3, 2, 1, 0], [0, 4], 5) == 0.5
    assert recall_at_k([5, 4, 3, 2, 1, 0], [0, 4], 6) == 1.0


def test_curriculum_priority():
    assert curriculum_priority(0.2) == 1.0
    assert curriculum_priority(0.7) == pytest.approx(0.5)
    assert curriculum_priority(0.0) == pytest.approx(0.8)
    assert curriculum_priority(0.5, anchor=0.5) == 1.0


def test_cold_start_schedule_and_mix():
    assert [cold_start_weight(e) for e in (0.0, 0.5, 1.0, 2.0)] == [1.0, 0.5, 0.0, 0.0]
    assert cold_start_weight(0.5, start=0.6) == pytest.approx(0.3)
    assert cold_start_weight(0.1, anneal_epochs=0) == 0.0
    assert mixed_reward(0.2, 1.0, 0.25) == pytest.approx(0.4)


# ----- token F1 ------------------------------------------------------------------------------

@pytest.mark.parametrize("pred,gold,expected", [
    ("Paris", "paris", 1.0),
    ("Paris, France", "Paris", 2 / 3),                  # P = 1/2, R = 1
    ("The cat sat", "a cat sat down", 0.8),            # articles dropped; P = 1, R = 2/3
    ("7 May 2023", "7 May, 2023", 1.0),                # punctuation ignored
    ("red red blue", "red blue blue", 2 / 3),          # multiset overlap 2; P = R = 2/3
    ("London", "Paris", 0.0),
    ("", "Paris", 0.0),
    ("", "", 1.0),
])
def test_token_f1(pred, gold, expected):
    assert token_f1(pred, gold) == pytest.approx(expected)


def test_token_f1_takes_best_alias():
    assert token_f1("NYC", ["New York City", "NYC"]) == 1.0
    assert token_f1("x", []) == 0.0
