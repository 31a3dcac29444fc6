"""The graph as arrays: node maps, a symmetric CSR adjacency, per-phrase passage counts.

Nodes ``0..P-1`` are phrases (``phrase_ids`` sorted), ``P..P+N-1`` passages (``passage_ids``
sorted). Edge weights: relation edges subject↔object = number of (fact, passage) supports
(the predicates stay on the fact rows), context edges passage↔phrase = 1, synonymy edges =
cosine similarity. Built from the ``hipporag_*`` tables in one pass (vectorised), saved as
``graph.npz`` (CSR arrays + generation) with a temporary name and an atomic rename, and
loaded back only if its generation matches the tables'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from memkit._files import private_tmp, replace_from
from memkit.backends.hipporag.store import GraphStore
from memkit.errors import StoreCorrupt


@dataclass
class GraphArrays:
    phrase_ids: np.ndarray
    passage_ids: np.ndarray
    adj: sp.csr_matrix
    phrase_passages: np.ndarray  # per phrase node: how many passages mention it
    fact_ids: np.ndarray  # sorted fact ids
    fact_nodes: np.ndarray  # (F, 2) subject and object phrase nodes of each fact
    generation: int
    # which passages support each fact (CSR over fact rows): scope filtering of seed facts
    support_indptr: np.ndarray | None = None
    support_items: np.ndarray | None = None
    # synonymy edges in node space (a, b, sim): kept apart so a scoped read can drop them
    syn_edges: np.ndarray | None = None
    # read-time link edges (phrase-phrase aliases, passage-passage titles and sessions) in
    # node space (a, b, weight), kept apart like synonymy so a scoped view can filter them
    link_edges: np.ndarray | None = None
    # read-time date nodes (the last phrase nodes, memkit.backends.hipporag.linked): the
    # DateSpan of each, in node order
    date_nodes: tuple[Any, ...] | None = None

    @property
    def n_phrases(self) -> int:
        return len(self.phrase_ids)

    @property
    def n_nodes(self) -> int:
        return len(self.phrase_ids) + len(self.passage_ids)

    def phrase_nodes(self, ids: np.ndarray) -> np.ndarray:
        """Node index of each phrase id (ids must exist)."""
        return np.searchsorted(self.phrase_ids, np.asarray(ids, dtype=np.int64))

    def passage_nodes(self, ids: np.ndarray) -> np.ndarray:
        return self.n_phrases + np.searchsorted(self.passage_ids, np.asarray(ids, np.int64))

    def passage_phrases(self, item_id: int) -> np.ndarray:
        """Phrase nodes a passage mentions (its context edges)."""
        node = int(self.passage_nodes(np.array([item_id]))[0])
        row = self.adj.indices[self.adj.indptr[node]:self.adj.indptr[node + 1]]
        return row[row < self.n_phrases]

    def facts_visible(self, fact_ids: np.ndarray, allowed_mask_fn: object) -> np.ndarray:
        """Boolean per fact id: is it supported by at least one passage the caller may see?
        ``allowed_mask_fn(item_ids) -> bool array`` (e.g. ``AllowedIds.mask``)."""
        fact_ids = np.asarray(fact_ids, dtype=np.int64)
        if self.support_indptr is None or self.support_items is None or len(fact_ids) == 0:
            return np.zeros(len(fact_ids), dtype=bool)
        rows = np.searchsorted(self.fact_ids, fact_ids)
        rows = np.clip(rows, 0, max(len(self.fact_ids) - 1, 0))
        out = np.zeros(len(fact_ids), dtype=bool)
        for j, r in enumerate(rows.tolist()):
            if len(self.fact_ids) == 0 or self.fact_ids[r] != fact_ids[j]:
                continue
            items = self.support_items[self.support_indptr[r]:self.support_indptr[r + 1]]
            out[j] = bool(allowed_mask_fn(items).any())  # type: ignore[operator]
        return out

    def stats(self) -> dict[str, int]:
        return {"phrases": self.n_phrases, "passages": len(self.passage_ids),
                "facts": len(self.fact_ids), "edges": int(self.adj.nnz // 2)}

    # ---- persistence ----------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = private_tmp(path, ".npz")
        np.savez(tmp, phrase_ids=self.phrase_ids, passage_ids=self.passage_ids,
                 indptr=self.adj.indptr, indices=self.adj.indices, data=self.adj.data,
                 phrase_passages=self.phrase_passages, fact_ids=self.fact_ids,
                 fact_nodes=self.fact_nodes, generation=np.int64(self.generation),
                 support_indptr=_or_empty(self.support_indptr),
                 support_items=_or_empty(self.support_items),
                 syn_edges=self.syn_edges if self.syn_edges is not None
                 else np.zeros((0, 3)))
        replace_from(tmp, path)

    @classmethod
    def load(cls, path: Path) -> GraphArrays:
        try:
            with np.load(path, allow_pickle=False) as z:
                n = len(z["phrase_ids"]) + len(z["passage_ids"])
                adj = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=(n, n))
                return cls(z["phrase_ids"], z["passage_ids"], adj, z["phrase_passages"],
                           z["fact_ids"], z["fact_nodes"], int(z["generation"]),
                           z["support_indptr"], z["support_items"], z["syn_edges"])
        except Exception as exc:  # zip, key or shape errors: the file is not usable
            raise StoreCorrupt(f"graph file {path} is unreadable: {exc}") from exc


def _or_empty(a: np.ndarray | None) -> np.ndarray:
    return np.zeros(0, dtype=np.int64) if a is None else a


def build_arrays(gs: GraphStore) -> GraphArrays:
    """Assemble the graph from the tables (one scan of each, in one snapshot: another
    process writing meanwhile never yields arrays that disagree with each other)."""
    with gs.store.snapshot():
        return _build_arrays(gs)


def _build_arrays(gs: GraphStore) -> GraphArrays:
    conn = gs.conn
    generation = gs.generation()
    phrase_ids = np.array([r[0] for r in conn.execute(
        "SELECT id FROM hipporag_phrases ORDER BY id")], dtype=np.int64)
    passage_ids = np.array([r[0] for r in conn.execute(
        "SELECT item_id FROM hipporag_passages ORDER BY item_id")], dtype=np.int64)

    def arr(sql: str, cols: int) -> np.ndarray:
        rows = conn.execute(sql).fetchall()
        return np.array(rows, dtype=np.float64).reshape(-1, cols)

    rel = arr("SELECT f.subj, f.obj, COUNT(*) FROM hipporag_facts f JOIN hipporag_support s "
              "ON s.fact_id = f.id GROUP BY f.subj, f.obj", 3)
    ctx = arr("SELECT item_id, phrase_id FROM hipporag_mentions", 2)
    syn = arr("SELECT a, b, sim FROM hipporag_synonyms", 3)
    facts = arr("SELECT id, subj, obj FROM hipporag_facts ORDER BY id", 3).astype(np.int64)
    support = arr("SELECT fact_id, item_id FROM hipporag_support ORDER BY fact_id, item_id",
                  2).astype(np.int64)
    g = assemble(phrase_ids, passage_ids, rel, ctx, syn, facts, generation)
    rows = np.searchsorted(g.fact_ids, support[:, 0])
    g.support_indptr = np.concatenate([[0], np.cumsum(np.bincount(
        rows, minlength=len(g.fact_ids))).astype(np.int64)])
    g.support_items = support[:, 1].copy()
    return g


def assemble(phrase_ids: np.ndarray, passage_ids: np.ndarray, rel: np.ndarray, ctx: np.ndarray,
             syn: np.ndarray, facts: np.ndarray, generation: int) -> GraphArrays:
    """The arrays from edge lists in id space: ``rel`` (subject, object, count), ``ctx``
    (item id, phrase id), ``syn`` (a, b, sim), ``facts`` (fact id, subject, object)."""
    P = len(phrase_ids)
    n = P + len(passage_ids)
    rows, cols, vals = [], [], []
    if len(rel):
        s = np.searchsorted(phrase_ids, rel[:, 0].astype(np.int64))
        o = np.searchsorted(phrase_ids, rel[:, 1].astype(np.int64))
        rows += [s, o]
        cols += [o, s]
        vals += [rel[:, 2], rel[:, 2]]
    if len(ctx):
        pn = P + np.searchsorted(passage_ids, ctx[:, 0].astype(np.int64))
        ph = np.searchsorted(phrase_ids, ctx[:, 1].astype(np.int64))
        ones = np.ones(len(ctx))
        rows += [pn, ph]
        cols += [ph, pn]
        vals += [ones, ones]
        counts = np.bincount(ph, minlength=P).astype(np.int64)
    else:
        counts = np.zeros(P, dtype=np.int64)
    syn_edges = np.zeros((0, 3))
    if len(syn):
        a = np.searchsorted(phrase_ids, syn[:, 0].astype(np.int64))
        b = np.searchsorted(phrase_ids, syn[:, 1].astype(np.int64))
        rows += [a, b]
        cols += [b, a]
        vals += [syn[:, 2], syn[:, 2]]
        syn_edges = np.stack([a, b, syn[:, 2]], axis=1).astype(np.float64)
    if rows:
        adj = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                    np.concatenate(cols))), shape=(n, n))
    else:
        adj = sp.csr_matrix((n, n))
    adj.sum_duplicates()
    adj.sort_indices()
    fact_nodes = np.stack([np.searchsorted(phrase_ids, facts[:, 1]),
                           np.searchsorted(phrase_ids, facts[:, 2])], axis=1) \
        if len(facts) else np.zeros((0, 2), dtype=np.int64)
    return GraphArrays(phrase_ids, passage_ids, adj, counts,
                       facts[:, 0].copy() if len(facts) else np.zeros(0, np.int64),
                       fact_nodes.astype(np.int64), generation, syn_edges=syn_edges)
