"""Session-diverse final ranking and Rocchio pseudo-relevance feedback (issue 17, round 4):
hand-computed orders and vectors, and both through Memory.read."""

from __future__ import annotations

import numpy as np
import pytest

from memkit import Memory
from memkit.backends.hipporag.rerank import rocchio, session_diverse
from memkit.embed import HashEmbedder
from memkit.errors import InvalidInput


def test_session_diverse_hand_computed() -> None:
    # ranked: three turns of session A, one of B, one with no session, one of C
    sess = {1: "A", 2: "A", 3: "A", 4: "B", 5: None, 6: "C", 7: "A"}
    ranked = [1, 2, 3, 4, 5, 6, 7]
    # at most one of a session in the top 4: 1 (A), 4 (B), 5 (none), 6 (C); 2, 3 held back
    assert session_diverse(ranked, sess.get, 4, 1) == [1, 4, 5, 6, 2, 3, 7]
    # at most two: 1, 2 (A), 4 (B) fill the top 3; 3 is held back, then the rest
    assert session_diverse(ranked, sess.get, 3, 2) == [1, 2, 4, 3, 5, 6, 7]
    # a cap that binds nowhere, or off: unchanged
    assert session_diverse(ranked, sess.get, 5, 3) == ranked
    assert session_diverse(ranked, sess.get, 4, 0) == ranked
    # fewer other sessions than k: the top k is short of held-back items, which follow
    assert session_diverse([1, 2, 3], sess.get, 3, 1) == [1, 2, 3]
    assert session_diverse([1, 2, 4], sess.get, 2, 1) == [1, 4, 2]


def test_rocchio_hand_computed() -> None:
    q = np.array([1.0, 0.0, 0.0])
    fb = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # q + 1.0 * mean = (1, .5, .5), norm sqrt(1.5) = 1.2247
    out = rocchio(q, fb, 1.0)
    np.testing.assert_allclose(out, [0.8165, 0.4082, 0.4082], atol=1e-4)
    assert out.dtype == np.float32
    # beta 2: (1, 1, 1) / sqrt(3)
    np.testing.assert_allclose(rocchio(q, fb, 2.0), [0.57735] * 3, atol=1e-5)
    np.testing.assert_allclose(rocchio(q, fb, 0.0), q)
    np.testing.assert_allclose(rocchio(q, np.zeros((0, 3)), 1.0), q)
    with pytest.raises(InvalidInput):
        rocchio(q, fb, -1.0)


BARE = {"extractor": "rules", "use_facts": False, "query_phrase_weight": 0.0,
        "dense_seed_passages": 1, "fusion": "ppr", "seed_fusion": "dense",
        "lexical_passage_weight": 0.0, "session_weight": 1.0, "session_window": 0,
        "date_weight": 0.0, "date_question_weight": 0.0}


def test_session_diversity_through_the_backend() -> None:
    turns = [(1, "Ann: my grey kitten sleeps all day"), (1, "Bob: the grey kitten is cute"),
             (1, "Ann: kitten food is expensive"), (2, "Ann: I bought a kitten toy"),
             (3, "Bob: I painted the fence")]
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": BARE}) as mem:
        ids = [mem.write(t, scope="c1", metadata={"session": s}) for s, t in turns]
        session_of = dict(zip(ids, (s for s, _ in turns), strict=True))
        q = "grey kitten"
        plain = mem.read(q, k=3, scope="c1", backend="hipporag")
        diverse = mem.read(q, k=3, scope="c1", backend="hipporag",
                           read_options={"hipporag": {"session_diversity": 1}})
    plain_sessions = [session_of[h.item.id] for h in plain.hits]
    assert plain_sessions.count(1) >= 2  # the walk stays in session 1
    got = [session_of[h.item.id] for h in diverse.hits]
    assert len(got) == 3 and len(set(got)) == 3  # one turn of each session
    # the kept session-1 turn is the best-ranked one of the plain read
    first_1 = next(h.item.id for h in plain.hits if session_of[h.item.id] == 1)
    assert [h.item.id for h in diverse.hits if session_of[h.item.id] == 1] == [first_1]


def test_prf_moves_the_dense_seed_passages() -> None:
    docs = ["alpha beta", "beta gamma", "gamma delta", "delta epsilon"]
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": BARE}) as mem:
        for t in docs:
            mem.write(t, scope="s")
        plain = mem.read("alpha", k=4, scope="s", backend="hipporag", trace=True)
        prf = mem.read("alpha", k=4, scope="s", backend="hipporag", trace=True,
                       read_options={"hipporag": {"prf_passages": 1, "prf_weight": 1.0}})
    assert "prf_passages" not in plain.traces["hipporag"]
    fb = prf.traces["hipporag"]["prf_passages"]
    assert len(fb) == 1 and fb[0] == plain.hits[0].item.id
    dense_p = {h.item.id: h.evidence["dense"] for h in plain.hits}
    dense_f = {h.item.id: h.evidence["dense"] for h in prf.hits}
    # the expanded query is nearer "alpha beta" mixed with itself: the passage sharing
    # "beta" with the feedback passage gains dense score relative to the query alone
    beta_gamma = next(h.item.id for h in plain.hits if h.item.text == "beta gamma")
    assert (dense_f.get(beta_gamma) or 0.0) > (dense_p.get(beta_gamma) or 0.0)
