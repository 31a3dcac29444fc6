"""Decomposition: LLM (scripted), validation and fallback to a single hop, MuSiQue oracle."""

from __future__ import annotations

import json

from memkit.decomposition import (
    decompose_llm,
    from_musique,
    musique_subquestion,
    single_hop,
)
from memkit.llm.base import estimate_prompt_tokens, estimate_tokens
from memkit.llm.fake import ScriptedLLM

GOOD = json.dumps({"questions": [
    {"question": "Who directed Casablanca?", "requires_retrieval": "true"},
    {"question": "Who is the spouse of <ENTITY_Q1>?", "requires_retrieval": True}]})


def test_llm_decomposition_is_validated_into_a_dag() -> None:
    llm = ScriptedLLM({"Split a question": GOOD})
    d = decompose_llm(llm, "Who is the spouse of the director of Casablanca?")
    assert d.mode == "llm" and d.fallback is None
    assert [s.deps for s in d.questions] == [(), (0,)]
    assert d.questions[0].requires_retrieval is True
    assert d.cost["llm_calls"] == 1
    assert d.cost["prompt_tokens"] == estimate_prompt_tokens(llm.calls[0].messages)
    assert d.cost["completion_tokens"] == estimate_tokens(GOOD)


def test_missing_placeholder_falls_back_to_single_hop() -> None:
    bad = json.dumps({"questions": [{"question": "Who is <ENTITY_Q3>?"}]})
    d = decompose_llm(ScriptedLLM({"Split": bad}), "Who wrote Dune?")
    assert d.mode == "single" and [s.text for s in d.questions] == ["Who wrote Dune?"]
    assert "ENTITY_Q3" in (d.fallback or "")


def test_unparseable_reply_after_retry_falls_back() -> None:
    llm = ScriptedLLM({"Split|previous reply": "no json here"})
    d = decompose_llm(llm, "Who wrote Dune?")
    assert d.mode == "single" and d.fallback and "unusable" in d.fallback
    assert llm.usage.calls == 2  # the call and its one retry


def test_single_hop_and_musique_oracle() -> None:
    assert single_hop(" Who? ").questions[0].text == "Who?"
    hops = [{"question": "Van Hook Township >> located in the administrative territorial entity"},
            {"question": "#1 >> capital"}]
    d = from_musique("q", hops)
    assert d.mode == "oracle"
    assert [s.text for s in d.questions] == [
        "Van Hook Township located in the administrative territorial entity what?",
        "What is the capital of <ENTITY_Q1>?"]
    assert d.questions[1].deps == (0,)
    assert musique_subquestion("who played #1 in #2") == "who played <ENTITY_Q1> in <ENTITY_Q2>?"
