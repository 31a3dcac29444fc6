"""memkit.embed.lazy: the name and dimension a model's files promise, without loading it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from memkit.embed import HashEmbedder
from memkit.embed.lazy import LazyEmbedder, _dimension, lazy_embedder


def _model_dir(tmp_path: Path, modules: list[tuple[str, str, dict[str, object]]]) -> Path:
    d = tmp_path / "my-model"
    d.mkdir()
    (d / "modules.json").write_text(json.dumps(
        [{"idx": i, "name": str(i), "path": p, "type": f"sentence_transformers.models.{t}"}
         for i, (t, p, _) in enumerate(modules)]))
    for _, p, conf in modules:
        if conf:
            (d / p).mkdir(exist_ok=True)
            (d / p / "config.json").write_text(json.dumps(conf))
    return d


def test_dimension_from_pooling_then_dense(tmp_path: Path) -> None:
    pooling = {"word_embedding_dimension": 768, "pooling_mode_mean_tokens": True,
               "pooling_mode_cls_token": False}
    d = _model_dir(tmp_path, [("Transformer", "", {}), ("Pooling", "1_Pooling", pooling),
                              ("Dense", "2_Dense", {"in_features": 768, "out_features": 256}),
                              ("Normalize", "3_Normalize", {})])
    assert _dimension(d) == 256
    emb = lazy_embedder(f"st:{d}")
    assert isinstance(emb, LazyEmbedder) and not emb.loaded
    assert (emb.name, emb.dim, emb.spec) == ("my-model@256", 256, f"st:{d}")


def test_unknown_modules_or_concatenated_pooling_are_not_guessed(tmp_path: Path) -> None:
    both = {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": True}
    d = _model_dir(tmp_path, [("Transformer", "", {}), ("Pooling", "1_Pooling", both)])
    assert _dimension(d) is None
    assert _dimension(tmp_path / "nothing-here") is None


def test_hash_specs_load_at_once() -> None:
    emb = lazy_embedder("hash:32")
    assert isinstance(emb, HashEmbedder) and emb.dim == 32


def test_lazy_loads_once_and_delegates() -> None:
    made = []

    def factory() -> HashEmbedder:
        made.append(1)
        return HashEmbedder(dim=16)

    emb = LazyEmbedder("hash:16", name="hash-16-tri", dim=16, factory=factory)
    assert emb.embed([]).shape == (0, 16) and made == []  # nothing to embed: no load
    assert emb.embed(["a", "b"]).shape == (2, 16) and emb.count_tokens("a b c") >= 3
    assert made == [1] and emb.loaded


@pytest.mark.realmodel
def test_lazy_minilm_promises_what_the_real_one_is(minilm) -> None:  # type: ignore[no-untyped-def]
    emb = lazy_embedder("minilm")
    assert isinstance(emb, LazyEmbedder)
    # the dense index compares these with what it stored: a mismatch would re-embed everything
    assert (emb.name, emb.dim, emb.spec) == (minilm.name, minilm.dim, minilm.spec)
    assert np.allclose(emb.embed(["Alice moved to Paris."]),
                       minilm.embed(["Alice moved to Paris."]), atol=1e-5)
