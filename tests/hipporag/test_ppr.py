"""PPR: equal to networkx on random graphs, a hand-computed 4-node answer, push error bound."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from memkit.backends.hipporag.ppr import PPROperator, personalized_pagerank
from memkit.backends.hipporag.push import LocalPPR, local_ppr
from memkit.errors import InvalidInput


def random_graph(seed: int, n: int, p: float) -> tuple[nx.Graph, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for i in range(n):
        for j in range(i, n):
            if rng.random() < p:
                g.add_edge(i, j, weight=float(rng.uniform(0.1, 2.0)))
    A = nx.to_scipy_sparse_array(g, nodelist=range(n), weight="weight", format="csr")
    return g, sp.csr_matrix(A)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40), p=st.floats(0.02, 0.5),
       damping=st.sampled_from([0.5, 0.85, 0.1]), nseeds=st.integers(1, 5))
def test_equals_networkx_pagerank(seed: int, n: int, p: float, damping: float,
                                  nseeds: int) -> None:
    g, A = random_graph(seed, n, p)
    rng = np.random.default_rng(seed + 1)
    reset = np.zeros(n)
    reset[rng.choice(n, size=min(nseeds, n), replace=False)] = rng.uniform(0.1, 1.0,
                                                                         min(nseeds, n))
    ours = personalized_pagerank(A, reset, damping=damping, tol=1e-12, max_iter=1000)
    ref = nx.pagerank(g, alpha=damping, personalization={i: reset[i] for i in range(n)},
                      tol=1e-13, max_iter=10_000, weight="weight")
    np.testing.assert_allclose(ours, [ref[i] for i in range(n)], atol=1e-6)
    assert ours.sum() == pytest.approx(1.0)


def test_hand_computed_four_node_path() -> None:
    # path 0-1-2-3, unit weights (degrees 1, 2, 2, 1), reset on node 0, d = 0.5:
    # x0 = .5 + .5*(x1/2); x1 = .5*(x0 + x2/2); x2 = .5*(x1/2 + x3); x3 = .5*(x2/2)
    # => x2 = 2/7 x1, x1 = 7/13 x0, x0 = 26/45: x = [26, 14, 4, 1] / 45
    A = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]],
                               dtype=float))
    x = PPROperator(A).run(np.array([1.0, 0, 0, 0]), damping=0.5, tol=1e-14).scores
    expected = np.array([26, 14, 4, 1]) / 45
    assert x[0] == pytest.approx(0.5 + 0.5 * expected[1] / 2)
    np.testing.assert_allclose(x, expected, atol=1e-12)


def test_dangling_node_mass_returns_to_reset() -> None:
    # node 2 is isolated and in the reset: its mass jumps back to the reset vector
    A = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=float))
    g = nx.Graph()
    g.add_nodes_from(range(3))
    g.add_edge(0, 1, weight=1.0)
    reset = np.array([0.5, 0.0, 0.5])
    ours = personalized_pagerank(A, reset, damping=0.5, tol=1e-14)
    ref = nx.pagerank(g, alpha=0.5, personalization={0: 0.5, 1: 0.0, 2: 0.5}, tol=1e-14)
    np.testing.assert_allclose(ours, [ref[i] for i in range(3)], atol=1e-9)


def test_converges_in_few_iterations_and_float32_close() -> None:
    _, A = random_graph(3, 200, 0.04)
    reset = np.zeros(200)
    reset[[1, 7]] = 1
    r64 = PPROperator(A).run(reset, 0.5, tol=1e-7)
    r32 = PPROperator(A, dtype=np.float32).run(reset, 0.5, tol=1e-7)
    assert r64.converged and r64.iterations <= 30
    np.testing.assert_allclose(r32.scores, r64.scores, atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros(4), -np.ones(4), np.ones(3),
                                 np.array([np.nan, 1, 0, 0])])
def test_rejects_bad_reset(bad: np.ndarray) -> None:
    A = sp.csr_matrix(np.ones((4, 4)))
    with pytest.raises(InvalidInput):
        personalized_pagerank(A, bad)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 60), eps=st.sampled_from([1e-3, 1e-5]))
def test_push_error_is_bounded(seed: int, n: int, eps: float) -> None:
    _, A = random_graph(seed, n, 0.1)
    rng = np.random.default_rng(seed)
    seeds = {int(s): float(rng.uniform(0.1, 1)) for s in rng.choice(n, min(3, n), replace=False)}
    reset = np.zeros(n)
    for s, v in seeds.items():
        reset[s] = v
    exact = personalized_pagerank(A, reset, 0.5, tol=1e-14, max_iter=2000)
    lp = LocalPPR(A)
    p, res = lp.run(seeds, damping=0.5, eps=eps)
    err = np.abs(exact - p)
    # invariant: the L1 error is exactly the residual mass, and p under-estimates everywhere
    assert err.sum() == pytest.approx(res.sum(), abs=1e-9)
    assert (p <= exact + 1e-12).all()
    # termination: every residual is below eps * degree, so the error is at most eps * volume
    assert (res < eps * np.maximum(lp.deg, 1.0) + 1e-15).all()
    assert err.sum() <= eps * np.maximum(lp.deg, 1.0).sum() + 1e-12


def test_push_touches_only_the_neighbourhood() -> None:
    # two disconnected components: mass never leaves the seed's component
    A = sp.block_diag([sp.csr_matrix(np.ones((5, 5)) - np.eye(5))] * 2).tocsr()
    p, bound = local_ppr(A, {0: 1.0}, eps=1e-8)
    assert p[5:].sum() == 0
    assert p[:5].sum() == pytest.approx(1.0, abs=1e-6)
    assert bound < 1e-6
