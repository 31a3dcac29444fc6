"""A delete leaves nothing behind: every file of the memory directory (database, WAL, faiss
and graph files, LLM call cache) is searched for the deleted text, its own phrase and its
vector - while the memory is still open, and after it is closed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.llm.fake import ScriptedLLM

SECRET = "Quokkaville clinic diagnosed Zebulon Frampton with condition X-4711."
PHRASE = "Zebulon Frampton"  # mentioned by the secret only
FILLER = [f"Office note {n}: the printer on floor {n % 4} needs toner." for n in range(12)]


def _llm() -> ScriptedLLM:
    def ner(prompt: str) -> str:
        names = [PHRASE, "Quokkaville clinic"] if "Frampton" in prompt else ["printer"]
        return json.dumps({"named_entities": names})

    def triples(prompt: str) -> str:
        if "Frampton" in prompt:
            return json.dumps({"triples": [["Quokkaville clinic", "diagnosed", PHRASE]]})
        return json.dumps({"triples": [["printer", "needs", "toner"]]})

    return ScriptedLLM({r"triple list": triples, r"named_entities|named entities": ner,
                        r"^Question:": json.dumps({"fact": []})})


def _needles(emb: HashEmbedder) -> dict[str, bytes]:
    vec = emb.embed([SECRET])[0].astype(np.float32)
    return {"text": SECRET.encode(), "json text": json.dumps(SECRET)[1:-1].encode(),
            "phrase": PHRASE.encode(), "phrase (normalised)": PHRASE.lower().encode(),
            "vector": vec.tobytes(), "vector head": vec[:8].tobytes()}


def _residue(directory: Path, needles: dict[str, bytes]) -> list[str]:
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{what} in {path.relative_to(directory)}"
                  for what, needle in needles.items() if needle in data]
    return found


@pytest.mark.parametrize("hnsw", [False, True])
def test_a_deleted_item_leaves_no_trace_in_any_file(tmp_path: Path, hnsw: bool) -> None:
    directory = tmp_path / "mem"
    emb = HashEmbedder(64)
    opts = {"dense": {"hnsw_threshold": 4 if hnsw else 50_000},
            "hipporag": {"hnsw_threshold": 4 if hnsw else 50_000}}
    mem = Memory.open(directory, backends=["dense", "hipporag"], embedder=emb, llm=_llm(),
                      backend_options=opts)
    try:
        mem.write_many(FILLER)
        secret = mem.write(SECRET, source="clinic-export.csv")
        mem.update(secret, SECRET + " Follow-up in May.", reason="Frampton called back")
        mem.read("Who did the clinic diagnose?", k=3, backend="hipporag")
        mem.flush()
        needles = _needles(emb)
        assert _residue(directory, needles), "the test must first see the secret on disk"
        if hnsw:
            assert mem.backends["dense"].index.kind == "hnsw"  # type: ignore[attr-defined]
        mem.delete([secret], reason="erasure request #12")
        assert _residue(directory, needles) == []  # while still open
        assert _residue(directory, {"source": b"clinic-export.csv",
                                    "update reason": b"Frampton called back"}) == []
        assert mem.read("Zebulon Frampton condition", k=5).hits[0].text != SECRET
        rows = mem.audit(limit=100)
        assert [r["reason"] for r in rows if r["op"] == "delete"] == ["erasure request #12"] * 2
    finally:
        mem.close()
    assert _residue(directory, _needles(emb)) == []  # and after closing
    with Memory.open(directory, llm=_llm()) as mem:  # the rest is intact
        assert mem.stats()["items"] == len(FILLER)
        assert mem.read("printer toner", k=1).hits[0].text in FILLER


def test_ttl_expiry_erases_too(tmp_path: Path) -> None:
    directory = tmp_path / "mem"
    emb = HashEmbedder(64)
    with Memory.open(directory, embedder=emb) as mem:
        mem.write_many(FILLER)
        mem.write(SECRET, ttl=0.001)
        mem.flush()
        import time

        time.sleep(0.01)
        assert len(mem.forget("ttl")) == 1
        assert _residue(directory, _needles(emb)) == []
