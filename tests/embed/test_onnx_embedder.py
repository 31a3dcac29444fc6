"""The ONNX embedder's batching, threading, bad input and wiring (tiny model: fast)."""

from __future__ import annotations

import random
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.embed import load_embedder
from memkit.embed.onnx_embedder import OnnxEmbedder
from memkit.errors import InvalidInput, MissingDependency
from tests.embed.conftest import WORDS, needs_onnx

pytestmark = needs_onnx


@pytest.fixture(scope="module")
def emb(tiny_model: Path, tiny_cache: Path) -> OnnxEmbedder:
    return OnnxEmbedder(tiny_model, cache_dir=tiny_cache, batch_tokens=64, max_batch=4,
                        runtime="onnxruntime")


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def test_length_sorted_batches_return_rows_in_input_order(emb: OnnxEmbedder) -> None:
    texts = sentences(30)
    together = emb.embed(texts)
    alone = np.vstack([emb.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)  # padding never leaks in
    assert len({round(float(v[0]), 6) for v in together}) > 10  # and the rows differ


def test_batches_respect_the_token_budget(emb: OnnxEmbedder) -> None:
    lengths = [30, 2, 10, 2, 33, 3, 12, 2, 2, 2]
    batches = emb._batches(lengths)
    # sorted: 1,3,7,8,9 (2 tokens), 5 (3), 2 (10), 6 (12), 0 (30), 4 (33); 4 x 12 <= 64 < 2 x 33
    assert [[int(i) for i in b] for b in batches] == [[1, 3, 7, 8], [9, 5, 2, 6], [0], [4]]
    for b in batches:
        assert len(b) <= emb.max_batch
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= emb.batch_tokens


def test_embed_batch_and_embed_agree(emb: OnnxEmbedder) -> None:
    texts = sentences(9, seed=1)
    np.testing.assert_allclose(emb.embed_batch(texts), emb.embed(texts), atol=1e-6)
    assert emb.embed([]).shape == (0, emb.dim)
    assert emb.embed_batch([]).shape == (0, emb.dim)


def test_concurrent_callers_get_their_own_vectors(emb: OnnxEmbedder) -> None:
    jobs = [sentences(12, seed=s) for s in range(6)]
    expected = [emb.embed(j) for j in jobs]
    got: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                got[i] = emb.embed(jobs[i])
                np.testing.assert_allclose(got[i], expected[i], atol=1e-5)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert sorted(got) == list(range(len(jobs)))


def test_empty_bad_and_huge_texts_are_embedded_per_item(emb: OnnxEmbedder) -> None:
    huge = "alice lives in paris. " * 500_000  # 11 MB
    texts = ["", "bob \ud800 sat", huge, "the cat"]
    vecs = emb.embed(texts)
    assert vecs.shape == (4, emb.dim)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # the lone surrogate is read as U+FFFD (an unknown token); the rest of the text counts
    np.testing.assert_allclose(vecs[1], emb.embed(["bob \ufffd sat"])[0], atol=1e-6)
    # a huge text is truncated like any other: its first max_seq_length tokens
    np.testing.assert_allclose(vecs[2], emb.embed([huge[:2000]])[0], atol=1e-6)
    np.testing.assert_allclose(vecs[3], emb.embed(["the cat"])[0], atol=1e-6)
    with pytest.raises(InvalidInput, match=r"texts\[1\]: expected a string, got NoneType"):
        emb.embed(["fine", None])  # type: ignore[list-item]


def test_clipping_a_long_text_keeps_its_token_ids(emb: OnnxEmbedder) -> None:
    rng = random.Random(3)
    pieces = [*WORDS, "x" * 150, "東京", "(", "-", "\n", "  "]
    budget = emb.max_seq_length * 16
    for _ in range(200):
        text = "".join(rng.choice(pieces) + rng.choice(["", " "])
                       for _ in range(rng.randint(budget // 4, budget)))
        clipped = emb._clip(text)
        assert text.startswith(clipped)
        assert emb.tokenizer.encode(clipped).ids == emb.tokenizer.encode(text).ids
    assert len(emb._clip("y" * 1_000_000)) <= budget  # one long word: one [UNK]


def test_count_tokens_uses_the_tokenizer(emb: OnnxEmbedder) -> None:
    assert emb.count_tokens("alice lives in paris") == 4
    assert emb.count_tokens("runs") == 2  # run ##s
    assert emb.count_tokens("running") == 1  # no ##ning in the vocabulary: [UNK]
    assert emb.count_tokens("") == 0


def test_spec_rebuilds_the_same_embedder(tiny_model: Path, tiny_cache: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMKIT_CACHE", str(tiny_cache))
    e = OnnxEmbedder(tiny_model)
    assert e.spec == f"onnx:{tiny_model}"
    again = load_embedder(e.spec)
    assert isinstance(again, OnnxEmbedder) and again.name == e.name == "tiny-bert-onnx@32"
    int8 = load_embedder(f"onnx-int8:{tiny_model}")
    assert isinstance(int8, OnnxEmbedder) and int8.variant == "int8"
    assert OnnxEmbedder(tiny_model, max_seq_length=8).spec is None


def test_memory_round_trip_with_the_onnx_embedder(emb: OnnxEmbedder) -> None:
    mem = Memory.open(None, embedder=emb, backends=["dense"])
    try:
        report = mem.write_many(["alice lives in paris", "bob lives in rome", "the cat sat"])
        assert len(report.added) == 3
        for text in ("alice lives in paris", "bob lives in rome"):  # a random model: the
            assert mem.read(text, k=1).hits[0].item.text == text  # same text is nearest
    finally:
        mem.close()


def test_missing_onnxruntime_names_the_extra(tiny_model: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependency, match=r"\[onnx\]"):
        OnnxEmbedder(tiny_model)


def test_embedders_of_one_file_share_one_session(emb: OnnxEmbedder, tiny_model: Path,
                                                 tiny_cache: Path) -> None:
    other = OnnxEmbedder(tiny_model, cache_dir=tiny_cache)
    assert other.session is emb.session and other._lock is emb._lock
    more = OnnxEmbedder(tiny_model, cache_dir=tiny_cache, threads=emb.threads + 1)
    assert more.session is not emb.session
