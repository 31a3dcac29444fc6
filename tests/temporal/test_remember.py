"""Memory.remember: turns, facts, contradictions (rules and a scripted LLM), bad input."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pgtools import memory_target

from memkit import Memory
from memkit.conversation import ledger
from memkit.conversation.turns import MAX_TURNS
from memkit.embed import HashEmbedder
from memkit.errors import ConfigError, InvalidInput, LLMOutputError
from memkit.llm.fake import ScriptedLLM

ANN = {"user": "ann"}


def _mem(llm: object = None) -> Memory:
    return Memory.open(memory_target(), embedder=HashEmbedder(dim=64), llm=llm)  # type: ignore[arg-type]


def _say(mem: Memory, text: str, at: str, **kw: object) -> object:
    return mem.remember([{"role": "user", "name": "Ann", "content": text, "at": at}], ANN,
                        **kw)  # type: ignore[arg-type]


def _facts(mem: Memory, **read: object) -> list[str]:
    hits = mem.read("Ann", k=100, scope=ANN, **read)  # type: ignore[arg-type]
    return sorted(h.text for h in hits if h.item.metadata.get("kind") == "fact")


def test_turns_keep_speaker_session_and_event_time() -> None:
    with _mem() as mem:
        report = mem.remember([
            {"role": "user", "name": "Ann", "content": "Hello there", "at": "2023-05-08T10:00Z"},
            {"role": "assistant", "content": "Hi Ann!"},
        ], ANN, session="s1", at="2023-05-08T09:00:00Z", facts="off")
        first, second = (mem.get(i) for i in report.turns)
        assert first.text == "[2023-05-08 10:00] Ann: Hello there"
        assert second.text == "[2023-05-08 09:00] assistant: Hi Ann!"
        assert first.scope.session == "s1" and first.scope.user == "ann"
        assert first.event_from == datetime(2023, 5, 8, 10, tzinfo=UTC).timestamp()
        assert second.event_from == datetime(2023, 5, 8, 9, tzinfo=UTC).timestamp()
        assert first.metadata["speaker"] == "Ann" and second.metadata["role"] == "assistant"
        assert first.metadata["turn"] == 0 and second.metadata["session"] == "s1"
        assert report.facts == []
        # the same conversation again: nothing new (resumable)
        again = mem.remember([{"role": "user", "name": "Ann", "content": "Hello there",
                               "at": "2023-05-08T10:00Z"}], ANN, session="s1", facts="off")
        assert again.turns == report.turns[:1] and mem.stats()["items"] == 2


def test_contradiction_invalidates_audits_and_reverts() -> None:
    with _mem() as mem:
        first = _say(mem, "I live in Paris.", "2020-01-01")
        paris = first.facts[0]  # type: ignore[attr-defined]
        assert mem.get(paris).metadata["source_turns"] == first.turns  # type: ignore[attr-defined]
        assert ledger.sources_of(mem.store, paris) == first.turns  # type: ignore[attr-defined]
        moved = _say(mem, "I just moved to Lyon.", "2024-03-01")
        lyon = moved.facts[0]  # type: ignore[attr-defined]
        assert moved.invalidated[0] == paris  # type: ignore[attr-defined]
        # nothing deleted: the Paris fact has a new version ending at Lyon's event time
        chain = mem.versions(paris)
        assert [v.text for v in chain] == [chain[0].text] * 2
        assert chain[-1].event_until == mem.get(lyon).event_from
        row = mem.audit(chain[-1].id)[0]
        assert row["reason"] == "contradicted"
        assert row["detail"]["invalidated_by"] == lyon and row["detail"]["supersedes"] == paris
        assert "single-valued relation 'lives in'" in row["detail"]["explanation"]
        assert _facts(mem) == ["Ann lives in Lyon. (as of 2024-03-01)"]
        assert _facts(mem, valid_at="2022-01-01") == ["Ann lives in Paris. (as of 2020-01-01)"]
        # the turn that said Paris ended with its only fact
        hits = mem.read("Paris", k=100, scope=ANN)
        assert all("Paris" not in h.text for h in hits)
        old = mem.read("Paris", k=100, scope=ANN, valid_at="2022-01-01")
        assert any(h.invalidated and "Paris" in h.text for h in old)
        # revert: Paris holds again, as a new version
        mem.revert(paris)
        assert "Ann lives in Paris. (as of 2020-01-01)" in _facts(mem)
        assert mem.audit(mem.versions(paris)[-1].id)[0]["reason"] == "revert"


def test_re_adding_a_fact_is_a_no_op_and_never_deletes() -> None:
    with _mem() as mem:
        first = _say(mem, "I work at Google.", "2023-01-01")
        before = mem.stats()["versions"]
        again = _say(mem, "I work for Google.", "2023-06-01")
        assert again.facts == [] and again.duplicates == first.facts  # type: ignore[attr-defined]
        assert again.decisions[0]["action"] == "duplicate"  # type: ignore[attr-defined]
        assert mem.stats()["versions"] == before + 1  # only the new turn
        assert all(r["op"] in ("write", "update") for r in mem.audit(limit=1000))
        assert mem.get(first.facts[0]).is_current  # type: ignore[attr-defined]


def test_a_fact_learnt_late_slots_into_the_past() -> None:
    with _mem() as mem:
        _say(mem, "I live in Lyon.", "2024-01-01")
        late = _say(mem, "I moved to Berlin.", "2019-01-01")  # told now, true back then
        berlin = mem.get(late.facts[0])  # type: ignore[attr-defined]
        assert berlin.event_until == datetime(2024, 1, 1, tzinfo=UTC).timestamp()
        assert late.invalidated == []  # type: ignore[attr-defined]
        assert _facts(mem) == ["Ann lives in Lyon. (as of 2024-01-01)"]
        assert _facts(mem, valid_at="2020-01-01") == ["Ann lives in Berlin. (as of 2019-01-01)"]


def test_multi_valued_relations_never_contradict() -> None:
    with _mem() as mem:
        _say(mem, "I visited Rome.", "2020-01-01")
        _say(mem, "I visited Oslo.", "2021-01-01")
        assert len(_facts(mem)) == 2


def test_contradictions_off_keeps_both() -> None:
    with _mem() as mem:
        _say(mem, "I live in Paris.", "2020-01-01", contradictions="off")
        rep = _say(mem, "I live in Lyon.", "2021-01-01", contradictions="off")
        assert rep.invalidated == [] and len(_facts(mem)) == 2  # type: ignore[attr-defined]


def _judge_all(prompt: str) -> str:
    """Says every listed fact is contradicted, plus an id that is not listed (ignored)."""
    import re

    return json.dumps({"contradicted": [int(i) for i in re.findall(r"^\[(\d+)\]", prompt,
                                                                     re.M)] + [999]})


def _llm(judge: object) -> ScriptedLLM:
    def extract(prompt: str) -> str:
        city = "Lyon" if "Lyon" in prompt else "Paris"
        return json.dumps({"facts": [{"text": f"Ann lives in {city}.", "subject": "Ann",
                                      "relation": "resides", "object": city, "turns": [0],
                                      "single_valued": True}]})
    return ScriptedLLM({r"Which of the listed facts": judge,  # type: ignore[dict-item]
                        r"Extract the lasting": extract})


def test_llm_mode_extracts_with_a_schema_and_the_judge_decides() -> None:
    with _mem(_llm(_judge_all)) as mem:
        first = _say(mem, "Paris is home.", "2020-01-01")
        assert _facts(mem) == ["Ann lives in Paris. (as of 2020-01-01)"]
        second = _say(mem, "Off to Lyon now", "2024-01-01")
        # the fact, then the turn it came from (its only fact has ended)
        assert second.invalidated == [*first.facts, *first.turns]  # type: ignore[attr-defined]
        assert _facts(mem) == ["Ann lives in Lyon. (as of 2024-01-01)"]
        llm = mem.llm.inner if hasattr(mem.llm, "inner") else mem.llm  # type: ignore[union-attr]
        calls = [c for c in llm.calls if c.json_schema is not None]
        assert {c.json_schema.__name__ for c in calls} == {"ExtractedFacts", "Judgement"}
        row = mem.audit(mem.versions(first.facts[0])[-1].id)[0]  # type: ignore[attr-defined]
        assert row["detail"]["explanation"].startswith("the LLM judge")


def test_llm_judge_saying_no_keeps_both() -> None:
    with _mem(_llm('{"contradicted": []}')) as mem:
        _say(mem, "Paris is home.", "2020-01-01")
        rep = _say(mem, "Off to Lyon now", "2024-01-01")
        assert rep.invalidated == [] and len(_facts(mem)) == 2  # type: ignore[attr-defined]


def test_llm_naming_a_turn_that_is_not_there_stores_nothing() -> None:
    bad = json.dumps({"facts": [{"text": "x", "subject": "a", "relation": "b", "object": "c",
                                 "turns": [7], "single_valued": False}]})
    with _mem(ScriptedLLM({r"Extract": bad})) as mem:
        with pytest.raises(LLMOutputError, match="turn"):
            _say(mem, "hello", "2020-01-01")
        assert mem.stats()["versions"] == 0
    with _mem() as mem, pytest.raises(ConfigError, match="needs an LLM"):
        _say(mem, "hello", "2020-01-01", facts="llm")


@pytest.mark.parametrize(("messages", "error"), [
    ([{"content": "hi"}], r"messages\[0\]\.role: missing"),
    ([{"role": "user", "content": "   "}], r"messages\[0\]\.content is empty"),
    ([{"role": "user"}], r"messages\[0\]\.content: missing"),
    ([{"role": "robot", "content": "x"}], r"messages\[0\]\.role: must be one of"),
    ([{"role": "user", "content": "x", "at": "2023-02-30"}], r"messages\[0\]\.at: .*not a valid"),
    ([{"role": "user", "content": "x", "at": "last tuesday"}], r"messages\[0\]\.at: .*ISO 8601"),
    ([{"role": "user", "content": "ok", "at": "2023-01-01T10:00"},
      {"role": "user", "content": "x", "at": "2023-01-01T11:00+02:00"}],
     r"messages\[1\]\.at has a timezone but messages\[0\]\.at has none"),
    ([{"role": "user", "content": "x", "mood": "happy"}], r"unknown field"),
    (["just a string"], r"messages\[0\]: must be a dict"),
    ("I live in Paris", r"messages must be a list"),
    ([], r"messages is empty"),
])
def test_bad_messages_are_named_and_nothing_is_stored(messages: object, error: str) -> None:
    with _mem() as mem:
        mem.write("unrelated", ANN)
        with pytest.raises(InvalidInput, match=error):
            mem.remember([{"role": "user", "content": "I live in Paris."}] * 0 +
                         messages if isinstance(messages, list) else messages,  # type: ignore
                         ANN)
        assert mem.stats()["versions"] == 1


def test_one_bad_message_among_good_ones_stores_none_and_lists_all() -> None:
    good = {"role": "user", "name": "Ann", "content": "I live in Paris."}
    with _mem() as mem:
        with pytest.raises(InvalidInput, match=r"2 bad message\(s\).*messages\[1\].*"
                                               r"messages\[3\]"):
            mem.remember([good, {"role": "user", "content": ""}, good, {"role": 3}], ANN)
        assert mem.stats()["versions"] == 0


def test_huge_conversation_is_refused_before_anything_is_stored() -> None:
    turn = {"role": "user", "content": "la"}
    with _mem() as mem:
        t0 = time.perf_counter()
        with pytest.raises(InvalidInput, match=f"more than {MAX_TURNS} turns"):
            mem.remember([turn] * (MAX_TURNS + 1), ANN)
        assert mem.stats()["versions"] == 0
        assert time.perf_counter() - t0 < 60  # guard against a hang, not a speed claim


CITIES = ["Paris", "Lyon", "Berlin", "Oslo"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(CITIES), st.integers(0, 12)), min_size=1,
                max_size=8), st.lists(st.integers(-1, 13), min_size=1, max_size=4))
def test_contradictions_agree_with_the_latest_fact_model(stream: list[tuple[str, int]],
                                                         probes: list[int]) -> None:
    """Facts about one key arriving in any order: at event time e the single value that holds
    is the one with the latest time <= e (ties: the later arrival); as_of sees the prefix."""
    def model(prefix: list[tuple[str, int]], e: int) -> set[str]:
        before = [(t, n, c) for n, (c, t) in enumerate(prefix) if t <= e]
        return {max(before)[2]} if before else set()

    with _mem() as mem:
        marks = []
        for city, year in stream:
            _say(mem, f"I live in {city}.", f"{2000 + year}-01-01")
            marks.append(time.time())
            time.sleep(0.002)
        versions = mem.stats()["versions"]
        for e in probes:
            when = f"{2000 + e}-06-01" if e >= 0 else "1999-06-01"
            got = {f.split(" in ")[1].split(".")[0] for f in _facts(mem, valid_at=when)}
            assert got == model(stream, e), (stream, e)
            k = len(stream) // 2
            got_then = {f.split(" in ")[1].split(".")[0]
                        for f in _facts(mem, valid_at=when, as_of=marks[k])}
            assert got_then == model(stream[:k + 1], e)
        assert all(r["op"] != "delete" for r in mem.audit(limit=10_000))
        assert mem.stats()["versions"] == versions


def test_a_fact_said_again_resumes_after_a_late_contradiction() -> None:
    """Lyon in 2000 and again in 2001; then (told late) Paris in 2000: Paris holds in 2000,
    Lyon again from its 2001 mention (a continuation item)."""
    with _mem() as mem:
        _say(mem, "I live in Lyon.", "2000-01-01")
        _say(mem, "I live in Lyon.", "2001-01-01")
        late = _say(mem, "I live in Paris.", "2000-01-01")
        actions = [d["action"] for d in late.decisions]  # type: ignore[attr-defined]
        assert actions[:3] == ["added", "invalidated", "continued"]
        assert _facts(mem, valid_at="2000-06-01") == ["Ann lives in Paris. (as of 2000-01-01)"]
        assert _facts(mem, valid_at="2001-06-01") == ["Ann lives in Lyon. (as of 2001-01-01)"]
        assert _facts(mem) == ["Ann lives in Lyon. (as of 2001-01-01)"]
