"""OpenTelemetry spans for a memory's writes, reads and LLM calls, without touching memkit's
code: :func:`traced` wraps a Memory in a proxy, :func:`traced_llm` wraps an LLM.

Needs the [otel] extra (``opentelemetry-api``; add ``opentelemetry-sdk`` and an exporter to
see the spans). Span attributes never contain memory text, queries or prompts unless
``record_text=True``; ids, counts, scores, costs and timings are always recorded.

>>> from opentelemetry.sdk.trace import TracerProvider
>>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
>>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
>>> from memkit import Memory
>>> from memkit.embed import HashEmbedder
>>> exporter = InMemorySpanExporter()
>>> provider = TracerProvider()
>>> provider.add_span_processor(SimpleSpanProcessor(exporter))
>>> mem = traced(Memory.open(None, embedder=HashEmbedder()), tracer_provider=provider)
>>> _ = mem.write("Alice moved to Paris.")
>>> _ = mem.read("Where is Alice?", k=1)
>>> [s.name for s in exporter.get_finished_spans()]
['memkit.write', 'memkit.read.dense', 'memkit.read']

Spans: ``memkit.write`` / ``put`` / ``write_many`` / ``update`` / ``delete`` / ``forget`` /
``answer`` / ``read``; under ``memkit.read``, one ``memkit.read.<backend>`` per backend and
``memkit.read.rerank``, timed from ``ReadResult.timings`` (placed one after another inside the
read; ``memkit.timing_source`` says so). With ``per_backend=True`` the proxy instead wraps the
memory's backend objects, giving live ``memkit.index.<backend>`` spans (add / remove, under the
write that caused them) and ``memkit.retrieve.<backend>`` spans. ``memkit.llm.complete``
spans (from :func:`traced_llm`) carry the model, tokens and whether the reply was cached, with
the usual ``gen_ai.*`` attribute names.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

from memkit._deps import require
from memkit.llm.base import LLM, Completion, GenParams, Message
from memkit.memory import Memory
from memkit.types import ReadResult, Scope

require("opentelemetry.trace", "otel", "OpenTelemetry tracing")

from opentelemetry import trace  # noqa: E402
from opentelemetry.trace import Status, StatusCode  # noqa: E402

__all__ = ["TracedLLM", "TracedMemory", "traced", "traced_llm"]

_TRACER_NAME = "memkit"


def _tracer(provider: Any) -> Any:
    return trace.get_tracer(_TRACER_NAME, tracer_provider=provider)


def _scope_attrs(scope: Any) -> dict[str, Any]:
    try:
        s = Scope.coerce(scope)
    except Exception:  # an invalid scope: memkit raises inside the span
        return {}
    return {"memkit.scope.namespace": s.namespace}


class TracedMemory:
    """A :class:`memkit.Memory` whose operations each open a span; anything else passes
    through to the memory (``traced.memory`` is the wrapped one)."""

    def __init__(self, memory: Memory, *, tracer_provider: Any = None,
                 record_text: bool = False, per_backend: bool = False) -> None:
        self.memory = memory
        self.record_text = record_text
        self._tracer = _tracer(tracer_provider)
        self.per_backend = per_backend
        if per_backend:
            for name, backend in list(memory.backends.items()):
                if not isinstance(backend, _TracedBackend):
                    wrapped = _TracedBackend(name, backend, self)
                    memory.backends[name] = wrapped  # type: ignore[assignment]
                    memory.indexer.replace(name, wrapped)  # type: ignore[arg-type]
        for op in ("write", "put", "write_many", "update", "delete", "forget", "answer",
                   "read"):
            setattr(self, op, self._wrap(op))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.memory, name)

    def __enter__(self) -> TracedMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.memory.close()

    def _text_attrs(self, key: str, text: Any) -> dict[str, Any]:
        if not isinstance(text, str):
            return {}
        out: dict[str, Any] = {f"memkit.{key}_chars": len(text)}
        if self.record_text:
            out[f"memkit.{key}"] = text
        return out

    def _wrap(self, op: str) -> Callable[..., Any]:
        method = getattr(self.memory, op)

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            attrs = self._before(op, args, kwargs)
            with self._tracer.start_as_current_span(f"memkit.{op}", attributes=attrs,
                                                    record_exception=True) as span:
                start = time.time_ns()
                result = method(*args, **kwargs)
                self._after(op, span, result, start)
                return result

        return call

    def _before(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        attrs: dict[str, Any] = {"memkit.op": op}
        if op in ("write", "put"):
            attrs.update(self._text_attrs("text", args[0] if args else kwargs.get("text")))
            attrs.update(_scope_attrs(args[1] if len(args) > 1 else kwargs.get("scope")))
        elif op in ("read", "answer"):
            attrs.update(self._text_attrs("query", args[0] if args else
                                          kwargs.get("query", kwargs.get("question"))))
            attrs["memkit.k"] = int(args[1] if len(args) > 1 else kwargs.get("k", 5))
            attrs.update(_scope_attrs(args[2] if len(args) > 2 else kwargs.get("scope")))
            backend = kwargs.get("backend")
            names = backend if isinstance(backend, str) or backend is None else ",".join(backend)
            attrs["memkit.backend"] = names or self.memory.config.backends[0]
            if kwargs.get("rerank"):
                attrs["memkit.rerank"] = str(kwargs["rerank"])
            if kwargs.get("as_of") is not None:
                attrs["memkit.as_of"] = float(kwargs["as_of"])
        elif op == "update":
            attrs["memkit.item_id"] = int(args[0] if args else kwargs["item_id"])
            attrs.update(self._text_attrs("text", args[1] if len(args) > 1 else
                                          kwargs.get("text")))
        elif op == "delete":
            ids = args[0] if args else kwargs.get("ids")
            attrs["memkit.item_ids"] = [int(ids)] if isinstance(ids, int) else \
                [int(i) for i in ids or []]
        elif op == "forget":
            attrs["memkit.policy"] = str(args[0] if args else kwargs.get("policy", "ttl"))
        return attrs

    def _after(self, op: str, span: Any, result: Any, start_ns: int) -> None:
        if op == "write":
            span.set_attribute("memkit.item_id", int(result))
        elif op == "put":
            span.set_attribute("memkit.item_id", int(result.id))
            span.set_attribute("memkit.created", bool(result.created))
        elif op == "write_many":
            span.set_attribute("memkit.added", len(result.added))
            span.set_attribute("memkit.skipped_duplicates", result.skipped_duplicates)
            span.set_attribute("memkit.rejected", len(result.rejected))
        elif op == "update":
            span.set_attribute("memkit.new_id", int(result))
        elif op in ("delete", "forget"):
            span.set_attribute("memkit.removed_ids", [int(i) for i in result])
        elif op == "read":
            self._read_attrs(span, result, start_ns)

    def _read_attrs(self, span: Any, result: ReadResult, start_ns: int) -> None:
        span.set_attribute("memkit.hits", len(result.hits))
        span.set_attribute("memkit.hit_ids", [int(h.item.id) for h in result.hits])
        span.set_attribute("memkit.hit_scores", [float(h.score) for h in result.hits])
        cost = result.cost
        for field in ("ms", "llm_calls", "prompt_tokens", "completion_tokens", "embed_calls"):
            span.set_attribute(f"memkit.cost.{field}", getattr(cost, field))
        if self.per_backend:
            return
        at = start_ns
        for name, ms in result.timings.items():
            dur = int(ms * 1e6)
            child = self._tracer.start_span(f"memkit.read.{name}", start_time=at, attributes={
                "memkit.backend" if name != "rerank" else "memkit.stage": name,
                "memkit.duration_ms": float(ms), "memkit.timing_source": "ReadResult.timings"})
            child.end(end_time=at + dur)
            at += dur


class _TracedBackend:
    """A backend object with spans around add / remove / retrieve (per_backend=True)."""

    def __init__(self, name: str, backend: Any, owner: TracedMemory) -> None:
        self._name, self._backend, self._owner = name, backend, owner

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._backend, attr)

    def _span(self, kind: str, **attrs: Any) -> Any:
        return self._owner._tracer.start_as_current_span(
            f"memkit.{kind}.{self._name}", attributes={"memkit.backend": self._name, **attrs},
            record_exception=True)

    def prepare(self, items: Sequence[Any]) -> Any:
        with self._span("index", **{"memkit.op": "prepare", "memkit.items": len(items)}):
            return self._backend.prepare(items)

    def add(self, items: Sequence[Any], prepared: Any = None) -> None:
        with self._span("index", **{"memkit.op": "add", "memkit.items": len(items)}):
            self._backend.add(items, prepared)

    def remove(self, ids: Sequence[int]) -> None:
        with self._span("index", **{"memkit.op": "remove", "memkit.items": len(ids)}):
            self._backend.remove(ids)

    def retrieve(self, query: str, k: int, **kwargs: Any) -> Any:
        with self._span("retrieve", **{"memkit.k": k}) as span:
            out = self._backend.retrieve(query, k, **kwargs)
            span.set_attribute("memkit.results", len(out.scored))
            return out


def traced(memory: Memory, *, tracer_provider: Any = None, record_text: bool = False,
           per_backend: bool = False) -> TracedMemory:
    """``memory`` with a span around each operation (see the module docstring)."""
    return TracedMemory(memory, tracer_provider=tracer_provider, record_text=record_text,
                        per_backend=per_backend)


class TracedLLM(LLM):
    """An LLM whose calls each open a ``memkit.llm.complete`` span (model, tokens, cached,
    latency; the prompt and reply only with ``record_text``)."""

    def __init__(self, inner: LLM, *, tracer_provider: Any = None,
                 record_text: bool = False) -> None:
        super().__init__(inner.model)
        self.inner, self.record_text = inner, record_text
        self._tracer = _tracer(tracer_provider)

    def _complete(self, messages: list[Message], params: GenParams) -> Completion:
        return self._complete_batch([messages], params, None)[0]

    def _complete_batch(self, batch: list[list[Message]], params: GenParams,
                        schema: Any) -> list[Completion]:
        spans = [self._tracer.start_span("memkit.llm.complete", attributes={
            "gen_ai.request.model": self.inner.model,
            "gen_ai.request.max_tokens": params.max_tokens,
            "gen_ai.request.temperature": params.temperature,
            "memkit.llm.constrained": schema is not None}) for _ in batch]
        try:
            out = self.inner.complete_many(batch, temperature=params.temperature,  # type: ignore[arg-type]
                                           max_tokens=params.max_tokens, stop=params.stop,
                                           seed=params.seed, json_schema=schema)
        except Exception as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.end()
            raise
        for span, messages, c in zip(spans, batch, out, strict=True):
            span.set_attribute("gen_ai.response.model", c.model)
            span.set_attribute("gen_ai.usage.input_tokens", c.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", c.completion_tokens)
            span.set_attribute("memkit.llm.cached", c.cached)
            span.set_attribute("memkit.llm.latency_ms", c.latency_ms)
            if self.record_text:
                span.set_attribute("memkit.llm.prompt", messages[-1]["content"])
                span.set_attribute("memkit.llm.reply", c.text)
            span.end()
        return list(out)


def traced_llm(llm: LLM, *, tracer_provider: Any = None, record_text: bool = False) -> TracedLLM:
    """``llm`` with a span per call; pass it to ``Memory.open(..., llm=traced_llm(llm))``
    (the memory's call cache then sits in front: only calls that reach the model are spanned)."""
    return TracedLLM(llm, tracer_provider=tracer_provider, record_text=record_text)
