from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memkit import ConfigError, Memory
from memkit.embed import HashEmbedder, load_embedder


def test_hash_embedder_is_deterministic_and_normalised() -> None:
    a = HashEmbedder(64).embed(["the cat sat", "dogs bark loudly", ""])
    b = HashEmbedder(64).embed(["the cat sat", "dogs bark loudly", ""])
    assert np.array_equal(a, b) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a[:2], axis=1), 1.0) and not a[2].any()
    assert a[0] @ HashEmbedder(64).embed(["The CAT sat!"])[0] == pytest.approx(1.0, abs=1e-6)


def test_load_embedder_specs() -> None:
    assert load_embedder("hash:32").dim == 32
    with pytest.raises(ConfigError, match="unknown embedder"):
        load_embedder("definitely-not-a-model")


def test_sentence_transformer_refuses_missing_local_path(tmp_path: Path) -> None:
    from memkit.embed import SentenceTransformerEmbedder

    with pytest.raises(ConfigError, match="never downloads"):
        SentenceTransformerEmbedder(tmp_path / "nope")


@pytest.mark.realmodel
def test_packaged_minilm_retrieves_a_paraphrase(tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    assert minilm.dim == 384 and minilm.name.startswith("all-MiniLM-L6-v2")
    with Memory.open(tmp_path / "m", embedder=minilm) as mem:
        target = mem.write("The physician prescribed antibiotics for the chest infection.")
        mem.write_many([
            "The stock market closed higher on Friday.",
            "Our team won the football match in extra time.",
            "Bake the bread at 220 degrees for thirty minutes.",
            "The new phone has a larger battery and a brighter screen.",
        ])
        res = mem.read("What medicine did the doctor give for the lung illness?", k=5)
        assert res.hits[0].item.id == target
        assert res.hits[0].score > res.hits[1].score + 0.15


@pytest.mark.realmodel
def test_packaged_minilm_unpacks_once(tmp_path: Path) -> None:
    from memkit.embed.sentence_transformers import packaged_minilm_path

    first = packaged_minilm_path(tmp_path)
    mtime = (first / "config.json").stat().st_mtime
    assert packaged_minilm_path(tmp_path) == first
    assert (first / "config.json").stat().st_mtime == mtime
    assert (first / "model.safetensors").exists()
