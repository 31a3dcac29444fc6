"""OpenVINO as the ONNX embedder's runtime: the same file, the same vectors, picked by itself
when installed (tiny model: fast; the packaged MiniLM under the realmodel marker)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from memkit.embed import load_embedder
from memkit.embed import onnx_embedder as onnx_embedder_module
from memkit.embed.onnx_embedder import OnnxEmbedder
from memkit.embed.openvino_runtime import OpenVinoSession, openvino_installed
from memkit.errors import ConfigError, MissingDependency
from tests.embed.conftest import needs_onnx

pytestmark = needs_onnx
needs_openvino = pytest.mark.skipif(not openvino_installed(),
                                    reason="the [openvino] extra is not installed")
TEXTS = ["alice lives in paris", "", "the cat sat on the mat", "bob, running north!",
         "dog " * 20, "a"]


@pytest.fixture
def auto_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("MEMKIT_ONNX_RUNTIME", raising=False)
    return monkeypatch


@needs_openvino
def test_float32_openvino_computes_what_onnxruntime_computes(tiny_model: Path,
                                                             tiny_cache: Path) -> None:
    ort_emb = OnnxEmbedder(tiny_model, cache_dir=tiny_cache, runtime="onnxruntime")
    ov = OpenVinoSession(ort_emb.model_path, threads=1, precision="f32")
    assert ov.precision == "f32"
    ids = np.array([[2, 5, 6, 7, 3, 0], [2, 8, 3, 0, 0, 0]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)}
    want = ort_emb.session.run(["sentence_embedding"], feeds)[0]
    (got,) = ov.run(["sentence_embedding"], feeds)
    assert got.shape == (2, ov.get_outputs()[0].shape[1]) == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


@needs_openvino
def test_openvino_embedder_gives_the_onnxruntime_vectors(tiny_model: Path,
                                                          tiny_cache: Path) -> None:
    ort_emb = OnnxEmbedder(tiny_model, cache_dir=tiny_cache, runtime="onnxruntime")
    ov_emb = OnnxEmbedder(tiny_model, cache_dir=tiny_cache, runtime="openvino",
                          batch_tokens=64, max_batch=3)
    assert ov_emb.runtime == "openvino" and ov_emb.model_path == ort_emb.model_path
    assert (ov_emb.name, ov_emb.spec, ov_emb.dim) == (ort_emb.name, ort_emb.spec, ort_emb.dim)
    got, want = ov_emb.embed(TEXTS), ort_emb.embed(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (got * want).sum(axis=1).min() > 0.999  # bfloat16 products where the CPU has them
    alone = np.vstack([ov_emb.embed([t]) for t in TEXTS])  # padding never leaks in
    assert (alone * got).sum(axis=1).min() > 0.9999
    assert load_embedder(f"openvino:{tiny_model}").name == ort_emb.name


@needs_openvino
def test_auto_runtime_picks_openvino_for_fp32_only(tiny_model: Path, tiny_cache: Path,
                                                    auto_env: pytest.MonkeyPatch) -> None:
    assert OnnxEmbedder(tiny_model, cache_dir=tiny_cache).runtime == "openvino"
    assert OnnxEmbedder(tiny_model, cache_dir=tiny_cache, variant="int8").runtime == \
        "onnxruntime"
    auto_env.setenv("MEMKIT_ONNX_RUNTIME", "onnxruntime")
    assert OnnxEmbedder(tiny_model, cache_dir=tiny_cache).runtime == "onnxruntime"
    auto_env.setenv("MEMKIT_ONNX_RUNTIME", "openvino")  # a preference: int8 stays on ORT
    assert OnnxEmbedder(tiny_model, cache_dir=tiny_cache, variant="int8").runtime == \
        "onnxruntime"
    assert OnnxEmbedder(tiny_model, cache_dir=tiny_cache,
                        runtime="onnxruntime").runtime == "onnxruntime"


def test_auto_runtime_without_openvino_is_onnxruntime(tiny_model: Path, tiny_cache: Path,
                                                      auto_env: pytest.MonkeyPatch) -> None:
    auto_env.setattr(onnx_embedder_module, "openvino_installed", lambda: False)
    assert OnnxEmbedder(tiny_model, cache_dir=tiny_cache).runtime == "onnxruntime"


def test_bad_runtime_choices_are_named(tiny_model: Path, tiny_cache: Path,
                                       auto_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="runtime must be one of"):
        OnnxEmbedder(tiny_model, cache_dir=tiny_cache, runtime="tensorrt")
    with pytest.raises(ConfigError, match="int8 file runs on onnxruntime only"):
        OnnxEmbedder(tiny_model, cache_dir=tiny_cache, variant="int8", runtime="openvino")
    auto_env.setenv("MEMKIT_ONNX_RUNTIME", "cuda")
    with pytest.raises(ConfigError, match="MEMKIT_ONNX_RUNTIME must be one of"):
        OnnxEmbedder(tiny_model, cache_dir=tiny_cache)
    with pytest.raises(ConfigError, match="precision must be one of"):
        OpenVinoSession(tiny_model / "model.onnx", threads=1, precision="fp8")


def test_missing_openvino_names_the_extra(tiny_model: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert not openvino_installed()
    with pytest.raises(MissingDependency, match=r"\[openvino\]"):  # a file no session has run
        OnnxEmbedder(tiny_model, cache_dir=tmp_path, runtime="openvino")


@pytest.mark.realmodel
@needs_openvino
def test_packaged_minilm_on_openvino_matches_torch() -> None:
    from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

    rivers = ["Avon", "Thames", "Severn", "Wye"] * 8
    towns = ["Bath", "Oxford", "Gloucester", "Hay"] * 8
    texts = [f"Passage {i}: the river {w} flows north past the old mill near {c}."
             for i, (w, c) in enumerate(zip(rivers, towns, strict=True))]
    want = SentenceTransformerEmbedder().embed(texts)
    got = load_embedder("openvino").embed(texts)
    assert (got * want).sum(axis=1).min() > 0.999


@needs_openvino
def test_compiled_model_is_cached_for_later_processes(tiny_model: Path, tiny_cache: Path,
                                                       tmp_path: Path) -> None:
    path = OnnxEmbedder(tiny_model, cache_dir=tiny_cache, runtime="onnxruntime").model_path
    ids = np.array([[2, 5, 6, 3]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    first = OpenVinoSession(path, threads=1, cache_dir=tmp_path / "ov")
    assert any((tmp_path / "ov").iterdir())  # the compiled blob was written
    again = OpenVinoSession(path, threads=1, cache_dir=tmp_path / "ov")  # loaded from it
    np.testing.assert_array_equal(again.run(None, feeds)[0], first.run(None, feeds)[0])
    for blob in (tmp_path / "ov").iterdir():  # a damaged cache: compiled again, same result
        blob.write_bytes(b"not a blob")
    damaged = OpenVinoSession(path, threads=1, cache_dir=tmp_path / "ov")
    np.testing.assert_array_equal(damaged.run(None, feeds)[0], first.run(None, feeds)[0])
