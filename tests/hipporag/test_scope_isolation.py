"""A scoped HippoRAG read is a function of the reader's scope only: another tenant's phrases,
facts and passages change neither its ranking nor its scores (no side channel)."""

from __future__ import annotations

import numpy as np
import pytest

from memkit import Memory
from memkit.backends.hipporag.graph import build_arrays
from memkit.backends.hipporag.scoped import scoped_view
from memkit.embed import HashEmbedder

TENANT_A = [
    "Bergen Harbour\nBergen Harbour is run by Fjord Logistics. It opened in 1902.",
    "Fjord Logistics\nFjord Logistics is owned by Nordic Shipping Group.",
    "Nordic Shipping Group\nNordic Shipping Group is based in Oslo.",
    "Oslo\nOslo is the capital of Norway.",
]
TENANT_B = [
    "Fjord Logistics\nFjord Logistics was sold to Atlantic Freight in 2020.",
    "Atlantic Freight\nAtlantic Freight runs Bergen Harbour and the Oslo terminal.",
]
QUERIES = ["Who owns the company that runs Bergen Harbour?", "Where is Fjord Logistics based?"]


def scores(mem: Memory, query: str, **read: object) -> list[tuple[int, float]]:
    res = mem.read(query, k=4, scope="acme", backend="hipporag", **read)
    return [(h.id, h.score) for h in res.hits]


@pytest.mark.parametrize("extra", [{}, {"ppr_method": "push"}])
def test_other_tenants_writes_do_not_change_a_tenants_scores(extra: dict) -> None:
    opts = {"extractor": "rules", **extra}
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": opts}) as mem:
        mem.write_many(TENANT_A, scope="acme")
        mem.write("A passage in a third scope keeps acme's read scoped.", scope="initech")
        before = {q: scores(mem, q) for q in QUERIES}
        assert all(before.values())
        mem.write_many(TENANT_B, scope="globex")  # the same phrases, other facts
        after = {q: scores(mem, q) for q in QUERIES}
    for q in QUERIES:
        assert [i for i, _ in after[q]] == [i for i, _ in before[q]], q
        np.testing.assert_allclose([s for _, s in after[q]], [s for _, s in before[q]],
                                   rtol=1e-6, atol=1e-9)


def test_a_view_with_everything_allowed_is_the_whole_graph() -> None:
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": {"extractor": "rules"}}) as mem:
        mem.write_many(TENANT_A + TENANT_B)
        g = build_arrays(mem.backends["hipporag"].gs)  # type: ignore[attr-defined]
    view = scoped_view(g, np.ones(len(g.passage_ids), dtype=bool))
    assert abs(view.adj - g.adj).max() < 1e-12
    assert view.phrase_passages.tolist() == g.phrase_passages.tolist()
    # with no passage allowed nothing is visible and no edge is left
    empty = scoped_view(g, np.zeros(len(g.passage_ids), dtype=bool))
    assert empty.adj.nnz == 0 and not empty.visible.any()
