"""The read-time LLM features of hipporag, one flag each: query decomposition (seeds per
sub-question, the bridge to a later hop), the recognition filter per read, and their cost
(calls and tokens per feature in the trace, summed in the read's cost)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.errors import ConfigError, InvalidInput
from memkit.llm.base import estimate_prompt_tokens, estimate_tokens
from memkit.llm.fake import ScriptedLLM

# (text, entities, triples): a 2-hop chain (Casablanca -> its director -> his spouse) and
# distractors that share no entity with it
PASSAGES = [
    ("Casablanca is a 1942 film directed by Michael Curtiz.",
     ["Casablanca", "Michael Curtiz"], [["Casablanca", "directed by", "Michael Curtiz"]]),
    ("Michael Curtiz was married to Bess Meredyth.",
     ["Michael Curtiz", "Bess Meredyth"], [["Michael Curtiz", "married to", "Bess Meredyth"]]),
    ("Ingrid Bergman was married to Roberto Rossellini.",
     ["Ingrid Bergman", "Roberto Rossellini"],
     [["Ingrid Bergman", "married to", "Roberto Rossellini"]]),
    ("Humphrey Bogart starred in The Maltese Falcon.",
     ["Humphrey Bogart", "The Maltese Falcon"],
     [["Humphrey Bogart", "starred in", "The Maltese Falcon"]]),
]
QUESTION = "Who was the spouse of the director of Casablanca?"
SUBQ = json.dumps({"questions": [
    {"question": "Who directed Casablanca?", "requires_retrieval": True},
    {"question": "Who was the spouse of <ENTITY_Q1>?", "requires_retrieval": True}]})
# seeds from the phrases each (sub-)question names, no fact channel, no passage weights:
# the reset vector is the seeds alone, so every weight below is hand-computable
PHRASE_SEEDS = {"use_facts": False, "query_phrase_weight": 1.0, "dense_seed_passages": 0,
                "passage_node_weight": 0.0, "decompose_bridge_passages": 1,
                "bridge_weight": 0.5}


def _openie(kind: str) -> Any:
    def reply(prompt: str) -> str:
        for text, ents, triples in PASSAGES:
            if text in prompt:
                return json.dumps({"named_entities": ents} if kind == "ner"
                                  else {"triples": triples})
        raise AssertionError(f"no scripted passage in {prompt[:80]!r}")
    return reply


def scripted(decompose: Any = SUBQ, filt: Any = None) -> ScriptedLLM:
    replies: dict[str, Any] = {r"Split a question": decompose}
    if filt is not None:
        replies[r"(?m)^Question:"] = filt  # also its retry (the whole conversation)
    replies[r"triple list"] = _openie("triples")
    replies[r"named_entities|named entities"] = _openie("ner")
    return ScriptedLLM(replies)


def memory(llm: ScriptedLLM, **opts: Any) -> tuple[Memory, list[int]]:
    mem = Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64), llm=llm,
                      backend_options={"hipporag": {"extractor": "llm", **opts}})
    ids = [mem.write(text) for text, _, _ in PASSAGES]
    return mem, ids


def read(mem: Memory, query: str = QUESTION, **ro: Any) -> Any:
    res = mem.read(query, k=4, backend="hipporag", trace=True,
                   read_options={"hipporag": ro})
    return res, res.traces["hipporag"]


def test_decomposition_seeds_each_hop_and_bridges_to_the_second() -> None:
    llm = scripted()
    mem, ids = memory(llm, filter=False, **PHRASE_SEEDS)
    plain, tp = read(mem)
    # the question names only Casablanca (1 passage): weight 1/1
    assert tp["seed_phrases"] == [("casablanca", 1.0)]
    assert "decomposition" not in tp and tp.get("llm", []) == []
    res, tr = read(mem, decompose=True)
    assert tr["decomposition"]["mode"] == "llm" and tr["decomposition"]["fallback"] is None
    hop1, hop2 = tr["hops"]
    assert hop1["seed_phrases"] == [("casablanca", 1.0)]
    # hop 1's best passage (the film) names Casablanca (a seed) and Michael Curtiz: the
    # bridge gives Curtiz 0.5 x 1 / 2 passages = 0.25 and fills the placeholder; the filled
    # text then names Curtiz: + 1 / 2 passages
    assert hop2["bridge_phrases"] == ["michael curtiz"]
    assert hop2["text"] == "Who was the spouse of michael curtiz?"
    assert hop2["seed_phrases"] == [("michael curtiz", 0.75)]
    # one walk from the mean of the hops' normalised reset vectors
    assert tr["seed_phrases"] == [("casablanca", 0.5), ("michael curtiz", 0.5)]
    ranked = [h.item.id for h in res.hits]
    assert ranked[:2] == [ids[0], ids[1]]  # the answer passage second, before distractors
    assert res.hits[1].score > plain.hits[1].score  # more mass reaches the 2-hop answer
    assert res.cost.llm_calls == 1 and plain.cost.llm_calls == 0
    again, ta = read(mem, decompose=True)  # the memory's LLM cache answers the same prompt
    assert (again.cost.llm_calls, again.cost.cached_llm_calls) == (0, 1)
    assert ta["llm"][0]["cached_llm_calls"] == 1 and ta["seed_phrases"] == tr["seed_phrases"]


def test_decomposition_as_a_backend_option_and_per_read_off() -> None:
    mem, _ = memory(scripted(), filter=False, decompose=True, **PHRASE_SEEDS)
    _, on = read(mem)
    _, off = read(mem, decompose=False)
    assert on["decomposition"]["mode"] == "llm" and "decomposition" not in off


@pytest.mark.parametrize("reply, reason", [
    ("this is not json at all", "decomposition output unusable"),
    (json.dumps({"questions": [{"question": "Who is <ENTITY_Q2>?"}, {"question": "x"}]}),
     "sub-question 1 refers to <ENTITY_Q2>, which is not an earlier sub-question"),
    (json.dumps({"questions": [{"question": QUESTION}]}), "a single retrieval hop"),
])
def test_unusable_decomposition_falls_back_to_the_plain_read(reply: str, reason: str) -> None:
    llm = scripted(decompose=reply)
    mem, _ = memory(llm, filter=False, **PHRASE_SEEDS)
    plain, _ = read(mem)
    n = len(llm.calls)
    res, tr = read(mem, decompose=True)
    assert tr["decomposition"]["fallback"].startswith(reason)
    assert "hops" not in tr
    assert [(h.item.id, h.score) for h in res.hits] == [(h.item.id, h.score)
                                                       for h in plain.hits]
    spent = llm.calls[n:]  # unparseable output is asked once more, then given up
    assert len(spent) == (2 if reason.startswith("decomposition output") else 1)
    assert res.cost.llm_calls == len(spent)


KEEP = json.dumps({"fact": [["Michael Curtiz", "married to", "Bess Meredyth"]]})


def test_filter_per_read_switches_which_facts_seed() -> None:
    llm = scripted(filt=KEEP)
    mem, _ = memory(llm)  # the paper defaults: the filter on (the backend's default)
    res, on = read(mem, "Who was Michael Curtiz married to?")
    assert on["facts"] == ["Michael Curtiz married to Bess Meredyth"]
    assert on["filter_kept"] == 1
    assert [e["feature"] for e in on["llm"]] == ["filter"] and res.cost.llm_calls == 1
    res_off, off = read(mem, "Who was Michael Curtiz married to?", filter=False)
    assert len(off["facts"]) == 4 and "llm" not in off  # the top facts, unfiltered
    assert res_off.cost.llm_calls == 0
    # and a backend with the filter off switched on for one read
    mem2, _ = memory(scripted(filt=KEEP), filter=False)
    _, on2 = read(mem2, "Who was Michael Curtiz married to?", filter=True)
    assert on2["facts"] == ["Michael Curtiz married to Bess Meredyth"]


def test_filter_on_the_llm_free_defaults_adds_the_fact_channel() -> None:
    mem, ids = memory(scripted(filt=KEEP), defaults="llm_free")
    _, plain = read(mem, "Who was Michael Curtiz married to?")
    assert "facts" not in plain and "llm" not in plain  # LLM-free: no facts, no filter
    res, tr = read(mem, "Who was Michael Curtiz married to?", filter=True)
    assert tr["facts"] == ["Michael Curtiz married to Bess Meredyth"]
    assert dict(tr["seed_phrases"])["bess meredyth"] > 0  # only the kept fact names her
    assert "bess meredyth" not in dict(plain["seed_phrases"]) or \
        dict(plain["seed_phrases"])["bess meredyth"] < dict(tr["seed_phrases"])["bess meredyth"]
    # a filter that keeps nothing leaves the other channels seeding (no dense fallback)
    mem2, _ = memory(scripted(filt='{"fact": []}'), defaults="llm_free")
    res2, tr2 = read(mem2, "Who was Michael Curtiz married to?", filter=True)
    assert tr2["facts"] == [] and tr2["mode"] == "graph" and tr2["seed_phrases"]


def test_filter_output_unusable_keeps_the_top_facts_with_the_reason() -> None:
    mem, _ = memory(scripted(filt="no json here"))
    res, tr = read(mem, "Who was Michael Curtiz married to?")
    assert tr["filter_error"].startswith("LLMOutputError")
    assert len(tr["facts"]) == 4 and res.cost.llm_calls == 2  # the call and its retry


def test_cost_counts_each_features_calls_and_tokens() -> None:
    llm = scripted(filt=lambda prompt: KEEP if "curtiz" in prompt.split("Facts:")[0].lower()
                   else '{"fact": [["Casablanca", "directed by", "Michael Curtiz"]]}')
    mem, _ = memory(llm, filter=True, **{**PHRASE_SEEDS, "use_facts": True})
    n = len(llm.calls)
    res, tr = read(mem, decompose=True)
    calls = llm.calls[n:]
    # one decomposition call, then one filter call per retrieval hop
    assert [e["feature"] for e in tr["llm"]] == ["decompose", "filter", "filter"]
    assert [e["query"] for e in tr["llm"]] == [QUESTION, "Who directed Casablanca?",
                                                "Who was the spouse of michael curtiz?"]
    assert len(calls) == 3 and res.cost.llm_calls == 3
    prompt = [estimate_prompt_tokens(c.messages) for c in calls]
    replies = [SUBQ, '{"fact": [["Casablanca", "directed by", "Michael Curtiz"]]}', KEEP]
    assert [e["prompt_tokens"] for e in tr["llm"]] == prompt
    assert [e["completion_tokens"] for e in tr["llm"]] == [estimate_tokens(r)
                                                           for r in replies]
    assert res.cost.prompt_tokens == sum(prompt)
    assert res.cost.completion_tokens == sum(estimate_tokens(r) for r in replies)


def test_decompose_needs_an_llm() -> None:
    mem = Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                      backend_options={"hipporag": {"extractor": "rules"}})
    mem.write("Casablanca is a 1942 film directed by Michael Curtiz.")
    with pytest.raises(InvalidInput, match="needs an LLM"):
        mem.read(QUESTION, backend="hipporag", read_options={"hipporag": {"decompose": True}})
    with pytest.raises(ConfigError, match="needs an LLM"):
        Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64),
                    backend_options={"hipporag": {"extractor": "rules", "decompose": True}})


def test_llm_openie_cost_is_counted_at_index_time() -> None:
    llm = scripted()
    mem, _ = memory(llm, filter=False)
    spent = mem.backends["hipporag"].extraction_cost
    assert spent.llm_calls == len(llm.calls) == 2 * len(PASSAGES)  # NER + triples each
    assert spent.prompt_tokens == sum(estimate_prompt_tokens(c.messages) for c in llm.calls)


def test_decomposed_read_over_an_openai_compatible_server() -> None:
    """The same decomposed read with memkit's OpenAI-compatible client against a real HTTP
    server (scripted chat completions): the cost is the server's reported usage."""
    from openai_server import reply, serving  # tests/openai_server.py

    from memkit.llm import OpenAICompatible

    ner, triples = _openie("ner"), _openie("triples")

    def route(h: Any, body: dict[str, Any]) -> None:
        text = body["messages"][-1]["content"]
        content = SUBQ if "Split a question" in text else \
            triples(text) if "triple list" in text else ner(text)
        n = len(h.server.script.requests)  # the usage of request n: 100 + n prompt tokens
        reply(content, {"prompt_tokens": 100 + n, "completion_tokens": 7})(h, body)

    with serving() as srv:
        srv.script.default = route
        llm = OpenAICompatible(f"http://127.0.0.1:{srv.server_port}/v1/", "test-model",
                               timeout=5.0, max_retries=0)
        mem = Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64), llm=llm,
                          backend_options={"hipporag": {"extractor": "llm", "filter": False,
                                                        **PHRASE_SEEDS}})
        ids = [mem.write(text) for text, _, _ in PASSAGES]
        n = len(srv.script.requests)
        assert n == 2 * len(PASSAGES)  # OpenIE over HTTP: NER + triples per passage
        res, tr = read(mem, decompose=True)
        assert len(srv.script.requests) == n + 1
        assert "Split a question" in srv.script.requests[-1]["messages"][-1]["content"]
    assert tr["hops"][1]["text"] == "Who was the spouse of michael curtiz?"
    assert tr["seed_phrases"] == [("casablanca", 0.5), ("michael curtiz", 0.5)]
    assert [h.item.id for h in res.hits][:2] == [ids[0], ids[1]]
    assert (res.cost.llm_calls, res.cost.prompt_tokens, res.cost.completion_tokens) == \
        (1, 100 + n + 1, 7)
    assert tr["llm"] == [{"feature": "decompose", "query": QUESTION, "llm_calls": 1,
                          "cached_llm_calls": 0, "prompt_tokens": 100 + n + 1,
                          "completion_tokens": 7}]


def test_which_retrieval_options_a_read_gets() -> None:
    from memkit.backends.hipporag.options import (
        HippoRAGOptions,
        HippoRAGReadOptions,
        llm_free_defaults,
        retrieval_options,
    )

    def ro(has_llm: bool, backend: dict[str, Any], read: dict[str, Any] | None = None) -> Any:
        return retrieval_options(HippoRAGOptions(**backend), has_llm,
                                 None if read is None else HippoRAGReadOptions(**read))

    paper = ro(True, {})
    assert (paper.use_filter, paper.use_facts, paper.decompose) == (True, True, False)
    assert ro(True, {}, {"filter": False}).use_filter is False
    assert ro(True, {"filter": False}, {"filter": True}).use_filter is True  # the read wins
    assert ro(True, {"filter": False}, {"damping": 0.7}).use_filter is False
    assert ro(False, {}, {"filter": True}).use_filter is False  # never without an LLM
    free = ro(True, {"defaults": "llm_free"})
    assert (free.use_filter, free.use_facts) == (False, False)
    assert free.query_phrase_weight == llm_free_defaults()["query_phrase_weight"]
    on = ro(True, {"defaults": "llm_free"}, {"filter": True})
    assert (on.use_filter, on.use_facts) == (True, True)  # the filter brings the facts
    assert on.dense_seed_passages == llm_free_defaults()["dense_seed_passages"]
    assert ro(True, {"defaults": "llm_free", "use_facts": False}, {"filter": True}).use_facts \
        is False  # unless use_facts was set
    assert ro(True, {"decompose": True}).decompose is True
    assert ro(True, {"decompose": True}, {"decompose": False}).decompose is False


def test_the_flags_parse_from_the_eval_command_line() -> None:
    from memkit.backends.hipporag.options import HippoRAGReadOptions
    from memkit.eval.cli import _nested

    got = _nested({}, ("hipporag.decompose=true", "hipporag.filter=false"))
    assert got == {"hipporag": {"decompose": True, "filter": False}}
    opts = HippoRAGReadOptions(**got["hipporag"])
    assert (opts.decompose, opts.filter) == (True, False)  # type: ignore[attr-defined]


def test_a_scoped_decomposed_read_sees_only_its_scope() -> None:
    llm = scripted()
    mem = Memory.open(None, backends=["hipporag"], embedder=HashEmbedder(64), llm=llm,
                      backend_options={"hipporag": {"extractor": "llm", "filter": False,
                                                    **PHRASE_SEEDS}})
    mem.write(PASSAGES[0][0], scope="studio")  # the only passage naming Casablanca
    rest = [mem.write(text, scope="press") for text, _, _ in PASSAGES[1:]]
    res = mem.read(QUESTION, k=4, backend="hipporag", scope="press", trace=True,
                   read_options={"hipporag": {"decompose": True}})
    tr = res.traces["hipporag"]
    # hop 1 names no phrase the scope sees, so it finds nothing to bridge to hop 2
    hop1, hop2 = tr["hops"]
    assert hop1["seed_phrases"] == [] and "bridge_phrases" not in hop2
    assert hop2["text"] == "Who was the spouse of ?"
    assert hop2["seed_phrases"] == [] and tr["mode"] == "dense"  # nothing seeds: dense
    assert tr["fallback"] == "hop 1: no seed phrase; hop 2: no seed phrase"
    assert {h.item.id for h in res.hits} <= set(rest)
