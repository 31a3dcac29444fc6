"""The content-hash cache of short-string vectors: each distinct phrase, fact, question or
entity is embedded once per memory and embedder, across rebuilds, re-opens and backends; a
different embedder never reuses another's vectors; erasing an item purges its strings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.embed.base import Embedder
from memkit.llm.fake import ScriptedLLM
from memkit.store.sqlite import Store
from memkit.vectors.strings import StringVectors, text_hash

PASSAGES = [
    "Casablanca\nCasablanca is a 1942 film directed by Michael Curtiz.",
    "Michael Curtiz\nMichael Curtiz was married to Bess Meredyth.",
    "Bess Meredyth\nBess Meredyth was born in Buffalo, New York.",
    "Heat\nHeat is a 1995 film directed by Michael Mann.",
]


class Counting(Embedder):
    """Wraps an embedder and records every text it is asked to embed."""

    def __init__(self, inner: Embedder, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or inner.name
        self.dim = inner.dim
        self.texts: list[str] = []

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.embed_batch(texts)


def graph_mem(path: Path, emb: Embedder) -> Memory:
    return Memory.open(path, backends=["dense", "hipporag"], embedder=emb,
                       backend_options={"hipporag": {"extractor": "rules"}})


def test_a_rebuild_embeds_no_new_string(tmp_path: Path) -> None:
    emb = Counting(HashEmbedder(64))
    with graph_mem(tmp_path / "m", emb) as mem:
        mem.write_many(PASSAGES)
        first = list(emb.texts)
        phrases = mem.backends["hipporag"].stats()["phrases"]
        assert phrases > 0 and len(first) > len(PASSAGES)  # passages + phrases + facts
        emb.texts.clear()
        mem.rebuild()
        assert emb.texts == []  # every phrase and fact came from the cache
        assert mem.backends["hipporag"].stats()["phrases"] == phrases
        hits = mem.read("Who directed Casablanca?", k=1, backend="hipporag")
        assert hits.ids and mem.get(hits.ids[0]).text == PASSAGES[0]


def test_reopen_and_rebuild_in_another_process_reuse_the_cache(tmp_path: Path) -> None:
    with graph_mem(tmp_path / "m", Counting(HashEmbedder(64))) as mem:
        mem.write_many(PASSAGES)
        cached = mem.stats()["item_vectors"]["strings"]["vectors"]
    assert cached > 0
    emb = Counting(HashEmbedder(64))  # a fresh embedder object: same identity
    with graph_mem(tmp_path / "m", emb) as mem:
        mem.rebuild(["hipporag"])
        assert emb.texts == []
        stats = mem.stats()
        assert stats["item_vectors"]["strings"]["reused_this_process"] > 0
        assert stats["item_vectors"]["strings"]["embedded_this_process"] == 0
        hv = stats["backends"]["hipporag"]["vectors"]
        # the LLM-free reads do not use facts: their vectors wait for a read that does
        assert hv["passages"] == len(PASSAGES) and hv["phrases"] > 0
        assert hv["facts"] == 0 and hv["facts_deferred"] > 0
        assert "why" in hv


def test_another_embedder_never_reuses_the_vectors(tmp_path: Path) -> None:
    with graph_mem(tmp_path / "m", HashEmbedder(64)) as mem:
        mem.write_many(PASSAGES)
    other = Counting(HashEmbedder(64, trigrams=False))  # another name: another model
    assert other.name != HashEmbedder(64).name
    with graph_mem(tmp_path / "m", other) as mem:
        mem.rebuild(["hipporag"])
        assert len(other.texts) > len(PASSAGES)  # phrases and facts embedded again
        strings = mem.vectors.strings
        sample = "casablanca"
        got = strings.lookup([sample])[sample]
        assert np.allclose(got, HashEmbedder(64, trigrams=False).embed([sample])[0])
        assert strings.count() == int(mem.store.conn.execute(
            "SELECT COUNT(*) FROM string_vectors").fetchone()[0])  # old model's rows dropped


def test_the_cache_is_keyed_by_embedder_identity() -> None:
    store = Store.open(":memory:")
    a = StringVectors(store, HashEmbedder(8))
    va = a.embed(["Paris", "Lyon"])
    b_emb = Counting(HashEmbedder(8, trigrams=False), name="other-model")
    b = StringVectors(store, b_emb)
    vb = b.embed(["Paris"])
    assert b_emb.texts == ["Paris"]  # not served from a's rows
    assert np.allclose(vb[0], HashEmbedder(8, trigrams=False).embed(["Paris"])[0])
    assert not np.allclose(vb[0], va[0])
    again = Counting(HashEmbedder(8, trigrams=False), name="other-model")
    assert np.allclose(StringVectors(store, again).embed(["Paris", "Paris"]), vb[0])
    assert again.texts == []


def test_each_distinct_string_is_embedded_once_per_call() -> None:
    emb = Counting(HashEmbedder(8))
    sv = StringVectors(Store.open(":memory:"), emb)
    out = sv.embed(["a b", "c d", "a b", "a b"])
    assert emb.texts == ["a b", "c d"]
    assert np.allclose(out[0], out[2]) and out.shape == (4, 8)
    assert sv.embed([]).shape == (0, 8)


def test_deleting_an_item_purges_the_strings_only_it_produced(tmp_path: Path) -> None:
    with graph_mem(tmp_path / "m", HashEmbedder(64)) as mem:
        ids = mem.write_many(PASSAGES).added
        mem.delete([ids[3]])  # Heat / Michael Mann: in no other passage
        rows = {r[0] for r in mem.store.conn.execute("SELECT hash FROM string_vectors")}
        assert text_hash("michael mann") not in rows
        assert text_hash("heat") not in rows
        assert text_hash("casablanca") in rows  # still supported by a live passage


def _panini_llm() -> ScriptedLLM:
    def ws(a: str, b: str, q: str) -> str:
        return json.dumps({"entities": [{"id": "e1", "name": a, "roles": [{"role": "x",
                                                                          "states": []}]},
                                        {"id": "e2", "name": b, "roles": [{"role": "y",
                                                                          "states": []}]}],
                           "verb_phrases": [{"id": "v1", "phrase": "p", "questions": [
                               {"text": q, "answers": ["e2"]}]}]})

    return ScriptedLLM({"1942 film": ws("Casablanca", "Michael Curtiz", "Who directed it?"),
                        "married": ws("Michael Curtiz", "Bess Meredyth", "Spouse?"),
                        "born": ws("Bess Meredyth", "Buffalo, New York", "Where born?"),
                        "1995 film": ws("Heat", "Michael Mann", "Who directed it?")})


def test_panini_rebuild_and_delete_go_through_the_cache(tmp_path: Path) -> None:
    emb = Counting(HashEmbedder(64))
    with Memory.open(tmp_path / "p", backends=["panini"], embedder=emb,
                     llm=_panini_llm()) as mem:
        ids = mem.write_many(PASSAGES).added
        stats = mem.backends["panini"].stats()
        assert stats["vectors"]["qa_pairs"] == stats["qa_pairs"] == 4
        assert stats["vectors"]["entities"] == stats["entities"] > 0
        emb.texts.clear()
        mem.rebuild(["panini"])
        assert emb.texts == []
        mem.delete([ids[3]])
        rows = {r[0] for r in mem.store.conn.execute("SELECT hash FROM string_vectors")}
        texts = mem.vectors.strings  # what is left embeds nothing on the next rebuild
        emb.texts.clear()
        mem.rebuild(["panini"])
        assert emb.texts == []
        assert texts.count() == len(rows)


@pytest.mark.parametrize("n", [0, 600])
def test_purge_handles_empty_and_large_lists(n: int) -> None:
    sv = StringVectors(Store.open(":memory:"), HashEmbedder(8))
    texts = [f"t{i}" for i in range(n)]
    sv.embed(texts)
    assert sv.purge(texts) == n and sv.count() == 0
