"""The LLM path: OpenIE parsing, faults (garbage, wrong arity, truncation, huge strings,
server down), retry on the next index pass, recognition filter, cost accounting."""

from __future__ import annotations

import json

import pytest

from memkit import Memory
from memkit.backends.hipporag.openie import OpenIEExtractor
from memkit.backends.hipporag.retriever import match_facts
from memkit.embed import HashEmbedder
from memkit.errors import LLMUnavailable
from memkit.llm.fake import ScriptedLLM

PASSAGE = "Radio City\nRadio City is an FM station in India launched in 2001."
GOOD_NER = json.dumps({"named_entities": ["Radio City", "India", "2001"]})
GOOD_TRIPLES = json.dumps({"triples": [["Radio City", "located in", "India"],
                                       ["Radio City", "launched in", "2001"]]})


def llm_with(ner: object, triples: object, filt: object = None) -> ScriptedLLM:
    replies = {r"triple list": triples, r"named_entities|named entities": ner}
    if filt is not None:
        replies = {r"^Question:": filt, **replies}
    return ScriptedLLM(replies)  # type: ignore[arg-type]


def open_llm_mem(llm: ScriptedLLM, **opts: object) -> Memory:
    return Memory.open(None, backends=["hipporag", "dense"], embedder=HashEmbedder(64),
                       llm=llm, backend_options={"hipporag": dict(opts)})


def test_openie_two_calls_and_clean_output() -> None:
    bad = json.dumps({"triples": [["Radio City", "located in", "India"],
                                  ["only", "two"], ["a", "b", "c", "d"], [1, "x", "y"],
                                  ["Radio City", "located in", "India"],  # duplicate
                                  ["X" * 10_000, "is", "long"]]})
    llm = llm_with(GOOD_NER, bad)
    [ex] = OpenIEExtractor(llm).extract([PASSAGE])
    assert ex.ok
    assert ex.triples == [("Radio City", "located in", "India")]
    assert ex.entities == ["Radio City", "India"]
    assert len(llm.calls) == 2
    assert "Radio City" in llm.calls[1].prompt and "India" in llm.calls[1].prompt


def test_truncated_json_is_repaired() -> None:
    truncated = '{"triples": [["Radio City", "located in", "India"], ["Radio City", "launch'
    [ex] = OpenIEExtractor(llm_with(GOOD_NER, truncated)).extract([PASSAGE])
    assert ex.ok and ("Radio City", "located in", "India") in ex.triples


@pytest.mark.parametrize("triples", ["complete garbage, no json", '{"triples": []}',
                                     '{"triples": "not a list"}', "[[[["])
def test_unusable_output_still_stores_and_dense_indexes(triples: str) -> None:
    llm = llm_with(GOOD_NER, triples)
    mem = open_llm_mem(llm)
    iid = mem.write(PASSAGE)
    assert mem.read("FM station", backend="dense").hits[0].item.id == iid
    hits = mem.read("FM station in India", backend="hipporag").hits
    assert [h.item.id for h in hits] == [iid]  # dense fallback inside the graph backend
    row = mem.store.conn.execute(
        "SELECT status FROM hipporag_passages WHERE item_id = ?", (iid,)).fetchone()
    assert row[0] in ("ok", "failed")  # empty triples is a valid (empty) extraction


def test_server_down_records_failure_and_retries_later() -> None:
    state = {"down": True}

    def reply(good: str):  # type: ignore[no-untyped-def]
        def f(_: str) -> str:
            if state["down"]:
                raise LLMUnavailable("connection refused")
            return good
        return f

    llm = llm_with(reply(GOOD_NER), reply(GOOD_TRIPLES))
    mem = open_llm_mem(llm, filter=False)
    iid = mem.write(PASSAGE)
    be = mem.backends["hipporag"]
    status, error, attempts = mem.store.conn.execute(
        "SELECT status, error, attempts FROM hipporag_passages WHERE item_id = ?",
        (iid,)).fetchone()
    assert status == "failed" and "connection refused" in error and attempts == 1
    assert mem.read("FM station", backend="dense").hits[0].item.id == iid
    assert be.stats()["facts"] == 0  # nothing half-written
    # the server comes back: the next index pass retries the failed passage
    state["down"] = False
    mem.write("Another passage\nUnrelated text about Lisbon.")
    status, attempts = mem.store.conn.execute(
        "SELECT status, attempts FROM hipporag_passages WHERE item_id = ?", (iid,)).fetchone()
    assert status == "ok" and attempts == 2
    assert "radio city" in be.phrase_by_text and be.stats()["facts"] >= 2
    hits = mem.read("Where is Radio City located?", backend="hipporag").hits
    assert hits[0].item.id == iid and hits[0].evidence["mode"] == "graph"


def test_failure_during_write_leaves_graph_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    mem = open_llm_mem(llm_with(GOOD_NER, GOOD_TRIPLES), filter=False)
    mem.write(PASSAGE)
    be = mem.backends["hipporag"]
    before = (be.stats(), be.phrase_index.ntotal, dict(be.phrase_by_text))

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(be.gs, "apply", boom)
    with pytest.raises(RuntimeError):
        be.add([type(mem.get(1))(**{**mem.get(1).__dict__, "id": 99,
                                     "text": "Lisbon\nLisbon is in Portugal."})])
    assert (be.stats(), be.phrase_index.ntotal, dict(be.phrase_by_text)) == before


def test_recognition_filter_selects_facts_and_empty_falls_back() -> None:
    keep = json.dumps({"fact": [["Radio City", "located in", "India"]]})
    llm = llm_with(GOOD_NER, GOOD_TRIPLES, filt=keep)
    mem = open_llm_mem(llm)
    iid = mem.write(PASSAGE)
    res = mem.read("Which country is Radio City in?", backend="hipporag")
    assert res.hits[0].item.id == iid
    assert res.hits[0].evidence["facts"] == ["Radio City located in India"]
    assert res.cost.llm_calls == 1  # the filter call of this read
    llm2 = llm_with(GOOD_NER, GOOD_TRIPLES, filt='{"fact": []}')
    mem2 = open_llm_mem(llm2)
    mem2.write(PASSAGE)
    hit = mem2.read("Which country is Radio City in?", backend="hipporag").hits[0]
    assert hit.evidence["fallback"] == "no fact survived the recognition filter"


def test_no_llm_means_no_filter_and_llm_free_extractor() -> None:
    mem = Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                      backend_options={"hipporag": {"extractor": "rules"}})
    be = mem.backends["hipporag"]
    assert be.ropts.use_filter is False and be.extractor.name == "rules"


def test_match_facts_exact_then_fuzzy() -> None:
    cands = [("Radio City", "located in", "India"), ("Radio City", "launched in", "2001")]
    assert match_facts([["radio city", "located in", "india"]], cands) == [0]
    assert match_facts([["Radio City", "launched", "2001"]], cands) == [1]
    assert match_facts([["Tokyo", "is in", "Japan"]], cands) == []
    assert match_facts([cands[0], cands[1], cands[0]], cands, limit=4) == [0, 1]
