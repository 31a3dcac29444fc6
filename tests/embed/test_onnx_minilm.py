"""The packaged all-MiniLM-L6-v2 on onnxruntime against the torch sentence-transformers model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memkit.embed import load_embedder
from memkit.embed.onnx_embedder import OnnxEmbedder
from tests.embed.conftest import needs_onnx

pytestmark = [pytest.mark.realmodel, needs_onnx]

TEXTS = ["Alice moved to Paris in 2019.", "", "What is the capital of France?",
         "The Eiffel Tower was completed in 1889 for the World's Fair. " * 30,
         "naïve café 東京 résumé", "a"]


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder().embed(TEXTS)


# int8 (7-bit weights) loses most on the emptiest text (measured: "" 0.985, "a" 0.994,
# sentences >= 0.997)
@pytest.mark.parametrize("variant,floor", [("fp32", 0.9999), ("int8", 0.98)])
def test_matches_the_torch_model(torch_vectors: np.ndarray, variant: str, floor: float,
                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e = OnnxEmbedder(variant=variant, cache_dir=tmp_path)
    assert e.exported and e.dim == 384 and e.max_seq_length == 256
    cos = (e.embed(TEXTS) * torch_vectors).sum(axis=1)
    assert cos.min() >= floor, cos
    again = OnnxEmbedder(variant=variant, cache_dir=tmp_path)
    assert not again.exported and again.model_path == e.model_path


def test_specs_load_the_packaged_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e = load_embedder("onnx:all-MiniLM-L6-v2")
    assert isinstance(e, OnnxEmbedder)
    assert e.name == "all-MiniLM-L6-v2-onnx@256" and e.spec == "onnx:all-MiniLM-L6-v2"
    assert load_embedder("onnx").name == e.name
    assert load_embedder("onnx-int8").name == "all-MiniLM-L6-v2-onnx-int8t7@256"
    assert e.count_tokens("Alice moved to Paris") == 4
