"""OpenTelemetry spans from traced(memory) / traced_llm(llm), read with the SDK's in-memory
span exporter: names, nesting, attributes, and no memory text unless asked for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the [otel] extra")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from memkit import Memory  # noqa: E402
from memkit.embed import HashEmbedder  # noqa: E402
from memkit.errors import InvalidInput  # noqa: E402
from memkit.integrations.otel import traced, traced_llm  # noqa: E402
from memkit.llm import ScriptedLLM  # noqa: E402
from memkit.tools import ToolDispatcher  # noqa: E402

SECRET = "Alice's PIN is 4471."


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def dump(exporter: InMemorySpanExporter) -> str:
    return json.dumps([{"name": s.name, "attrs": dict(s.attributes or {})}
                       for s in exporter.get_finished_spans()], default=str)


def test_write_read_manage_spans_without_text(tmp_path: Path, spans: Any) -> None:
    provider, exporter = spans
    with traced(Memory.open(tmp_path / "m", backends=["dense", "hipporag"],
                            embedder=HashEmbedder(64),
                            backend_options={"hipporag": {"extractor": "rules"}}),
                tracer_provider=provider) as mem:
        iid = mem.write(SECRET, scope={"namespace": "bank", "user": "u1"})
        mem.write_many(["Bob likes tea.", "", "Bob likes tea."])
        res = mem.read("What is Alice's PIN?", k=2, scope={"namespace": "bank"},
                       backend=["dense", "hipporag"])
        new = mem.update(iid, "Alice's PIN changed.")
        mem.delete([new])
        with pytest.raises(InvalidInput):
            mem.read("", k=1)
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    assert set(by_name) >= {"memkit.write", "memkit.write_many", "memkit.read",
                            "memkit.read.dense", "memkit.read.hipporag", "memkit.update",
                            "memkit.delete"}
    w = by_name["memkit.write"].attributes
    assert w["memkit.item_id"] == iid and w["memkit.text_chars"] == len(SECRET)
    assert w["memkit.scope.namespace"] == "bank"
    many = by_name["memkit.write_many"].attributes
    assert (many["memkit.added"], many["memkit.skipped_duplicates"], many["memkit.rejected"]) \
        == (1, 1, 1)
    read = [s for s in exporter.get_finished_spans() if s.name == "memkit.read"]
    ok, failed = read
    assert list(ok.attributes["memkit.hit_ids"]) == res.ids
    assert ok.attributes["memkit.backend"] == "dense,hipporag" and ok.attributes["memkit.k"] == 2
    assert ok.attributes["memkit.cost.ms"] > 0
    for child in ("memkit.read.dense", "memkit.read.hipporag"):
        span = by_name[child]
        assert span.parent is not None and span.parent.span_id == ok.context.span_id
        assert ok.start_time <= span.start_time <= span.end_time <= ok.end_time
    assert failed.status.status_code.name == "ERROR"
    assert by_name["memkit.delete"].attributes["memkit.removed_ids"] == (iid, new)
    assert "PIN" not in dump(exporter) and "tea" not in dump(exporter)


def test_record_text_and_per_backend_spans(spans: Any) -> None:
    provider, exporter = spans
    mem = traced(Memory.open(None, backends=["dense", "hipporag"], embedder=HashEmbedder(64),
                             backend_options={"hipporag": {"extractor": "rules"}}),
                 tracer_provider=provider, record_text=True, per_backend=True)
    mem.write(SECRET)
    mem.read("Alice PIN", k=1, backend="hipporag")
    finished = exporter.get_finished_spans()
    names = [s.name for s in finished]
    # indexing is two-phase: prepare (embed/extract, no reader waits) then add
    assert names[:5] == ["memkit.index.dense"] * 2 + ["memkit.index.hipporag"] * 2 + [
        "memkit.write"]
    assert [s.attributes["memkit.op"] for s in finished[:4]] == ["prepare", "add"] * 2
    write = finished[4]
    assert all(s.parent.span_id == write.context.span_id for s in finished[:4])  # type: ignore[union-attr]
    assert write.attributes["memkit.text"] == SECRET
    retrieve = next(s for s in finished if s.name == "memkit.retrieve.hipporag")
    assert retrieve.attributes["memkit.results"] == 1
    assert next(s for s in finished if s.name == "memkit.read").attributes["memkit.query"] == \
        "Alice PIN"
    mem.close()


def test_llm_spans_carry_tokens_and_no_prompt_by_default(spans: Any) -> None:
    provider, exporter = spans
    llm = traced_llm(ScriptedLLM({"capital": "Paris"}), tracer_provider=provider)
    assert llm.complete(f"{SECRET} What is the capital of France?").text == "Paris"
    assert [c.text for c in llm.complete_many(["capital?", "capital!"])] == ["Paris", "Paris"]
    with pytest.raises(Exception, match="no scripted reply|unmatched|LLM"):
        llm.complete("something else")
    finished = exporter.get_finished_spans()
    assert [s.name for s in finished] == ["memkit.llm.complete"] * 4
    first = finished[0].attributes
    assert first["gen_ai.request.model"] == "scripted" and first["gen_ai.usage.input_tokens"] > 0
    assert first["gen_ai.usage.output_tokens"] >= 1 and first["memkit.llm.cached"] is False
    assert finished[3].status.status_code.name == "ERROR"
    assert "PIN" not in dump(exporter)
    exporter.clear()
    loud = traced_llm(ScriptedLLM({"capital": "Paris"}), tracer_provider=provider,
                      record_text=True)
    loud.complete("capital of France?")
    assert exporter.get_finished_spans()[0].attributes["memkit.llm.reply"] == "Paris"


def test_a_traced_memory_used_by_the_tool_dispatcher_stays_confined(spans: Any) -> None:
    provider, _ = spans
    mem = traced(Memory.open(None, embedder=HashEmbedder(64)), tracer_provider=provider)
    other = mem.write("u2's note", scope={"user": "u2"})
    tools = ToolDispatcher(mem, scope={"user": "u1"})
    assert "NotFound" in tools.execute({"name": "forget", "arguments": {"ids": [other]}})["error"]
    assert mem.get(other).text == "u2's note"


def test_llm_spans_nest_under_the_memory_operation_behind_its_cache(spans: Any) -> None:
    provider, exporter = spans
    llm = traced_llm(ScriptedLLM({}, default='{"answer": "Paris [1]", "cited_ids": [1]}'),
                     tracer_provider=provider)
    mem = traced(Memory.open(None, embedder=HashEmbedder(64), llm=llm), tracer_provider=provider)
    mem.write("Alice moved to Paris.")
    mem.answer("Where did Alice move?", k=1)
    mem.answer("Where did Alice move?", k=1)  # the memory's call cache answers this one
    finished = exporter.get_finished_spans()
    answers = [s for s in finished if s.name == "memkit.answer"]
    calls = [s for s in finished if s.name == "memkit.llm.complete"]
    assert len(answers) == 2 and len(calls) == 1
    assert calls[0].parent is not None and calls[0].parent.span_id == answers[0].context.span_id
    mem.close()
