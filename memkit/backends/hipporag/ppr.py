"""Personalized PageRank by power iteration on scipy sparse matrices.

For an undirected weighted graph with adjacency ``A`` (symmetric CSR), degree vector
``deg = A·1`` and a reset (personalisation) distribution ``r``, the PPR vector solves

    x = (1 - d)·r + d·(Pᵀx + (Σ_{dangling} x)·r),   P = D⁻¹A,

i.e. a walker follows an edge with probability ``d`` (the damping) and jumps back to ``r``
otherwise; mass on nodes without edges jumps back to ``r`` too. This is exactly what
``networkx.pagerank(G, alpha=d, personalization=r)`` computes, which the tests check.

The operator ``Aᵀ·D⁻¹`` is built once per graph (:class:`PPROperator`) and each iteration is
one sparse mat-vec plus two vector updates; iteration stops when the L1 change falls below
``tol`` (HippoRAG 2: damping 0.5 converges in 15-25 iterations to 1e-7).

>>> import scipy.sparse as sp
>>> A = sp.csr_matrix(np.array([[0, 1.0], [1.0, 0]]))
>>> x = personalized_pagerank(A, np.array([1.0, 0.0]), damping=0.5)
>>> [round(float(v), 6) for v in x]   # x0 = 0.5 + 0.5*x1, x1 = 0.5*x0
[0.666667, 0.333333]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from memkit.errors import InvalidInput


@dataclass
class PPRResult:
    scores: np.ndarray
    iterations: int
    converged: bool
    delta: float


class PPROperator:
    """The PPR iteration for one graph, with its transition operator precomputed.

    ``adjacency`` is a square sparse matrix of non-negative weights; for an undirected graph
    pass it symmetric. ``dtype`` float64 (default, exact) or float32 (about 1.5x faster on
    large graphs, error ~1e-7 relative)."""

    def __init__(self, adjacency: sp.spmatrix | sp.sparray, dtype: type = np.float64) -> None:
        A = sp.csr_matrix(adjacency, dtype=dtype)
        if A.shape[0] != A.shape[1]:
            raise InvalidInput(f"adjacency must be square, got {A.shape}")
        if A.nnz and float(A.data.min()) < 0:
            raise InvalidInput("PPR needs non-negative edge weights")
        self.n = A.shape[0]
        self.dtype = dtype
        deg = np.asarray(A.sum(axis=1)).ravel()
        self.dangling = deg <= 0
        inv = np.zeros_like(deg)
        inv[~self.dangling] = 1.0 / deg[~self.dangling]
        # M = Aᵀ·D⁻¹, so that (Pᵀx) = M x; built as CSR for a fast mat-vec
        self.M = sp.csr_matrix(A.T.tocsr() @ sp.diags(inv.astype(dtype)), dtype=dtype)
        self.M.sort_indices()
        self.any_dangling = bool(self.dangling.any())

    def run(self, reset: np.ndarray, damping: float = 0.5, tol: float = 1e-7,
            max_iter: int = 200, x0: np.ndarray | None = None) -> PPRResult:
        """PPR for one reset vector (any non-negative weights; normalised here)."""
        if not 0.0 <= damping < 1.0:
            raise InvalidInput(f"damping must be in [0, 1), got {damping}")
        r = np.asarray(reset, dtype=np.float64).ravel()
        if r.shape[0] != self.n:
            raise InvalidInput(f"reset vector has {r.shape[0]} entries for {self.n} nodes")
        if (r < 0).any() or not np.isfinite(r).all():
            raise InvalidInput("reset vector must be finite and non-negative")
        total = float(r.sum())
        if total <= 0:
            raise InvalidInput("reset vector is all zeros")
        r = (r / total).astype(self.dtype)
        x = r.copy() if x0 is None else np.asarray(x0, dtype=self.dtype) / float(np.sum(x0))
        teleport = (1.0 - damping) * r
        delta = float("inf")
        for it in range(1, max_iter + 1):
            new = self.M @ x
            new *= damping
            if self.any_dangling:
                new += (damping * float(x[self.dangling].sum())) * r
            new += teleport
            delta = float(np.abs(new - x).sum())
            x = new
            if delta < tol:
                return PPRResult(x.astype(np.float64), it, True, delta)
        return PPRResult(x.astype(np.float64), max_iter, False, delta)


def personalized_pagerank(adjacency: sp.spmatrix | sp.sparray, reset: np.ndarray,
                          damping: float = 0.5, tol: float = 1e-7,
                          max_iter: int = 200) -> np.ndarray:
    """One-shot PPR scores (sum 1). Build a :class:`PPROperator` to run many queries."""
    return PPROperator(adjacency).run(reset, damping, tol, max_iter).scores
