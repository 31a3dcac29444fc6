"""Deferred fact vectors (``fact_vectors``): the LLM-free reads seed without facts, so a build
for them embeds no fact; the first read that uses the fact channel embeds the facts once,
through the string cache, and reads exactly as a memory whose facts were embedded while
indexing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.embed.base import Embedder
from tests.core.test_string_vectors import PASSAGES, Counting

REPO = Path(__file__).resolve().parents[2]
FACTS = {"hipporag": {"use_facts": True}}
QUESTION = "Where was the wife of the director of Casablanca born?"


def open_mem(path: Path, emb: Embedder, **options: Any) -> Memory:
    return Memory.open(path, backends=["dense", "hipporag"], embedder=emb,
                       backend_options={"hipporag": {"extractor": "rules", **options}})


def fact_texts(mem: Memory) -> set[str]:
    return {r[0] for r in mem.store.conn.execute("SELECT text FROM hipporag_facts")}


def ranked(mem: Memory) -> list[tuple[int, float]]:
    res = mem.read(QUESTION, k=4, backend="hipporag", read_options=FACTS)
    return [(h.item.id, round(h.score, 6)) for h in res.hits]


def test_llm_free_build_embeds_no_fact_and_the_first_fact_read_embeds_each_once(
        tmp_path: Path) -> None:
    emb = Counting(HashEmbedder(64))
    with open_mem(tmp_path / "m", emb) as mem:
        mem.write_many(PASSAGES)
        facts = fact_texts(mem)
        assert facts and not facts & set(emb.texts)  # passages and phrases only
        hv = mem.stats()["backends"]["hipporag"]["vectors"]
        assert (hv["facts"], hv["facts_deferred"]) == (0, len(facts))
        mem.read(QUESTION, k=2, backend="hipporag")  # the default read needs no fact
        assert not facts & set(emb.texts)
        emb.texts.clear()
        res = mem.read(QUESTION, k=2, backend="hipporag", read_options=FACTS, trace=True)
        assert sorted(t for t in emb.texts if t != QUESTION) == sorted(facts)  # each once
        assert res.traces and res.traces["hipporag"]["facts"]  # the fact channel seeded
        assert mem.backends["hipporag"].fact_index.ntotal == len(facts)
        emb.texts.clear()
        mem.read("Who directed Heat?", k=2, backend="hipporag", read_options=FACTS)
        assert emb.texts == ["Who directed Heat?"]  # the query: facts filled once


def test_deferred_and_written_fact_vectors_read_the_same(tmp_path: Path) -> None:
    with open_mem(tmp_path / "lazy", HashEmbedder(64)) as lazy, \
            open_mem(tmp_path / "eager", HashEmbedder(64), fact_vectors="write") as eager:
        lazy.write_many(PASSAGES)
        eager.write_many(PASSAGES)
        hv = eager.stats()["backends"]["hipporag"]["vectors"]
        assert hv["facts_deferred"] == 0 and hv["facts"] == len(fact_texts(eager))
        assert ranked(lazy) == ranked(eager)


def test_reads_that_use_facts_embed_them_while_indexing(tmp_path: Path) -> None:
    emb = Counting(HashEmbedder(64))
    with open_mem(tmp_path / "m", emb, use_facts=True) as mem:  # auto: these reads use facts
        mem.write_many(PASSAGES)
        assert fact_texts(mem) <= set(emb.texts)
        assert mem.stats()["backends"]["hipporag"]["vectors"]["facts_deferred"] == 0


def test_a_new_write_defers_only_its_new_facts(tmp_path: Path) -> None:
    emb = Counting(HashEmbedder(64))
    with open_mem(tmp_path / "m", emb) as mem:
        mem.write_many(PASSAGES[:3])
        ranked(mem)
        before = fact_texts(mem)
        mem.write(PASSAGES[3])
        emb.texts.clear()
        ranked(mem)
        new = sorted(t for t in emb.texts if t != QUESTION)
        assert new and new == sorted(fact_texts(mem) - before)
        # deleting a passage takes its facts out of the filled index
        heat = mem.read("Heat 1995 film Michael Mann", k=1, backend="dense").ids[0]
        n = mem.backends["hipporag"].fact_index.ntotal
        mem.delete(heat)
        assert mem.backends["hipporag"].fact_index.ntotal < n


_READER = """
import json, sys
from memkit import Memory
from memkit.embed import HashEmbedder
with Memory.open(sys.argv[1], backends=["dense", "hipporag"], embedder=HashEmbedder(64),
                 backend_options={"hipporag": {"extractor": "rules"}}) as mem:
    res = mem.read(sys.argv[2], k=4, backend="hipporag",
                   read_options={"hipporag": {"use_facts": True}})
    strings = mem.stats()["item_vectors"]["strings"]
    print(json.dumps({"hits": [[h.item.id, round(h.score, 6)] for h in res.hits],
                      "embedded": strings["embedded_this_process"]}))
"""


def test_another_process_reuses_the_facts_a_read_embedded(tmp_path: Path) -> None:
    with open_mem(tmp_path / "m", HashEmbedder(64)) as mem:
        mem.write_many(PASSAGES)
        local = ranked(mem)  # embeds the facts into the memory's string cache

    def reader() -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-c", _READER, str(tmp_path / "m"), QUESTION],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    got = reader()
    assert [tuple(h) for h in got["hits"]] == local
    assert got["embedded"] <= 1  # the query at most: every fact came from the cache
