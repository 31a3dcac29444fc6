"""Scopes are a security boundary: no read ever returns an item outside its scope."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memkit import Memory, Scope
from memkit.embed import HashEmbedder

NAMES = st.sampled_from(["a", "b", "c"])
OPT = st.one_of(st.none(), NAMES)
SCOPES = st.builds(Scope, namespace=st.sampled_from(["n1", "n2"]), user=OPT, agent=OPT,
                   session=OPT)
WORDS = st.lists(st.sampled_from(["red", "green", "blue", "cat", "dog", "sun", "moon"]),
                 min_size=1, max_size=5).map(" ".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(writes=st.lists(st.tuples(WORDS, SCOPES), min_size=1, max_size=40),
       reads=st.lists(st.tuples(WORDS, SCOPES, st.integers(1, 8)), min_size=1, max_size=8),
       hnsw=st.booleans())
def test_reads_never_cross_scope(writes: list, reads: list, hnsw: bool) -> None:
    options = {"dense": {"hnsw_threshold": 5}} if hnsw else {}
    with tempfile.TemporaryDirectory() as d, \
            Memory.open(Path(d) / "m", embedder=HashEmbedder(32),
                        backend_options=options) as mem:
        written = mem.write_many([{"text": f"{t} #{n}", "scope": s}
                                  for n, (t, s) in enumerate(writes)])
        items = [mem.get(i) for i in written.added]
        for query, scope, k in reads:
            visible = [it.id for it in items if scope.contains(it.scope)]
            hits = mem.read(query, k=k, scope=scope).hits
            assert all(scope.contains(h.item.scope) for h in hits)
            # and the filter does not starve the read: it returns min(k, visible) items
            assert len(hits) == min(k, len(visible))
