"""The LLM protocol: one abstract method, the convenient ones built on it.

A backend implements ``_complete(messages, params) -> Completion``. Everything else --
prompt normalisation, usage accounting, batching, JSON output with repair and one retry --
lives here, so every backend (HTTP server, llama.cpp, transformers, vLLM, the scripted fake,
the SQLite cache) behaves the same at the boundary.

>>> from memkit.llm.fake import ScriptedLLM
>>> llm = ScriptedLLM({r"capital of France": "Paris"})
>>> llm.complete("What is the capital of France?").text
'Paris'
>>> llm.usage.calls
1

Hooks a backend may override (all optional):

- ``_complete_batch(batch, params, schema)`` -- run several prompts at once (a thread pool, an
  engine batch); the default runs them one after another.
- ``_complete_constrained(messages, params, schema)`` -- generation constrained to a JSON schema
  (llama.cpp grammar, OpenAI ``response_format``); the default ignores the schema.

Token counts come from the backend when it reports them, else from :func:`estimate_tokens`.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar, overload

import pydantic

from memkit.errors import InvalidInput, LLMOutputError
from memkit.llm.jsonrepair import parse_json_lenient
from memkit.metering import charge_llm, llm_call
from memkit.tokens import approx_tokens

Message = dict[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""

Prompt = str | list[Message]
"""A prompt: a plain string (sent as one user message) or a list of chat messages."""

ROLES = ("system", "user", "assistant")
M = TypeVar("M", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class GenParams:
    """Generation parameters. ``seed=None`` means "no fixed seed"."""

    temperature: float = 0.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise InvalidInput(f"temperature must be >= 0, got {self.temperature}")
        if self.max_tokens < 1:
            raise InvalidInput(f"max_tokens must be >= 1, got {self.max_tokens}")
        if isinstance(self.stop, str):  # a lone string is one stop sequence, not its characters
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))


@dataclass
class Completion:
    """One model reply and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    cached: bool = False
    latency_ms: float = 0.0
    finish_reason: str | None = None


@dataclass
class Usage:
    """Running totals of an LLM's calls. Cache hits count in ``cached_calls`` only."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_calls: int = 0

    def copy(self) -> Usage:
        """A snapshot of the totals (subtract two snapshots to cost one operation)."""
        return replace(self)

    def __sub__(self, other: Usage) -> Usage:
        """Totals accrued since the ``other`` snapshot.

        >>> (Usage(3, 30, 9, 1) - Usage(1, 10, 4, 1))
        Usage(calls=2, prompt_tokens=20, completion_tokens=5, cached_calls=0)
        """
        return Usage(
            self.calls - other.calls,
            self.prompt_tokens - other.prompt_tokens,
            self.completion_tokens - other.completion_tokens,
            self.cached_calls - other.cached_calls,
        )

    def add(self, completion: Completion) -> None:
        """Count one completion (callers hold the owning LLM's lock)."""
        if completion.cached:
            self.cached_calls += 1
            return
        self.calls += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens


def estimate_tokens(text: str) -> int:
    """A backend-free token estimate: memkit's one estimate, :func:`memkit.tokens.approx_tokens`.

    >>> estimate_tokens(""), estimate_tokens("abcd"), estimate_tokens("one two three")
    (0, 1, 3)
    """
    return approx_tokens(text)


def estimate_prompt_tokens(messages: list[Message]) -> int:
    """Estimate of a chat prompt: :func:`estimate_tokens` of each content + 4 per message."""
    return sum(estimate_tokens(m["content"]) + 4 for m in messages)


def to_messages(prompt: Prompt) -> list[Message]:
    """Normalise a prompt to a list of chat messages, checking roles and contents.

    >>> to_messages("hi")
    [{'role': 'user', 'content': 'hi'}]
    """
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise InvalidInput("a prompt is a string or a non-empty list of {role, content} dicts")
    out: list[Message] = []
    for i, msg in enumerate(prompt):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            raise InvalidInput(f"message {i} must be a dict with role in {ROLES}, got {msg!r}")
        content = msg.get("content")
        if not isinstance(content, str):
            raise InvalidInput(f"message {i} content must be a string, got {type(content)}")
        out.append({"role": msg["role"], "content": content})
    return out


def apply_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the earliest stop sequence (for backends that cannot stop by themselves).

    >>> apply_stop("a b. c d.", [". c"])
    'a b'
    """
    cut = len(text)
    for s in stop:
        if s:
            pos = text.find(s)
            if pos != -1:
                cut = min(cut, pos)
    return text[:cut]


PLAIN_STOPS = ("\nuser:", "\nsystem:")
"""Stop sequences for :func:`render_plain` prompts: the model starting the next turn."""


def render_plain(messages: list[Message]) -> str:
    """Prompt for a base model without a chat template: ``role: content`` lines, then
    ``assistant:``.

    >>> render_plain([{"role": "system", "content": "Be brief."},
    ...               {"role": "user", "content": "Hi"}])
    'system: Be brief.\\nuser: Hi\\nassistant:'
    """
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def schema_json(schema: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The JSON schema of a pydantic model (what grammar/JSON modes and retry prompts show)."""
    return schema.model_json_schema()


def validate_json_text(text: str, schema: type[M]) -> M:
    """Parse ``text`` leniently and validate it against ``schema``.

    Raises :class:`LLMOutputError` (with ``raw=text``) whose message says what is wrong. When
    the schema has exactly one field and the model replied with a bare value for it (e.g. a
    list instead of ``{"items": [...]}``), the value is wrapped in that field before giving up.
    """
    data = parse_json_lenient(text)  # raises LLMOutputError
    try:
        return schema.model_validate(data)
    except pydantic.ValidationError as exc:
        fields = list(schema.model_fields)
        if len(fields) == 1 and not isinstance(data, dict):
            try:
                return schema.model_validate({fields[0]: data})
            except pydantic.ValidationError:
                pass
        raise LLMOutputError(
            f"reply does not match schema {schema.__name__}: {_describe(exc)}", raw=text
        ) from exc


def _describe(exc: pydantic.ValidationError, limit: int = 8) -> str:
    """Compact one-line description of a pydantic validation error."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def retry_messages(
    messages: list[Message], reply: str, error: str, schema: type[pydantic.BaseModel]
) -> list[Message]:
    """The conversation for the one JSON retry: the bad reply, then what was wrong with it."""
    return [
        *messages,
        {"role": "assistant", "content": reply},
        {
            "role": "user",
            "content": (
                f"Your previous reply could not be used: {error[:1500]}\n"
                "Reply again with only a JSON value (no prose, no code fences) matching this "
                f"JSON schema:\n{json.dumps(schema_json(schema), ensure_ascii=False)}"
            ),
        },
    ]


class LLM(ABC):
    """A language model behind one method. Subclasses call ``super().__init__(model)``.

    ``model`` identifies the model in cache keys and reports; ``usage`` holds running totals.
    """

    model: str
    usage: Usage

    def __init__(self, model: str) -> None:
        self.model = model
        self.usage = Usage()
        self._usage_lock = threading.Lock()

    @abstractmethod
    def _complete(self, messages: list[Message], params: GenParams) -> Completion:
        """Generate one reply. ``messages`` are validated; ``params`` are final."""

    # ----- hooks -------------------------------------------------------------------------

    def _complete_constrained(
        self, messages: list[Message], params: GenParams, schema: type[pydantic.BaseModel]
    ) -> Completion:
        """Generate a reply constrained to ``schema`` where the backend can; default: ignore it."""
        return self._complete(messages, params)

    def _complete_batch(
        self,
        batch: list[list[Message]],
        params: GenParams,
        schema: type[pydantic.BaseModel] | None,
    ) -> list[Completion]:
        """Generate replies for several prompts, in order. Default: one after another."""
        return [self._complete_one(m, params, schema) for m in batch]

    def _complete_one(
        self,
        messages: list[Message],
        params: GenParams,
        schema: type[pydantic.BaseModel] | None,
    ) -> Completion:
        """One generation, timed (used by batch implementations)."""
        start = time.perf_counter()
        if schema is None:
            out = self._complete(messages, params)
        else:
            out = self._complete_constrained(messages, params, schema)
        if not out.latency_ms:
            out = replace(out, latency_ms=(time.perf_counter() - start) * 1000.0)
        return out

    # ----- public API --------------------------------------------------------------------

    def complete(
        self,
        prompt: Prompt,
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        stop: Sequence[str] = (),
        seed: int | None = 0,
        json_schema: type[pydantic.BaseModel] | None = None,
    ) -> Completion:
        """Generate one reply to ``prompt`` (a string or chat messages).

        ``json_schema`` asks backends that support constrained decoding to emit JSON matching
        it; others ignore it (use :meth:`complete_json` to get a validated object).
        """
        return self.complete_many(
            [prompt],
            temperature=temperature,
            max_tokens=max_tokens,
            stop=stop,
            seed=seed,
            json_schema=json_schema,
        )[0]

    def complete_many(
        self,
        prompts: Sequence[Prompt],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        stop: Sequence[str] = (),
        seed: int | None = 0,
        json_schema: type[pydantic.BaseModel] | None = None,
    ) -> list[Completion]:
        """Generate one reply per prompt, in the order given.

        Backends may run the prompts concurrently (bounded). If any prompt fails, the error
        of the first failing prompt is raised.
        """
        if isinstance(prompts, str):
            raise InvalidInput("complete_many takes a sequence of prompts, not one string")
        batch = [to_messages(p) for p in prompts]
        if not batch:
            return []
        params = GenParams(temperature, max_tokens, tuple(stop), seed)
        with llm_call() as outermost:
            results = self._complete_batch(batch, params, json_schema)
        if len(results) != len(batch):
            raise RuntimeError(
                f"{type(self).__name__}._complete_batch returned {len(results)} results "
                f"for {len(batch)} prompts"
            )
        with self._usage_lock:
            for c in results:
                self.usage.add(c)
        if outermost:  # charge the caller's open meters once, at the outermost LLM
            for c in results:
                charge_llm(c.prompt_tokens, c.completion_tokens, cached=c.cached)
        return results

    @overload
    def complete_json_many(
        self,
        prompts: Sequence[Prompt],
        schema: type[M],
        *,
        errors: Literal["raise"] = "raise",
        **params: Any,
    ) -> list[M]: ...

    @overload
    def complete_json_many(
        self,
        prompts: Sequence[Prompt],
        schema: type[M],
        *,
        errors: Literal["return"],
        **params: Any,
    ) -> list[M | LLMOutputError]: ...

    def complete_json_many(
        self,
        prompts: Sequence[Prompt],
        schema: type[M],
        *,
        errors: Literal["raise", "return"] = "raise",
        **params: Any,
    ) -> list[M] | list[M | LLMOutputError]:
        """Batched :meth:`complete_json`: one validated object per prompt, in order.

        All prompts are generated as one batch, then the failures are retried once as a
        second batch (each with its own validation error shown to the model).
        ``errors="raise"`` (default) raises the first prompt's :class:`LLMOutputError` after
        the whole batch has run; ``errors="return"`` puts the error object in that prompt's
        slot instead, so one bad item does not cost the others. Transport errors
        (:class:`~memkit.errors.LLMUnavailable`) always raise.
        """
        if errors not in ("raise", "return"):
            raise InvalidInput(f"errors must be 'raise' or 'return', got {errors!r}")
        batch = [to_messages(p) for p in prompts]
        first = self.complete_many(batch, json_schema=schema, **params)
        out: list[M | LLMOutputError] = []
        retry_idx: list[int] = []
        retry_batch: list[list[Message]] = []
        for i, c in enumerate(first):
            try:
                out.append(validate_json_text(c.text, schema))
            except LLMOutputError as exc:
                out.append(exc)
                retry_idx.append(i)
                retry_batch.append(retry_messages(batch[i], c.text, str(exc), schema))
        if retry_batch:
            second = self.complete_many(retry_batch, json_schema=schema, **params)
            for i, c in zip(retry_idx, second, strict=True):
                try:
                    out[i] = validate_json_text(c.text, schema)
                except LLMOutputError as exc:
                    out[i] = LLMOutputError(
                        f"no valid {schema.__name__} after a retry: {exc}", raw=c.text
                    )
        if errors == "raise":
            for item in out:
                if isinstance(item, LLMOutputError):
                    raise item
        return out

    def complete_json(self, prompt: Prompt, schema: type[M], **params: Any) -> M:
        """Generate a reply and return it as a validated ``schema`` instance.

        The reply is parsed leniently (:func:`~memkit.llm.jsonrepair.parse_json_lenient`:
        code fences, surrounding prose, trailing commas, single quotes, truncation) and
        validated with pydantic. On failure the model is asked once more, shown its reply and
        the error; if that fails too, :class:`LLMOutputError` is raised with ``raw`` set to the
        last reply. Model output is never evaluated as code.
        """
        return self.complete_json_many([prompt], schema, errors="raise", **params)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"


class BatchLLM(LLM):
    """An LLM whose natural unit is a batch (a cache, an offline engine): it implements
    ``_complete_batch`` and single calls go through it as batches of one."""

    @abstractmethod
    def _complete_batch(
        self,
        batch: list[list[Message]],
        params: GenParams,
        schema: type[pydantic.BaseModel] | None,
    ) -> list[Completion]:
        """Generate replies for several prompts, in order."""

    def _complete(self, messages: list[Message], params: GenParams) -> Completion:
        return self._complete_batch([messages], params, None)[0]

    def _complete_constrained(
        self, messages: list[Message], params: GenParams, schema: type[pydantic.BaseModel]
    ) -> Completion:
        return self._complete_batch([messages], params, schema)[0]
