"""The graph as one scope sees it: a scoped read is a function of that scope's passages only.

A phrase is visible when an allowed passage mentions it; a relation edge weighs as many
allowed passages as support it; a synonymy edge joins two visible phrases; context edges
join allowed passages to their phrases. Nothing another scope wrote - its passages, its
phrases, its facts, how often it repeats a phrase - shapes the walk, the seed weights or the
normalisations, so a tenant's scores cannot reveal that another tenant stored something.

>>> import scipy.sparse as sp
>>> from memkit.backends.hipporag.graph import assemble
>>> g = assemble(np.array([1, 2]), np.array([10, 11]), np.zeros((0, 3)),
...              np.array([[10, 1], [11, 1], [11, 2]], float), np.zeros((0, 3)),
...              np.zeros((0, 3), np.int64), 0)
>>> view = scoped_view(g, np.array([True, False]))
>>> view.visible.tolist(), view.phrase_passages.tolist()
([True, False], [1, 0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from memkit.backends.hipporag.graph import GraphArrays


@dataclass
class ScopedView:
    adj: sp.csr_matrix
    phrase_passages: np.ndarray  # allowed passages mentioning each phrase
    visible: np.ndarray  # bool per phrase node


def scoped_view(g: GraphArrays, allowed_passages: np.ndarray) -> ScopedView:
    """The adjacency, phrase counts and visible phrases for passages ``allowed_passages``
    (a bool mask over ``g.passage_ids``)."""
    P, n = g.n_phrases, g.n_nodes
    allowed = np.asarray(allowed_passages, dtype=bool)
    block = g.adj[P:, :P].tocsr()  # passage -> phrase context edges
    block = sp.diags(allowed.astype(np.float64)) @ block
    block = (block > 0).astype(np.float64).tocsr()
    counts = np.asarray(block.sum(axis=0)).ravel().astype(np.int64)
    visible = counts > 0
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    ctx = block.tocoo()
    rows += [ctx.row + P, ctx.col]
    cols += [ctx.col, ctx.row + P]
    vals += [ctx.data, ctx.data]
    if g.support_indptr is not None and g.support_items is not None and len(g.fact_ids):
        fact_rows = np.repeat(np.arange(len(g.fact_ids)), np.diff(g.support_indptr))
        keep = np.isin(g.support_items, g.passage_ids[allowed])
        if keep.any():
            ends = g.fact_nodes[fact_rows[keep]]
            pairs, weight = np.unique(ends, axis=0, return_counts=True)
            rows += [pairs[:, 0], pairs[:, 1]]
            cols += [pairs[:, 1], pairs[:, 0]]
            vals += [weight.astype(np.float64)] * 2
    if g.syn_edges is not None and len(g.syn_edges):
        a = g.syn_edges[:, 0].astype(np.int64)
        b = g.syn_edges[:, 1].astype(np.int64)
        both = visible[a] & visible[b]
        rows += [a[both], b[both]]
        cols += [b[both], a[both]]
        vals += [g.syn_edges[both, 2]] * 2
    if g.link_edges is not None and len(g.link_edges):
        ok = np.concatenate([visible, allowed])  # phrase nodes visible, passage nodes allowed
        a = g.link_edges[:, 0].astype(np.int64)
        b = g.link_edges[:, 1].astype(np.int64)
        both = ok[a] & ok[b]
        rows += [a[both], b[both]]
        cols += [b[both], a[both]]
        vals += [g.link_edges[both, 2]] * 2
    adj = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(n, n))
    adj.sum_duplicates()
    adj.sort_indices()
    return ScopedView(adj, counts, visible)
