"""The ensemble embedder: its inner product is the spread-weighted mean of the parts' cosines
(by hand), specs, errors, the eval cache part by part, and a memory built and reopened."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.embed import HashEmbedder, load_embedder
from memkit.embed.base import (
    REFERENCE_QUANTILES,
    SIMILARITY_QUANTILES,
    scale_threshold,
    similarity_quantiles,
    similarity_spread,
)
from memkit.embed.ensemble import EnsembleEmbedder
from memkit.errors import ConfigError
from memkit.eval.embcache import CachingEmbedder

TEXTS = ["Alice lives in Paris", "Bob keeps a parrot", "the parrot is green", "Paris in spring"]


def test_inner_product_is_the_weighted_mean_of_cosines() -> None:
    a, b = HashEmbedder(dim=16), HashEmbedder(dim=8)
    ens = EnsembleEmbedder([a, b], weights=[3.0, 1.0])
    va, vb, ve = a.embed(TEXTS), b.embed(TEXTS), ens.embed(TEXTS)
    assert ve.shape == (4, 24) and ens.dim == 24
    np.testing.assert_allclose(np.linalg.norm(ve, axis=1), 1.0, atol=1e-6)
    want = (3.0 * (va @ va.T) + 1.0 * (vb @ vb.T)) / 4.0
    np.testing.assert_allclose(ve @ ve.T, want, atol=1e-6)
    np.testing.assert_allclose(ens.embed_batch(TEXTS), ve, atol=1e-6)  # one path or the other
    q = ens.embed_queries(["Where does Alice live?"])
    want_q = (3.0 * (va @ a.embed_queries(["Where does Alice live?"])[0])
              + vb @ b.embed_queries(["Where does Alice live?"])[0]) / 4.0
    np.testing.assert_allclose(ve @ q[0], want_q, atol=1e-6)
    assert ens.spec is None  # explicit weights: not rebuildable from a spec string


def test_default_weights_are_inverse_spreads() -> None:
    e5 = "multilingual-e5-small-q4"
    assert similarity_spread("all-MiniLM-L6-v2-onnx@256") == pytest.approx(0.436 - 0.158)
    assert similarity_spread(e5) == pytest.approx(0.886 - 0.827)
    # an unmeasured ensemble's quantiles: the parts' spread-weighted mean, level by level
    name = "ensemble(some-reference-model,multilingual-e5-small-q4)"
    w = [1 / (0.436 - 0.158), 1 / (0.886 - 0.827)]
    want = [(w[0] * r + w[1] * o) / sum(w)
            for r, o in zip(REFERENCE_QUANTILES, SIMILARITY_QUANTILES[e5], strict=True)]
    np.testing.assert_allclose(similarity_quantiles(name), want)
    # measured MiniLM+e5: the approximation is within 0.02 of it at every level
    measured = similarity_quantiles("ensemble(all-MiniLM-L6-v2-onnx@256,multilingual-e5-small-q4)")
    np.testing.assert_allclose(measured, want, atol=0.02)
    assert 0.90 < scale_threshold(
        "ensemble(all-MiniLM-L6-v2-onnx@256,multilingual-e5-small-q4)", 0.8) < 0.91


def test_specs_and_errors() -> None:
    ens = load_embedder("hash:16+hash:8")
    assert isinstance(ens, EnsembleEmbedder) and ens.dim == 24
    assert ens.name == "ensemble(hash-16-tri,hash-8-tri)" and ens.spec == "hash:16+hash:8"
    assert load_embedder(ens.spec).name == ens.name  # the spec rebuilds it
    with pytest.raises(ConfigError, match="empty part"):
        load_embedder("hash:16+")
    with pytest.raises(ConfigError, match="at least two"):
        EnsembleEmbedder([HashEmbedder(dim=4)])
    with pytest.raises(ConfigError, match="positive"):
        EnsembleEmbedder([HashEmbedder(dim=4), HashEmbedder(dim=8)], weights=[1.0, 0.0])


def test_eval_cache_stores_each_part_under_its_own_model(tmp_path: Path) -> None:
    single = CachingEmbedder(HashEmbedder(dim=16), tmp_path / "emb.sqlite")
    single.embed(TEXTS)  # a run with the first model alone
    single.close()
    cached = CachingEmbedder(load_embedder("hash:16+hash:8"), tmp_path / "emb.sqlite")
    got = cached.embed(TEXTS)
    assert cached.hits == 4 and cached.misses == 4  # part a from the cache, part b new
    np.testing.assert_allclose(got, load_embedder("hash:16+hash:8").embed(TEXTS), atol=1e-6)
    again = cached.embed(TEXTS)
    assert cached.hits == 12 and cached.misses == 4
    np.testing.assert_array_equal(again, got)
    cached.close()


def test_memory_with_an_ensemble_reopens_with_it(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "m", embedder="hash:16+hash:8",
                     backends=["dense", "hipporag"],
                     backend_options={"hipporag": {"extractor": "rules"}}) as mem:
        mem.write_many(["Alice lives in Paris.", "Bob keeps a parrot in Lyon."])
        assert mem.read("Alice Paris", k=1).hits[0].item.text == "Alice lives in Paris."
    with Memory.open(tmp_path / "m") as mem:
        assert mem.embedder.name == "ensemble(hash-16-tri,hash-8-tri)" and mem.embedder.dim == 24
        assert mem.read("parrot Lyon", k=1).hits[0].item.text == "Bob keeps a parrot in Lyon."
