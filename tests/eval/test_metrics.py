"""Metrics against hand-worked values and reference formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memkit.eval.metrics import (
    abstention_scores,
    exact_match,
    hit_at_k,
    mean,
    ndcg_at_k,
    normalize_answer,
    percentile,
    recall_at_k,
    token_f1,
)


def test_recall_at_k_hand_values() -> None:
    ranked = [["a"], ["x"], ["b"], ["y"]]
    gold = {"a", "b"}
    assert recall_at_k(ranked, gold, 1) == 0.5
    assert recall_at_k(ranked, gold, 2) == 0.5
    assert recall_at_k(ranked, gold, 3) == 1.0
    assert recall_at_k(ranked, gold, 10) == 1.0  # k beyond the list
    assert recall_at_k(ranked, ["a", "b", "c"], 3) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, [], 3) is None  # no gold: not scored
    assert hit_at_k(ranked, gold, 2) == 1.0 and hit_at_k([["x"]], gold, 1) == 0.0


def test_recall_counts_merged_items_once_per_key() -> None:
    # one retrieved item standing for two identical documents covers both keys
    assert recall_at_k([["a", "b"], ["x"]], {"a", "b"}, 1) == 1.0
    # the same key found twice counts once
    assert recall_at_k([["a"], ["a"]], {"a", "b"}, 2) == 0.5


def test_ndcg_hand_values() -> None:
    # relevant at ranks 2 and 3: DCG = 1/log2(3) + 1/log2(4); IDCG = 1 + 1/log2(3)
    dcg = 1 / math.log2(3) + 0.5
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k([["x"], ["a"], ["b"]], {"a", "b"}, 3) == pytest.approx(dcg / idcg)
    assert ndcg_at_k([["x"], ["a"], ["b"]], {"a", "b"}, 3) == pytest.approx(0.693426, abs=1e-6)
    assert ndcg_at_k([["a"], ["b"]], {"a", "b"}, 2) == 1.0
    # k=1, one relevant item found at rank 1 with 2 gold: ideal caps at min(|gold|, k) = 1
    assert ndcg_at_k([["a"], ["x"]], {"a", "b"}, 1) == 1.0
    # a repeated key earns no second gain
    assert ndcg_at_k([["a"], ["a"]], {"a", "b"}, 2) == pytest.approx(1 / idcg)
    assert ndcg_at_k([["x"]], {"a"}, 1) == 0.0
    assert ndcg_at_k([], {"a"}, 3) == 0.0
    assert ndcg_at_k([["a"]], [], 3) is None


@given(st.lists(st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=2), max_size=12),
       st.sets(st.sampled_from("abcdefg"), min_size=1), st.integers(1, 15))
def test_metric_properties(ranked: list[list[str]], gold: set[str], k: int) -> None:
    r = recall_at_k(ranked, gold, k)
    n = ndcg_at_k(ranked, gold, k)
    assert r is not None and n is not None
    assert 0.0 <= r <= 1.0 and 0.0 <= n <= 1.0
    assert (r == 0.0) == (n == 0.0)
    assert r <= (recall_at_k(ranked, gold, k + 1) or 0.0)  # monotone in k


def test_squad_normalisation() -> None:
    assert normalize_answer("The Beatles") == "beatles"
    assert normalize_answer("  The  Cat's   hat! ") == "cats hat"
    assert normalize_answer("an apple, a pear & the plum.") == "apple pear plum"
    assert normalize_answer("Theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("U.S.A.") == "usa"


def test_exact_match_and_f1_hand_values() -> None:
    assert exact_match("the Beatles", ["Beatles"]) == 1.0
    assert exact_match("Beatles band", ["Beatles"]) == 0.0
    assert exact_match("NYC", ["New York City", "nyc"]) == 1.0  # max over aliases
    # pred {paris, france} vs gold {paris}: P = 1/2, R = 1 -> F1 = 2/3
    assert token_f1("Paris, France", ["Paris"]) == pytest.approx(2 / 3)
    # pred {new, york, city} vs aliases: best is "New York" (P 2/3, R 1 -> 0.8)
    assert token_f1("New York City", ["NYC", "New York"]) == pytest.approx(0.8)
    # repeated tokens count by multiplicity: pred {a_tok x2} vs gold {a_tok x1}
    assert token_f1("paris paris", ["paris"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert token_f1("Berlin", ["Paris"]) == 0.0
    assert token_f1("anything", []) == 0.0 and exact_match("anything", []) == 0.0
    # both empty after normalisation: SQuAD v2's rule (EM 1 and F1 1, never F1 < EM); the
    # MemSifter reward uses this very function, so eval and training agree
    assert exact_match("a", ["the"]) == 1.0 and token_f1("a", ["the"]) == 1.0
    from memkit.sifterlab.reward import token_f1 as reward_f1

    assert reward_f1("the", "the") == token_f1("the", ["the"]) == 1.0
    assert reward_f1("a", "Paris") == token_f1("a", "Paris") == 0.0


def test_abstention_scores_hand_values() -> None:
    s = abstention_scores([True, True, False, False], [True, False, True, False])
    assert s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5
    s = abstention_scores([True, False, False], [True, True, False])
    assert s["precision"] == 1.0 and s["recall"] == 0.5
    assert s["f1"] == pytest.approx(2 / 3)
    s = abstention_scores([False, False], [False, False])
    assert s["precision"] is None and s["recall"] is None
    with pytest.raises(ValueError):
        abstention_scores([True], [True, False])


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=40),
       st.sampled_from([0, 5, 50, 95, 100]))
def test_percentile_matches_numpy(values: list[float], q: int) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_and_mean_hand_values() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20], 95) == 19.5
    assert percentile([], 50) is None
    assert mean([1.0, None, 3.0]) == 2.0 and mean([None]) is None
