"""The redesigned read/write path: reads never wait for another backend's slow indexing,
results (cost, trace) are return values, passages are embedded once, options are strict,
a failed open leaves nothing open, and async indexing catches up."""

from __future__ import annotations

import gc
import json
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.backends.base import backend_names, resolve_backend
from memkit.embed import HashEmbedder
from memkit.errors import ConfigError, InvalidInput
from memkit.llm.fake import ScriptedLLM

NER = json.dumps({"named_entities": ["Bergen Harbour", "Fjord Logistics"]})
TRIPLES = json.dumps({"triples": [["Bergen Harbour", "is run by", "Fjord Logistics"]]})


class CountingEmbedder(HashEmbedder):
    """HashEmbedder that counts the texts it embeds (thread-safe)."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__(dim)
        self.texts: list[str] = []
        self._count_lock = threading.Lock()

    def embed_batch(self, texts):  # type: ignore[no-untyped-def]
        with self._count_lock:
            self.texts.extend(texts)
        return super().embed_batch(texts)


def test_dense_read_completes_while_a_write_is_blocked_in_llm_extraction() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_ner(prompt: str) -> str:
        if "Bergen" in prompt:  # only the second write's extraction blocks
            entered.set()
            assert release.wait(30), "the test never released the extraction call"
        return NER

    llm = ScriptedLLM({r"triple list": TRIPLES, r"named_entities|named entities": slow_ner})
    mem = Memory.open(None, backends=["dense", "hipporag"], embedder=HashEmbedder(64), llm=llm,
                      backend_options={"hipporag": {"filter": False}})
    try:
        first = mem.write("Oslo is the capital of Norway.")  # indexed before the slow write
        writer = threading.Thread(
            target=mem.write, args=("Bergen Harbour is run by Fjord Logistics.",))
        writer.start()
        assert entered.wait(30)  # the writer is now inside its LLM call, holding nothing
        res = mem.read("capital of Norway", k=1, backend="dense")  # must not wait
        assert res.ids == [first]
        assert writer.is_alive()  # the write really was still blocked while we read
        release.set()
        writer.join(30)
        assert not writer.is_alive()
        # the returned write is readable in the graph backend too (sync indexing)
        hits = mem.read("Fjord Logistics", k=2, backend="hipporag")
        assert any("Fjord" in h.text for h in hits)
    finally:
        release.set()
        mem.close()


def test_concurrent_reads_each_report_exactly_their_own_llm_calls() -> None:
    docs = [f"Station {n} is located in City{n}." for n in range(8)]

    def ner(prompt: str) -> str:
        n = next((d for d in range(8) if f"Station {d} " in prompt), 0)
        return json.dumps({"named_entities": [f"Station {n}", f"City{n}"]})

    def triples(prompt: str) -> str:
        n = next((d for d in range(8) if f"Station {d} " in prompt), 0)
        return json.dumps({"triples": [[f"Station {n}", "located in", f"City{n}"]]})

    barrier = threading.Barrier(4, timeout=30)

    def filt(prompt: str) -> str:
        barrier.wait()  # all four reads are inside their filter call at the same time
        return json.dumps({"fact": []})

    llm = ScriptedLLM({r"^Question:": filt, r"triple list": triples,
                       r"named_entities|named entities": ner})
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64), llm=llm) as mem:
        mem.write_many(docs)
        queries = [f"Where is Station {n}?" for n in range(4)]  # distinct: no cache hits
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda q: mem.read(q, k=3, trace=True), queries))
    for res in results:
        # exactly one recognition-filter call each (it kept no fact: the trace says so)
        assert res.cost.llm_calls == 1, res.cost
        assert res.cost.prompt_tokens > 0 and res.cost.cached_llm_calls == 0
        assert res.traces["hipporag"]["mode"] == "dense"
        assert "recognition filter" in res.traces["hipporag"]["fallback"]
    assert len({r.cost.prompt_tokens for r in results}) >= 1


def test_hipporag_alone_embeds_each_passage_once() -> None:
    emb = CountingEmbedder()
    docs = ["Marie Curie was born in Warsaw.", "Warsaw is the capital of Poland.",
            "Pierre Curie married Marie Curie."]
    with Memory.open(None, backends=["hipporag"], embedder=emb,
                     backend_options={"hipporag": {"extractor": "rules"}}) as mem:
        assert mem.config.backends == ["hipporag"]  # no dense forced in
        mem.write_many(docs)
        mem.rebuild()  # a rebuild reuses the stored passage vectors
        for d in docs:
            assert emb.texts.count(d) == 1, (d, emb.texts.count(d))
        assert mem.stats()["item_vectors"]["vectors"] == 3
        assert mem.read("Where was Marie Curie born?", k=1).hits[0].text == docs[0]


def test_dense_and_hipporag_share_one_vector_per_passage(tmp_path: Path) -> None:
    emb = CountingEmbedder()
    with Memory.open(tmp_path / "m", backends=["dense", "hipporag"], embedder=emb,
                     backend_options={"hipporag": {"extractor": "rules"}}) as mem:
        mem.write("Ada Lovelace wrote the first program.")
    assert emb.texts.count("Ada Lovelace wrote the first program.") == 1
    with Memory.open(tmp_path / "m", embedder=emb) as mem:  # reopen: nothing re-embedded
        mem.rebuild(["dense"])
        assert mem.read("first program", k=1).hits[0].text.startswith("Ada")
    assert emb.texts.count("Ada Lovelace wrote the first program.") == 1


@pytest.mark.parametrize("name", ["dense", "hipporag", "panini"])
def test_a_typo_in_any_backend_option_is_a_config_error_naming_it(name: str) -> None:
    with pytest.raises(ConfigError, match="batch_sise"):
        Memory.open(None, backends=[name], embedder=HashEmbedder(32),
                    backend_options={name: {"batch_sise": 8}})
    with pytest.raises(ConfigError, match="batch_size"):
        Memory.open(None, backends=[name], embedder=HashEmbedder(32),
                    backend_options={name: {"batch_size": "many"}})


def test_every_registered_backend_has_strict_documented_options() -> None:
    for name in backend_names():
        cls = resolve_backend(name)
        described = cls.options_model.describe()
        assert isinstance(described, dict)
        with pytest.raises(ConfigError):
            from memkit.options import parse_options

            parse_options(cls.options_model, {"no_such_option": 1}, name)


def test_options_saved_without_live_objects_and_shown_in_stats(tmp_path: Path) -> None:
    class FakeNlp:  # a live object: must travel as a component, never be saved
        pass

    with Memory.open(tmp_path / "m", backends=["dense", "panini"], embedder=HashEmbedder(32),
                     backend_options={"dense": {"ef_search": 64},
                                      "panini": {"nlp": FakeNlp(), "writer": "parse"}}) as mem:
        assert mem.backends["panini"].nlp.__class__ is FakeNlp  # type: ignore[attr-defined]
        stats = mem.stats()
        assert stats["backends"]["dense"]["options"]["ef_search"] == 64
    saved = (tmp_path / "m" / "memkit.toml").read_text()
    assert "ef_search = 64" in saved and "nlp" not in saved and 'writer = "parse"' in saved


def test_a_failed_open_leaves_no_open_handle(tmp_path: Path) -> None:
    import sqlite3

    class Exploding(HashEmbedder):
        def __init__(self, dim: int) -> None:
            super().__init__(dim)
            self.name = "another-model"  # vectors of another model: re-embedded on open

        def embed_batch(self, texts):  # type: ignore[no-untyped-def]
            raise RuntimeError("embedder crashed while opening")

    with Memory.open(tmp_path / "m", embedder=HashEmbedder(32)) as mem:
        mem.write("something to re-embed on open")
    (tmp_path / "m" / "vectors" / "dense.faiss").unlink()
    with pytest.raises(RuntimeError, match="crashed"):
        Memory.open(tmp_path / "m", embedder=Exploding(32))
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        gc.collect()
    # nothing holds the database: an exclusive lock can be taken at once
    conn = sqlite3.connect(tmp_path / "m" / "memory.db", timeout=0.1)
    conn.execute("BEGIN EXCLUSIVE")
    conn.rollback()
    conn.close()
    with Memory.open(tmp_path / "m", embedder=HashEmbedder(32)) as mem:  # record intact
        assert mem.stats()["items"] == 1


def test_async_indexing_catches_up_and_wait_indexed() -> None:
    with Memory.open(None, embedder=HashEmbedder(32), index="async") as mem:
        report = mem.write_many([f"note {n} about topic {n % 3}" for n in range(300)],
                                batch_size=50)
        assert len(report.added) == 300
        assert mem.wait_indexed(timeout=60)
        assert mem.stats()["indexing"]["lag"]["dense"] == 0
        assert mem.backends["dense"].index.ntotal == 300  # type: ignore[attr-defined]
        res = mem.read("note 7 about topic 1", k=1)
        assert res.hits[0].text == "note 7 about topic 1"
        eventual = mem.read("note 8", k=1, consistency="eventual")
        assert eventual.positions["dense"] <= mem.store.last_seq()


def test_read_options_and_consistency_are_validated() -> None:
    with Memory.open(None, embedder=HashEmbedder(32)) as mem:
        mem.write("hello world")
        with pytest.raises(InvalidInput, match="consistency"):
            mem.read("hello", consistency="sometimes")
        with pytest.raises(InvalidInput, match="not read here"):
            mem.read("hello", read_options={"hipporag": {}})
        with pytest.raises(InvalidInput, match="damping.*not known"):
            mem.read("hello", read_options={"dense": {"damping": 0.5}})


def test_hipporag_read_options_override_one_read_only() -> None:
    docs = ["Alpha Corp is based in Oslo.", "Oslo hosts the Beta Summit."]
    with Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": {"extractor": "rules"}}) as mem:
        mem.write_many(docs)
        rrf = mem.read("Where is Alpha Corp based?", k=2, trace=True,
                       read_options={"hipporag": {"fusion": "rrf"}})
        plain = mem.read("Where is Alpha Corp based?", k=2, trace=True)
        assert rrf.traces["hipporag"].get("fusion") in ("rrf", None)
        assert plain.traces["hipporag"].get("fusion") in ("ppr", None)
        assert mem.backends["hipporag"].ropts.fusion == "ppr"  # type: ignore[attr-defined]


def test_read_cost_counts_query_embeddings() -> None:
    with Memory.open(None, embedder=HashEmbedder(32)) as mem:
        mem.write("hello world")
        res = mem.read("hello", k=1)
        assert res.cost.embed_calls == 1 and res.cost.embedded_texts == 1
        assert np.isfinite(res.cost.ms)


def test_event_rows_in_the_change_feed_are_not_indexed(tmp_path):
    """An ``adapter_stale`` audit row names an item without changing it: the indexer moves
    past it without re-indexing the item; a non-event op is refused."""
    import pytest

    from memkit import Memory
    from memkit.errors import InvalidInput

    with Memory.open(tmp_path / "m", embedder="hash") as mem:
        iid = mem.write("the heron nests by the lake")
        dense = mem.backends["dense"]
        added = []
        real_add = dense.add
        dense.add = lambda items, prepared=None: (added.extend(i.id for i in items),
                                                  real_add(items, prepared))[1]
        mem.store.record_events([("adapter_stale", iid, "adapter round 1 ...", {"round": 1})])
        mem.indexer.catch_up()
        assert added == [] and mem.indexer.position("dense") == mem.store.last_seq()
        assert mem.read("heron", k=1).hits[0].id == iid
        with pytest.raises(InvalidInput, match="not an event op"):
            mem.store.record_events([("delete", iid, None, None)])
        assert [r["op"] for r in mem.audit(iid)] == ["adapter_stale", "write"]
