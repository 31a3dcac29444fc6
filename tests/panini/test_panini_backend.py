"""The Panini backend through Memory: scripted LLM writer and decomposer, hash embeddings.

Three documents form a 3-hop chain (Casablanca -> Michael Curtiz -> Bess Meredyth ->
Buffalo); a fourth is a distractor. The right chain, its items and the answer are known.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memkit import Memory
from memkit.backends.panini import PaniniBackend
from memkit.decomposition import Decomposition
from memkit.embed import HashEmbedder
from memkit.llm.fake import ScriptedLLM


def workspace(ents: list[tuple[str, str, str]], qas: list[tuple[str, str, str, str]]) -> str:
    """ents: (id, name, role); qas: (forward question, answer id, backward q, answer id)."""
    return json.dumps({
        "entities": [{"id": i, "name": n, "roles": [{"role": r, "states": []}]}
                     for i, n, r in ents],
        "verb_phrases": [{"id": f"v{k}", "phrase": "p", "questions": [
            {"text": f, "answers": [fa]}, {"text": b, "answers": [ba]}]}
            for k, (f, fa, b, ba) in enumerate(qas)]})


DOCS = {
    "Casablanca is a 1942 film": workspace(
        [("e1", "Casablanca", "film"), ("e2", "Michael Curtiz", "person")],
        [("Who directed the film Casablanca?", "e2", "Which film did Michael Curtiz direct?",
          "e1")]),
    "Curtiz was married": workspace(
        [("e1", "Michael Curtiz", "person"), ("e2", "Bess Meredyth", "person")],
        [("Who was Michael Curtiz married to, his spouse?", "e2",
          "Who was Bess Meredyth married to?", "e1")]),
    "Meredyth was born": workspace(
        [("e1", "Bess Meredyth", "person"), ("e2", "Buffalo, New York", "city")],
        [("Where was Bess Meredyth born?", "e2", "Who was born in Buffalo, New York?", "e1")]),
    "Heat is a 1995 film": workspace(
        [("e1", "Heat", "film"), ("e2", "Michael Mann", "person")],
        [("Who directed the film Heat?", "e2", "Which film did Michael Mann direct?", "e1")]),
    "garbage document": '{"entities": [{"id": "e1", "name": "X"}], "verb_phrases": [{"phrase":'
                        ' "p", "questions": [{"text": "a?", "answers": ["e5"]}]}]}',
}
TEXTS = {
    "Casablanca is a 1942 film": "Casablanca\nCasablanca is a 1942 film directed by Michael "
                                 "Curtiz.",
    "Curtiz was married": "Michael Curtiz\nCurtiz was married to Bess Meredyth.",
    "Meredyth was born": "Bess Meredyth\nMeredyth was born in Buffalo, New York.",
    "Heat is a 1995 film": "Heat\nHeat is a 1995 film directed by Michael Mann.",
    "garbage document": "Garbage\nA garbage document.",
}
QUESTION = "Where was the spouse of the director of Casablanca born?"
DECOMP = json.dumps({"questions": [
    {"question": "Who directed the film Casablanca?", "requires_retrieval": True},
    {"question": "Who was <ENTITY_Q1> married to, the spouse?", "requires_retrieval": True},
    {"question": "Where was <ENTITY_Q2> born?", "requires_retrieval": True}]})


def scripted() -> ScriptedLLM:
    rules: dict[str, str] = {"Split a question": DECOMP}
    rules.update({key: reply for key, reply in DOCS.items()})
    return ScriptedLLM(rules)


@pytest.fixture
def llm_mem(tmp_path: Path):  # type: ignore[no-untyped-def]
    llm = scripted()
    m = Memory.open(tmp_path / "m", backends=["panini", "dense"], embedder=HashEmbedder(256),
                    llm=llm, backend_options={"panini": {"min_score": 0.1}})
    ids = {k: m.write(t) for k, t in TEXTS.items()}
    yield m, ids, llm
    m.close()


def test_three_hop_read_returns_the_chain_items_and_compact_evidence(llm_mem) -> None:
    m, ids, _ = llm_mem
    res = m.read(QUESTION, k=5, backend="panini")
    assert res.ids[:3] == [ids["Casablanca is a 1942 film"], ids["Curtiz was married"],
                           ids["Meredyth was born"]]
    ev = res.hits[0].evidence
    assert ev["mode"] == "llm"
    assert [s["answers"] for s in ev["chain"]["steps"]] == [
        ["Michael Curtiz"], ["Bess Meredyth"], ["Buffalo, New York"]]
    assert ev["chain"]["bindings"] == {"Q1": "Michael Curtiz", "Q2": "Bess Meredyth"}
    lines = ev["rendered"].splitlines()
    assert lines[:3] == [
        "Q: Who directed the film Casablanca? A: Michael Curtiz {person}",
        "Q: Who was Michael Curtiz married to, his spouse? A: Bess Meredyth {person}",
        "Q: Where was Bess Meredyth born? A: Buffalo, New York {city}"]
    assert ev["context_tokens"] < 120
    assert res.cost.llm_calls == 1  # the decomposition (write calls are not read cost)
    again = m.read(QUESTION, k=5, backend="panini", trace=True)
    [call] = again.traces["panini"]["llm"]  # the same question again: a cached call
    assert (call["feature"], call["llm_calls"], call["cached_llm_calls"]) == ("decompose", 0, 1)
    assert (again.cost.llm_calls, again.cost.cached_llm_calls) == (0, 1)


def test_rejected_workspace_is_recorded_and_item_stays_in_dense(llm_mem) -> None:
    m, ids, _ = llm_mem
    backend: PaniniBackend = m.backends["panini"]
    status = backend.status(ids["garbage document"])
    assert status is not None and status["status"] == "rejected"
    assert "1 of 1 answer references are unknown" in status["reason"]
    assert m.read("garbage document", k=1, backend="dense").ids == [ids["garbage document"]]
    stats = backend.stats()
    assert stats["docs_ok"] == 4 and stats["docs_rejected"] == 1
    assert stats["write_cost"]["llm_calls"] == 5 + 0  # one call each; garbage is valid JSON


def test_delete_takes_the_workspace_with_it_and_the_chain_dead_ends(llm_mem) -> None:
    m, ids, _ = llm_mem
    backend: PaniniBackend = m.backends["panini"]
    m.delete([ids["Meredyth was born"]])
    assert backend.status(ids["Meredyth was born"]) is None
    assert all(q.item_id != ids["Meredyth was born"] for q in backend.index.qas.values())
    res = m.read(QUESTION, k=5, backend="panini")
    assert ids["Meredyth was born"] not in res.ids
    assert "Buffalo" not in (res.hits[0].evidence["rendered"] if res.hits else "")


def test_scope_is_enforced(tmp_path: Path) -> None:
    m = Memory.open(tmp_path / "s", backends=["panini"], embedder=HashEmbedder(256),
                    llm=scripted(), backend_options={"panini": {"min_score": 0.1}})
    for key, text in TEXTS.items():
        m.write(text, scope={"user": "u2" if "Meredyth" in key else "u1"})
    res = m.read(QUESTION, k=5, scope={"user": "u1"}, backend="panini")
    assert all(h.item.scope.user == "u1" for h in res.hits)
    assert all("Buffalo" not in line for h in res.hits for line in h.evidence["qa_pairs"])
    m.close()


def test_reopen_rebuilds_indexes_from_sqlite_without_llm_calls(tmp_path: Path) -> None:
    llm = scripted()
    with Memory.open(tmp_path / "r", backends=["panini"], embedder=HashEmbedder(256), llm=llm,
                     backend_options={"panini": {"min_score": 0.1}}) as m:
        for text in TEXTS.values():
            m.write(text)
    calls = llm.usage.calls
    with Memory.open(tmp_path / "r", embedder=HashEmbedder(256), llm=llm) as m:
        res = m.read(QUESTION, k=3)
        assert [s["answers"][0] for s in res.hits[0].evidence["chain"]["steps"]][-1] == \
            "Buffalo, New York"
    assert llm.usage.calls == calls + 1  # only the decomposition


def test_without_llm_a_decomposition_can_be_given_and_dead_ends_abstain(tmp_path: Path) -> None:
    llm = scripted()
    with Memory.open(tmp_path / "w", backends=["panini"], embedder=HashEmbedder(256), llm=llm,
                     backend_options={"panini": {"min_score": 0.1}}) as m:
        for text in TEXTS.values():
            m.write(text)
    # hash embeddings are lexical: the first hop's pair scores 0.81 against its sub-question,
    # while the best pair for the dead-end hop ("Which film did Michael Curtiz direct?")
    # scores 0.65, below this memory's min_score
    with Memory.open(tmp_path / "w", embedder=HashEmbedder(256),
                     backend_options={"panini": {"min_score": 0.7}}) as m:
        backend: PaniniBackend = m.backends["panini"]
        assert backend.decompose(QUESTION).mode == "single"
        from memkit.backends.base import AllowedIds

        allowed = AllowedIds(m.store.allowed_ids(__import__("memkit").Scope()))
        dead = ["Who directed the film Casablanca?", "Which zebra did <ENTITY_Q1> paint?"]
        got = backend.retrieve_with_decomposition(QUESTION, dead, 5, allowed=allowed)
        assert got.scored == [] and got.trace["abstained"] is True
        bad = backend.retrieve_with_decomposition(QUESTION, ["Who is <ENTITY_Q4>?"], 5,
                                                  allowed=allowed)
        assert bad.trace["decomposition"]["mode"] == "single"
        assert bad.trace["decomposition"]["fallback"]
        assert isinstance(bad.scored, list)
        # the same through the facade, as a per-read option, with the trace returned
        res = m.read(QUESTION, k=5, backend="panini", trace=True,
                     read_options={"panini": {"decomposition": dead}})
        assert res.hits == [] and res.traces["panini"]["abstained"] is True
        oracle = Decomposition(QUESTION, [], "oracle")
        assert oracle.mode == "oracle"


def test_unavailable_llm_leaves_items_pending_and_retries(tmp_path: Path) -> None:
    from memkit.errors import LLMUnavailable

    class Down(ScriptedLLM):
        def _complete(self, messages, params):  # type: ignore[no-untyped-def]
            raise LLMUnavailable("server down")

        def _complete_constrained(self, messages, params, schema):  # type: ignore
            raise LLMUnavailable("server down")

    with Memory.open(tmp_path / "p", backends=["panini"], embedder=HashEmbedder(256),
                     llm=Down({})) as m:
        iid = m.write(TEXTS["Heat is a 1995 film"])
        assert m.backends["panini"].status(iid)["status"] == "pending"
    with Memory.open(tmp_path / "p", embedder=HashEmbedder(256), llm=scripted()) as m:
        assert m.backends["panini"].status(iid)["status"] == "ok"


def test_llm_reply_without_the_lists_is_retried_then_rejected(tmp_path: Path) -> None:
    llm = ScriptedLLM({"previous reply": ['{"entities": []}'], "Write the document": "{}"})
    with Memory.open(tmp_path / "x", backends=["panini", "dense"], embedder=HashEmbedder(256),
                     llm=llm) as m:
        iid = m.write(TEXTS["Heat is a 1995 film"])
        status = m.backends["panini"].status(iid)
        assert status["status"] == "rejected"
        assert status["reason"].startswith("invalid workspace JSON after a retry")
        assert "verb_phrases" in status["reason"]
        assert status["llm_calls"] == 2
        assert m.read("Heat 1995 film", k=1, backend="dense").ids == [iid]


def test_fill_option_tops_up_abstentions_and_is_labelled(tmp_path: Path) -> None:
    llm = scripted()
    with Memory.open(tmp_path / "f", backends=["panini", "dense"], embedder=HashEmbedder(256),
                     llm=llm) as m:
        for text in TEXTS.values():
            m.write(text)
    for fill, n in (("none", 0), ("dense", 2), ("qa", 2)):
        with Memory.open(tmp_path / "f", embedder=HashEmbedder(256), backend_options={
                "panini": {"min_score": 0.99, "fill": fill}}) as m:
            res = m.read("Who directed the film Heat?", k=2, backend="panini")
            assert len(res.hits) == n
            assert all(h.evidence["fill"] == fill for h in res.hits)
            if fill == "dense":  # the passage itself is the nearest one
                assert "Heat is a 1995 film" in res.hits[0].text


def test_a_panini_read_completes_while_a_write_waits_in_the_llm_writer(tmp_path: Path) -> None:
    """The writer runs in ``prepare`` (no lock readers need), so a slow LLM writer call does
    not hold the panini index: reads of already indexed workspaces go through meanwhile."""
    import threading

    entered, release = threading.Event(), threading.Event()

    def slow_heat(prompt: str) -> str:
        entered.set()
        assert release.wait(30), "the test never released the writer call"
        return DOCS["Heat is a 1995 film"]

    rules: dict[str, object] = {"Split a question": DECOMP}
    rules.update({k: v for k, v in DOCS.items() if k != "Heat is a 1995 film"})
    rules["Heat is a 1995 film"] = slow_heat
    m = Memory.open(tmp_path / "b", backends=["panini"], embedder=HashEmbedder(256),
                    llm=ScriptedLLM(rules), backend_options={"panini": {"min_score": 0.1}})
    try:
        first = m.write(TEXTS["Casablanca is a 1942 film"])
        writer = threading.Thread(target=m.write, args=(TEXTS["Heat is a 1995 film"],))
        writer.start()
        assert entered.wait(30)  # the write is inside its LLM writer call
        # "eventual": a strong read would wait for the blocked write, by design
        res = m.read("Who directed the film Casablanca?", k=1, backend="panini",
                     consistency="eventual", read_options={"panini": {"decomposition": [
                         "Who directed the film Casablanca?"]}})
        assert res.ids == [first]
        assert writer.is_alive()  # the write really was still waiting while we read
        release.set()
        writer.join(30)
        assert not writer.is_alive()
        heat = m.read("Who directed the film Heat?", k=1, backend="panini",
                      read_options={"panini": {"decomposition": ["Who directed the film Heat?"]}})
        assert [h.text for h in heat.hits] == [TEXTS["Heat is a 1995 film"]]
    finally:
        release.set()
        m.close()


def test_prepare_embeds_the_rows_add_stores(tmp_path: Path) -> None:
    """Every string ``add`` attaches a vector to was embedded (into the string cache) by
    ``prepare``: applying the workspaces embeds nothing more."""
    with Memory.open(tmp_path / "e", backends=["panini"], embedder=HashEmbedder(256),
                     llm=scripted()) as m:
        ids = [m.write(TEXTS[k]) for k in ("Casablanca is a 1942 film", "Curtiz was married")]
        backend = m.backends["panini"]
        items = list(m.store.get_many(ids).values())
        backend.remove(ids)  # forget the workspaces and their cached strings
        m.vectors.strings.clear()
        m.vectors.strings.embedded = 0
        prepared = backend.prepare(items)
        strings = m.vectors.strings
        embedded = strings.embedded
        # per document 2 entities + 2 answered QA pairs; "Michael Curtiz" (a person in
        # both) is one string
        assert embedded == 2 * 2 + 2 * 2 - 1
        backend.add(items, prepared)
        assert strings.embedded == embedded  # add served every vector from the cache
        assert backend.stats()["vectors"] == {**backend.stats()["vectors"],
                                              "entities": 4, "qa_pairs": 4}
