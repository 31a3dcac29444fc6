"""The ONNX builder: its graphs compute what the sentence-transformers model computes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from memkit.embed.onnx_build import ensure_onnx_model, read_safetensors
from memkit.embed.onnx_embedder import OnnxEmbedder
from memkit.errors import ConfigError
from tests.embed.conftest import needs_onnx, write_safetensors

pytestmark = needs_onnx

TEXTS = ["Alice lives in Paris.", "", "the cat sat on the mat", "Bob, running north!",
         "dogs " * 20, "zebra unknown words", "a"]


def reference_vectors(model_dir: Path, texts: list[str], max_seq_length: int) -> np.ndarray:
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers absent")
    model = st.SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    model.max_seq_length = max_seq_length
    return np.asarray(model.encode(texts, normalize_embeddings=True, convert_to_numpy=True))


def test_read_safetensors_round_trips(tmp_path: Path) -> None:
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3),
               "b.c": np.array([1.5, -2.0], dtype=np.float32)}
    write_safetensors(tmp_path / "m.safetensors", tensors)
    back = read_safetensors(tmp_path / "m.safetensors")
    assert sorted(back) == ["a", "b.c"]
    np.testing.assert_array_equal(back["a"], tensors["a"])
    np.testing.assert_array_equal(back["b.c"], tensors["b.c"])


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "plain"])
def test_fp32_graph_matches_sentence_transformers(tiny_model: Path, tiny_cache: Path,
                                                  fused: bool) -> None:
    ref = reference_vectors(tiny_model, TEXTS, max_seq_length=16)
    e = OnnxEmbedder(tiny_model, max_seq_length=16, fused=fused, cache_dir=tiny_cache)
    got = e.embed(TEXTS)
    assert got.shape == (len(TEXTS), 32)
    np.testing.assert_allclose((got * ref).sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_int8_graph_is_close_to_fp32(tiny_model: Path, tiny_cache: Path) -> None:
    fp32 = OnnxEmbedder(tiny_model, cache_dir=tiny_cache).embed(TEXTS)
    e = OnnxEmbedder(tiny_model, variant="int8", cache_dir=tiny_cache)
    got = e.embed(TEXTS)
    assert e.name.endswith("-onnx-int8t7@32")
    assert e.model_path.name == "model-int8t7.onnx"
    cos = (got * fp32).sum(axis=1)
    assert cos.min() > 0.95, cos
    assert not np.allclose(got, fp32, atol=1e-6)  # it is quantised, not the fp32 file again


def test_cache_is_reused_not_rebuilt(tiny_model: Path, tmp_path: Path) -> None:
    first = OnnxEmbedder(tiny_model, cache_dir=tmp_path)
    assert first.exported
    stamp = first.model_path.stat().st_mtime_ns
    second = OnnxEmbedder(tiny_model, cache_dir=tmp_path)
    assert not second.exported
    assert second.model_path == first.model_path
    assert second.model_path.stat().st_mtime_ns == stamp
    assert [p.name for p in first.model_path.parent.iterdir()] == ["model-fp32.onnx"]
    path, built = ensure_onnx_model(tiny_model, "fp32", tmp_path)
    assert (path, built) == (first.model_path, False)


def test_changed_weights_get_a_new_cache_entry(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    a, _ = ensure_onnx_model(copy, "fp32", tmp_path / "cache")
    weights = read_safetensors(copy / "model.safetensors")
    weights["embeddings.LayerNorm.bias"] = weights["embeddings.LayerNorm.bias"] + 1
    write_safetensors(copy / "model.safetensors", weights)
    b, built = ensure_onnx_model(copy, "fp32", tmp_path / "cache")
    assert built and a != b


def test_unsupported_models_are_refused_by_name(tiny_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cls"
    shutil.copytree(tiny_model, bad)
    pooling = bad / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({"pooling_mode_cls_token": True,
                                   "pooling_mode_mean_tokens": False}))
    with pytest.raises(ConfigError, match="pooling_mode_cls_token"):
        OnnxEmbedder(bad, cache_dir=tmp_path)
    roberta = tmp_path / "roberta"
    shutil.copytree(tiny_model, roberta)
    config = json.loads((roberta / "config.json").read_text())
    (roberta / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(ConfigError, match="model_type 'roberta'"):
        OnnxEmbedder(roberta, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="variant"):
        OnnxEmbedder(tiny_model, variant="int4", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="does not exist|not a directory"):
        OnnxEmbedder(tmp_path / "nowhere", cache_dir=tmp_path)
