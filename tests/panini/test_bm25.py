"""BM25 against a hand-computed score and a loop reference."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memkit.backends.panini.bm25 import BM25, hand_score, tokenize


def test_score_matches_hand_computation() -> None:
    corpus = ["Paris France", "Paris Texas Paris", "Lyon France"]
    bm = BM25(k1=1.5, b=0.75).fit([1, 2, 3], corpus)
    # doc 2: tokens [paris, texas, paris] -> |d|=3, avgdl=(2+3+2)/3=7/3, tf(paris)=2, df=2, N=3
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    expected = idf * 2 * 2.5 / (2 + 1.5 * (1 - 0.75 + 0.75 * 3 / (7 / 3)))
    ids, scores = bm.top("paris", 3)
    assert list(ids) == [2, 1]
    assert float(scores[0]) == pytest.approx(expected, rel=1e-6)


def test_stopwords_and_mask() -> None:
    bm = BM25().fit([5, 6], ["The Capital of France", "Capital Letters"])
    assert tokenize("What is the capital of France?") == ["capital", "france"]
    ids, _ = bm.top("capital of France", 2, mask=[False, True])
    assert list(ids) == [6]
    assert len(bm.top("nothing matches", 2)[0]) == 0


words = st.sampled_from(["alpha", "beta", "gamma", "delta", "eps"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(words, min_size=1, max_size=6), min_size=1, max_size=6),
       st.lists(words, min_size=1, max_size=3))
def test_matches_loop_reference(docs: list[list[str]], query: list[str]) -> None:
    texts = [" ".join(d) for d in docs]
    bm = BM25().fit(list(range(len(texts))), texts)
    got = bm.scores(" ".join(query))
    for i, t in enumerate(texts):
        assert got[i] == pytest.approx(hand_score(" ".join(query), t, texts), rel=1e-5, abs=1e-6)
