"""The LLM protocol on the scripted fake: prompts, usage, complete_json and its retry."""

from __future__ import annotations

import threading

import pydantic
import pytest

from memkit.errors import InvalidInput, LLMError, LLMOutputError
from memkit.llm import GenParams, ScriptedLLM, Usage
from memkit.llm.base import (
    LLM,
    Completion,
    Message,
    apply_stop,
    estimate_prompt_tokens,
    estimate_tokens,
    to_messages,
)


class Entities(pydantic.BaseModel):
    named_entities: list[str]


class Triples(pydantic.BaseModel):
    triples: list[tuple[str, str, str]]


class Person(pydantic.BaseModel):
    name: str
    age: int


# ----- prompts, params, usage ----------------------------------------------------------------


def test_string_prompt_becomes_one_user_message() -> None:
    llm = ScriptedLLM({"hello": "hi"})
    llm.complete("hello there")
    assert llm.calls[0].messages == [{"role": "user", "content": "hello there"}]


def test_messages_pass_through_and_bad_roles_rejected() -> None:
    msgs = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hello"}]
    llm = ScriptedLLM({"hello": "hi"})
    llm.complete(msgs)
    assert llm.calls[0].messages == msgs
    with pytest.raises(InvalidInput):
        llm.complete([{"role": "robot", "content": "x"}])
    with pytest.raises(InvalidInput):
        llm.complete([])
    with pytest.raises(InvalidInput):
        to_messages([{"role": "user", "content": 3}])  # type: ignore[dict-item]


def test_params_reach_the_backend() -> None:
    llm = ScriptedLLM({"x": "y"})
    llm.complete("x", temperature=0.7, max_tokens=9, stop=["\n"], seed=None)
    assert llm.calls[0].params == GenParams(0.7, 9, ("\n",), None)
    assert GenParams(stop="END").stop == ("END",)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        GenParams(temperature=-1)
    with pytest.raises(InvalidInput):
        GenParams(max_tokens=0)


def test_stop_sequences_cut_the_reply() -> None:
    llm = ScriptedLLM({"count": "one, two. three"})
    assert llm.complete("count", stop=[".", ","]).text == "one"
    assert apply_stop("abc", []) == "abc"
    assert apply_stop("abc", ["", "z"]) == "abc"


def test_usage_totals_use_the_documented_estimate() -> None:
    llm = ScriptedLLM({"q": "abcdefgh"})  # 8 chars -> 2 tokens
    llm.complete("q")  # prompt "q": 1 token + 4 per message = 5
    llm.complete_many(["q", "q"])
    assert (llm.usage.calls, llm.usage.prompt_tokens, llm.usage.completion_tokens) == (3, 15, 6)
    assert llm.usage.cached_calls == 0
    before = llm.usage.copy()
    llm.complete("q")
    assert llm.usage - before == Usage(calls=1, prompt_tokens=5, completion_tokens=2)
    assert before.calls == 3  # the snapshot did not move
    assert estimate_tokens("abcdefghi") == 2  # memkit.tokens.approx_tokens: 9 // 4
    assert estimate_prompt_tokens([{"role": "user", "content": "abcd"}]) == 5


def test_complete_many_keeps_order_and_rejects_a_bare_string() -> None:
    llm = ScriptedLLM({r"(\d+)": lambda p: f"echo {p}"})
    out = llm.complete_many([f"{i}" for i in range(5)])
    assert [c.text for c in out] == [f"echo {i}" for i in range(5)]
    assert llm.complete_many([]) == []
    with pytest.raises(InvalidInput):
        llm.complete_many("abc")


def test_latency_is_measured() -> None:
    assert ScriptedLLM({"x": "y"}).complete("x").latency_ms > 0


# ----- ScriptedLLM -------------------------------------------------------------------------


def test_scripted_matches_last_user_message_first_then_whole_prompt() -> None:
    llm = ScriptedLLM({"alpha": "A", "system-only": "S"})
    sys_msg: Message = {"role": "system", "content": "system-only alpha"}
    # the last user message matches nothing; the whole prompt matches "alpha" first
    assert llm.complete([sys_msg, {"role": "user", "content": "zzz"}]).text == "A"
    # the last user message matches "system-only" before the whole prompt is considered
    assert llm.complete([sys_msg, {"role": "user", "content": "system-only"}]).text == "S"


def test_scripted_unmatched_raises_naming_the_prompt_or_returns_default() -> None:
    with pytest.raises(LLMError, match="What is love"):
        ScriptedLLM({"x": "y"}).complete("What is love? Baby don't hurt me")
    assert ScriptedLLM({"x": "y"}, default="dunno").complete("What").text == "dunno"


def test_scripted_list_replies_are_consumed_in_order() -> None:
    llm = ScriptedLLM({"q": ["first", "second"]})
    assert [llm.complete("q").text for _ in range(2)] == ["first", "second"]
    with pytest.raises(LLMError, match="ran out"):
        llm.complete("q")


def test_scripted_is_thread_safe() -> None:
    llm = ScriptedLLM({"q": "a"})

    def work() -> None:
        for _ in range(50):
            llm.complete("q")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(llm.calls) == 200 and llm.usage.calls == 200


# ----- complete_json -----------------------------------------------------------------------


def test_json_valid_first_try() -> None:
    llm = ScriptedLLM({"entities": '{"named_entities": ["Alice", "Paris"]}'})
    out = llm.complete_json("List the entities", Entities)
    assert out == Entities(named_entities=["Alice", "Paris"])
    assert len(llm.calls) == 1
    assert llm.calls[0].json_schema is Entities  # backends may constrain decoding


def test_json_repairable_reply_needs_no_retry() -> None:
    reply = 'Sure!\n```json\n{"triples": [["Alice", "lives in", "Paris"],],}\n```'
    llm = ScriptedLLM({"triples": reply})
    assert llm.complete_json("Extract triples", Triples).triples == [("Alice", "lives in", "Paris")]
    assert len(llm.calls) == 1


def test_json_bare_value_is_wrapped_for_a_one_field_schema() -> None:
    llm = ScriptedLLM({"entities": '["Alice", "Bob"]'})
    assert llm.complete_json("entities?", Entities).named_entities == ["Alice", "Bob"]


def test_json_invalid_then_fixed_on_retry_shows_the_error() -> None:
    llm = ScriptedLLM({"person": ['{"name": "Ann", "age": "old"}', '{"name": "Ann", "age": 41}']})
    assert llm.complete_json("Describe the person", Person) == Person(name="Ann", age=41)
    assert len(llm.calls) == 2
    retry = llm.calls[1].messages
    assert retry[0] == {"role": "user", "content": "Describe the person"}
    assert retry[1] == {"role": "assistant", "content": '{"name": "Ann", "age": "old"}'}
    assert retry[2]["role"] == "user"
    assert "age" in retry[2]["content"] and "valid integer" in retry[2]["content"]
    assert '"required"' in retry[2]["content"]  # the JSON schema is shown
    assert llm.usage.calls == 2


def test_json_unparseable_then_fixed_on_retry() -> None:
    llm = ScriptedLLM(
        {
            r"could not be used: no JSON value": '{"named_entities": []}',
            "entities": "I think the entities are Alice and Bob.",
        }
    )
    assert llm.complete_json("entities?", Entities) == Entities(named_entities=[])
    assert "no JSON value could be recovered" in llm.calls[1].prompt


def test_json_invalid_twice_raises_with_raw() -> None:
    llm = ScriptedLLM({"person": ['{"name": "Ann"}', '{"name": "Ann", "age": null}']})
    with pytest.raises(LLMOutputError, match="after a retry") as info:
        llm.complete_json("person?", Person)
    assert info.value.raw == '{"name": "Ann", "age": null}'
    assert len(llm.calls) == 2  # exactly one retry


@pytest.mark.parametrize(
    "reply",
    [
        '{"triples": [["Alice", "lives in"]]}',  # arity 2
        '{"triples": [["Alice", "lives in", "Paris", "France"]]}',  # arity 4
        '{"triples": "Alice lives in Paris"}',  # wrong type
        '{"tuples": [["a", "b", "c"]]}',  # wrong key
    ],
)
def test_json_schema_violations_are_errors(reply: str) -> None:
    llm = ScriptedLLM({"triples": reply})
    with pytest.raises(LLMOutputError, match="Triples") as info:
        llm.complete_json("triples?", Triples)
    assert info.value.raw == reply


def test_json_many_batches_retries_and_returns_errors_in_place() -> None:
    llm = ScriptedLLM(
        {
            r"could not be used": lambda p: "still bad",
            r"^doc0$": '{"named_entities": ["A"]}',
            r"^doc1$": "nope",
            r"^doc2$": '{"named_entities": ["C"]}',
        }
    )
    out = llm.complete_json_many(["doc0", "doc1", "doc2"], Entities, errors="return")
    assert out[0] == Entities(named_entities=["A"])
    assert isinstance(out[1], LLMOutputError) and out[1].raw == "still bad"
    assert out[2] == Entities(named_entities=["C"])
    assert len(llm.calls) == 4  # three first tries + one retry
    with pytest.raises(LLMOutputError):
        llm.complete_json_many(["doc0", "doc1"], Entities)
    with pytest.raises(InvalidInput):
        llm.complete_json_many(["doc0"], Entities, errors="ignore")  # type: ignore[call-overload]


def test_json_passes_generation_params() -> None:
    llm = ScriptedLLM({"x": '{"named_entities": []}'})
    llm.complete_json("x", Entities, max_tokens=33, temperature=0.5)
    assert llm.calls[0].params == GenParams(0.5, 33, (), 0)


class _Counting(LLM):
    """A minimal backend: only _complete is implemented."""

    def __init__(self) -> None:
        super().__init__("counting")

    def _complete(self, messages: list[Message], params: GenParams) -> Completion:
        return Completion(str(len(messages)), 7, 3, self.model)


def test_minimal_backend_gets_every_method() -> None:
    llm = _Counting()
    assert llm.complete("x").text == "1"
    assert [c.text for c in llm.complete_many(["a", "b"])] == ["1", "1"]
    with pytest.raises(LLMOutputError):
        llm.complete_json("x", Person)  # "1" then "3" (retry conversation has 3 messages)
    assert llm.usage.calls == 5 and llm.usage.prompt_tokens == 35
    assert repr(llm) == "_Counting(model='counting')"
