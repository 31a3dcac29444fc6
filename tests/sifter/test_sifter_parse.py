"""The proxy-output parser on the edge cases a small or untrained model produces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from memkit.backends.sifter.parse import parse_ranking


def test_well_formed_output():
    p = parse_ranking("<think>s3 mentions Oslo</think><ranking>3,1,0,2</ranking>", 4)
    assert p.ranked == [3, 1, 0, 2] and p.order == [3, 1, 0, 2]
    assert p.think == "s3 mentions Oslo"
    assert p.has_think and p.has_ranking and p.closed and p.integers_only and p.ok
    assert p.errors == []


def test_no_tags_falls_back_to_prefilter_order():
    p = parse_ranking("I think session 2 is best, then 0.", 4)
    assert p.ranked == [] and p.order == [0, 1, 2, 3]
    assert not p.has_ranking and not p.ok
    assert "no <ranking> tag" in p.errors and "no </think>" in p.errors


def test_no_tags_uses_given_fallback_order():
    assert parse_ranking("nothing", 3, fallback=[2, 0, 1]).order == [2, 0, 1]


def test_duplicates_keep_first_occurrence():
    p = parse_ranking("<think></think><ranking>2, 0, 2, 0, 1</ranking>", 4)
    assert p.ranked == [2, 0, 1] and p.duplicates == [2, 0]
    assert p.order == [2, 0, 1, 3]


def test_out_of_range_and_negative_ids_dropped():
    p = parse_ranking("<think></think><ranking>7,1,-1,4,0</ranking>", 4)
    assert p.ranked == [1, 0] and p.out_of_range == [7, -1, 4]
    assert p.order == [1, 0, 2, 3]


def test_fewer_than_ten_are_completed_with_unranked_in_prefilter_order():
    p = parse_ranking("<think>x</think><ranking>5,2</ranking>", 12, fallback=[11, *range(11)])
    assert p.ranked == [5, 2]
    assert p.order == [5, 2, 11, 0, 1, 3, 4, 6, 7, 8, 9, 10]


def test_text_after_ranking_is_ignored():
    p = parse_ranking("<think>a</think><ranking>1,0</ranking>\nAlso 2 and 3 matter, 4.", 5)
    assert p.ranked == [1, 0] and p.order == [1, 0, 2, 3, 4]


def test_numbers_inside_think_are_not_a_ranking():
    p = parse_ranking("<think>maybe <ranking>3</ranking> no</think><ranking>0,1</ranking>", 4)
    assert p.ranked == [0, 1]


def test_missing_open_think_tag_is_accepted():
    # thinking chat templates put <think> in the prompt; the completion starts inside it
    p = parse_ranking("the answer is in 2</think><ranking>2,0</ranking>", 3)
    assert p.has_think and p.think == "the answer is in 2" and p.ranked == [2, 0]


def test_truncated_ranking_still_parsed_but_flagged():
    p = parse_ranking("<think>x</think><ranking>4, 1, 3", 5)
    assert p.ranked == [4, 1, 3] and not p.closed
    assert any("truncated" in e for e in p.errors)


def test_session_labels_and_brackets_count_as_integers_only():
    p = parse_ranking("<think></think><ranking>session2, session0</ranking>", 3)
    assert p.ranked == [2, 0] and p.integers_only
    p = parse_ranking("<think></think><ranking>[2] > [1]</ranking>", 3)
    assert p.ranked == [2, 1] and p.integers_only


def test_prose_in_ranking_is_flagged():
    p = parse_ranking("<think></think><ranking>2, then maybe 1</ranking>", 3)
    assert p.ranked == [2, 1] and not p.integers_only


def test_top_n_cuts_ranked_but_order_stays_complete():
    p = parse_ranking("<think></think><ranking>4,3,2,1,0</ranking>", 5, top_n=2)
    assert p.ranked == [4, 3] and p.order == [4, 3, 0, 1, 2]


def test_zero_candidates():
    p = parse_ranking("<think></think><ranking>0</ranking>", 0)
    assert p.ranked == [] and p.order == [] and p.out_of_range == [0]


@given(st.text(max_size=200), st.integers(min_value=0, max_value=15))
def test_order_is_always_a_permutation(text, n):
    p = parse_ranking(text, n)
    assert sorted(p.order) == list(range(n))
    assert p.order[: len(p.ranked)] == p.ranked


@given(st.lists(st.integers(min_value=-3, max_value=20), max_size=25),
       st.integers(min_value=1, max_value=15))
def test_ranked_ids_unique_and_in_range(ids, n):
    text = "<think>t</think><ranking>" + ",".join(map(str, ids)) + "</ranking>"
    p = parse_ranking(text, n)
    assert len(set(p.ranked)) == len(p.ranked)
    assert all(0 <= i < n for i in p.ranked)
    expected = []
    for i in ids:
        if 0 <= i < n and i not in expected:
            expected.append(i)
    assert p.ranked == expected
