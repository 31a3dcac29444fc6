"""Prefilter, ProxyRanker, SifterReranker (through Memory.read) and the working-LLM scorer."""

from __future__ import annotations

import re

import numpy as np
import pytest

from memkit.backends.sifter.prefilter import Unit, prefilter, score_units, select_units, unit_chunks
from memkit.backends.sifter.prompt import PromptConfig, build_messages
from memkit.backends.sifter.rank import ProxyRanker, sift
from memkit.errors import ConfigError
from memkit.llm.fake import ScriptedLLM
from memkit.sifterlab.working import SimulatedWorkingLLM, WorkingAgent, extract_answer


class FixedEmbedder:
    """Query/unit vectors chosen by the test: unit text 'u<i>' -> basis-ish vectors."""

    name = "fixed"
    dim = 3

    def __init__(self, table):
        self.table = table

    def embed(self, texts, progress=False, desc=""):
        return np.array([self.table[t] for t in texts], dtype=np.float32)

    def embed_query(self, text):
        return np.array(self.table[text], dtype=np.float32)


# ----- prefilter -----------------------------------------------------------------------------

def test_select_units_budget_skip_and_max_units():
    # best first: 3 (0.9, 50 tok) 0 (0.8, 30) 2 (0.5, 10) 1 (0.1, 10); budget 60
    assert select_units([0.8, 0.1, 0.5, 0.9], [30, 10, 10, 50], 60) == [3, 2]
    assert select_units([0.8, 0.1, 0.5, 0.9], [30, 10, 10, 50], None, max_units=2) == [3, 0]
    assert select_units([0.8, 0.1, 0.5, 0.9], [30, 10, 10, 50], 0) == []


def test_prefilter_keeps_best_under_budget_in_chronological_order():
    table = {"q": [1, 0, 0], "u0": [0.2, 1, 0], "u1": [0.9, 0.1, 0], "u2": [0.5, 0, 1],
             "u3": [0.95, 0, 0]}
    units = [Unit(f"id{i}", f"u{i}", order=float(10 - i)) for i in range(4)]  # reverse time
    r = prefilter("q", units, FixedEmbedder(table), budget_tokens=3,
                  count_tokens=lambda t: 1)
    assert r.indices == [3, 2, 1]                      # chronological = reverse index
    assert [u.uid for u in r.units] == ["id3", "id2", "id1"]
    assert r.ranking() == [3, 1, 2]                    # embedding-only order, best first
    assert r.tokens == 3


def test_prefilter_must_keep_gold_even_when_it_scores_low():
    table = {"q": [1, 0, 0], "u0": [0.0, 1, 0], "u1": [0.9, 0.1, 0], "u2": [0.5, 0, 1]}
    units = [Unit(i, f"u{i}", order=i) for i in range(3)]
    r = prefilter("q", units, FixedEmbedder(table), budget_tokens=2, count_tokens=lambda t: 1,
                  must_keep=[0])
    assert r.indices == [0, 1]


def test_long_units_scored_by_best_chunk(embedder):
    needle = "zebra quartz violin"
    long_text = " ".join(["filler"] * 400) + " " + needle
    units = [Unit("long", long_text), Unit("short", "apples and pears")]
    scores = score_units(needle, units, embedder)
    assert scores[0] > scores[1]
    assert len(unit_chunks(long_text, max_words=160, overlap=20)) == 3


# ----- prompt + ranker -----------------------------------------------------------------------

def test_prompt_layout_has_indexed_sessions_dates_and_k():
    units = [Unit("a", "Ann: hello", date="1 May"), Unit("b", "Bob: bye")]
    msgs = build_messages("Who said bye?", units, PromptConfig(top_n=10))
    user = msgs[-1]["content"]
    assert msgs[0]["role"] == "system"
    assert "<session0> <date>1 May</date>\nAnn: hello\n</session>" in user
    assert "<session1>\nBob: bye\n</session>" in user
    assert "exactly 2 distinct session numbers" in user and "Who said bye?" in user
    assert user.index("</session>") < user.index("Who said bye?")  # history, then task


def test_ranker_parses_reply_and_reports_cost():
    llm = ScriptedLLM({"Current question": "<think>s2</think><ranking>2,9,2</ranking>"})
    units = [Unit(i, f"text {i}") for i in range(4)]
    r = ProxyRanker(llm, top_n=3).rank("q?", units, fallback=[3, 2, 1, 0])
    assert r.order == [2, 3, 1, 0] and not r.fell_back
    assert r.cost.llm_calls == 1 and r.cost.prompt_tokens > 0
    assert "exactly 3 distinct" in llm.calls[0].prompt


def test_ranker_falls_back_on_garbage_and_skips_trivial_lists():
    llm = ScriptedLLM({}, default="no idea")
    r = ProxyRanker(llm).rank("q?", [Unit(0, "a"), Unit(1, "b")], fallback=[1, 0])
    assert r.fell_back and r.order == [1, 0]
    one = ProxyRanker(llm).rank("q?", [Unit(0, "a")])
    assert one.order == [0] and len(llm.calls) == 1   # no call for a single unit


def test_sift_maps_back_to_original_indices():
    table = {"q": [1, 0, 0], "u0": [0.9, 0, 0], "u1": [0.0, 1, 0], "u2": [0.8, 0, 0]}
    units = [Unit(i, f"u{i}", order=i) for i in range(3)]
    llm = ScriptedLLM({"Current question": "<think></think><ranking>1,0</ranking>"})
    res = sift("q", units, FixedEmbedder(table), ProxyRanker(llm), budget_tokens=2,
               count_tokens=lambda t: 1)
    assert res.prefiltered.indices == [0, 2]
    assert res.indices == [2, 0]


# ----- reranker through the Memory facade ----------------------------------------------------

def _reply_ranking_session_with(word):
    def reply(prompt):
        sessions = re.findall(r"<session(\d+)>[^\n]*\n(.*?)\n</session>", prompt, re.DOTALL)
        hit = [int(i) for i, text in sessions if word in text]
        rest = [int(i) for i, _ in sessions if int(i) not in hit]
        return f"<think>look for {word}</think><ranking>{','.join(map(str, hit + rest))}</ranking>"
    return reply


def test_memory_read_with_sifter_rerank(mem):
    for i in range(6):
        mem.write(f"note {i} about the garden and plants")
    target = mem.write("the spare key is under the blue flowerpot in the garden")
    llm = ScriptedLLM({"Current question": _reply_ranking_session_with("flowerpot")})
    res = mem.read("garden", k=3, rerank="sifter",
                   rerank_options={"llm": llm, "candidates": 10})
    assert res.hits[0].id == target
    assert res.hits[0].evidence["sifter_rank"] == 1
    assert len(res.hits) == 3 and res.cost.llm_calls == 1
    prompt = llm.calls[0].prompt
    assert "<date>" in prompt and prompt.count("<session") == 7


def test_sifter_rerank_uses_memory_llm_by_default_and_needs_one(mem):
    mem.write("alpha")
    mem.write("beta")
    with pytest.raises(ConfigError):
        mem.read("alpha", k=2, rerank="sifter")


def test_sifter_reranker_budget_keeps_best_hits_then_chronological(mem):
    from memkit.backends.sifter.rerank import SifterReranker

    ids = [mem.write(f"fact number {i} " + "word " * 30) for i in range(4)]
    hits = mem.read("fact", k=4).hits
    llm = ScriptedLLM({"Current question": "<think></think><ranking>0</ranking>"})
    rr = SifterReranker(mem, llm=llm, budget_tokens=90)
    reranked = rr.rerank("fact", hits, k=4)
    out = reranked.hits
    kept_ids = {h.id for h in hits[:2]}            # 41 tokens each: two fit in 90
    assert {h.id for h in out} == kept_ids and set(kept_ids) <= set(ids)
    shown = re.findall(r"fact number (\d)", llm.calls[0].prompt)
    created = sorted(hits[:2], key=lambda h: (h.item.created_at, h.id))
    assert shown == [h.text.split()[2] for h in created]
    assert reranked.cost.llm_calls == 1


# ----- working LLM ---------------------------------------------------------------------------

def test_extract_answer():
    assert extract_answer("<answer>Oslo</answer> extra") == "Oslo"
    assert extract_answer("reasoning <answer>Oslo") == "Oslo"
    assert extract_answer("plain") == "plain"


def test_simulated_working_llm_and_cache():
    gold = Unit("g", "Ann moved to Oslo in 2020.")
    other = Unit("o", "Bob likes chess.")
    sim = SimulatedWorkingLLM([("Where did Ann move?", "Oslo", [gold.text]),
                               ("Where did Ann move?", "Rome", ["Ann moved to Rome."])])
    agent = WorkingAgent(sim)
    s = agent.scores("Where did Ann move?", "Oslo", [[], [other], [other, gold], [other, gold]])
    assert s == [0.0, 0.0, 1.0, 1.0]
    assert agent.calls == 3 and agent.cache_hits == 0   # duplicate request answered once
    agent.scores("Where did Ann move?", "Oslo", [[other, gold]])
    assert agent.cache_hits == 1 and sim.usage.calls == 3
