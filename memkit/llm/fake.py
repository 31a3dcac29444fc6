"""A scripted LLM for tests: replies chosen by regex over the prompt, every call recorded.

>>> llm = ScriptedLLM({r"named entities": '{"named_entities": ["Alice"]}',
...                    r"triples": lambda prompt: '{"triples": []}'})
>>> llm.complete("List the named entities in: Alice met Bob.").text
'{"named_entities": ["Alice"]}'
>>> llm.calls[-1].prompt
'List the named entities in: Alice met Bob.'

A reply is a string, a callable ``f(text) -> str`` (``text`` is the last user message), or a
list of strings consumed one per call (for "wrong first, right on retry" scripts). Patterns
are tried in order with ``re.search`` against the last user message, then against the whole
conversation; the first match wins. An unmatched prompt raises :class:`LLMError` naming the
prompt's head, unless ``default`` is given.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pydantic

from memkit.errors import LLMError
from memkit.llm.base import (
    LLM,
    Completion,
    GenParams,
    Message,
    apply_stop,
    estimate_prompt_tokens,
    estimate_tokens,
)

Reply = str | Callable[[str], str] | list[str]


@dataclass(frozen=True)
class ScriptedCall:
    """One recorded call: the messages, the parameters and the schema (if constrained)."""

    messages: list[Message]
    params: GenParams
    json_schema: type[pydantic.BaseModel] | None = None

    @property
    def prompt(self) -> str:
        """The last user message (what patterns are matched against first)."""
        return _last_user(self.messages)


def _last_user(messages: list[Message]) -> str:
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return messages[-1]["content"]


class ScriptedLLM(LLM):
    """Deterministic LLM replaying scripted replies; token counts are estimates."""

    def __init__(
        self,
        replies: Mapping[str, Reply],
        *,
        default: str | None = None,
        model: str = "scripted",
    ) -> None:
        super().__init__(model)
        self._rules = [(re.compile(p, re.DOTALL), r) for p, r in replies.items()]
        self._queues = {p: list(r) for p, r in replies.items() if isinstance(r, list)}
        self.default = default
        self.calls: list[ScriptedCall] = []
        self._lock = threading.Lock()

    def _reply_for(self, messages: list[Message]) -> str:
        last = _last_user(messages)
        whole = "\n".join(m["content"] for m in messages)
        for text in (last, whole):
            for pattern, reply in self._rules:
                if pattern.search(text):
                    return self._render(pattern.pattern, reply, last)
        if self.default is not None:
            return self.default
        head = last[:80].replace("\n", " ")
        raise LLMError(f"ScriptedLLM has no reply for prompt starting {head!r}")

    def _render(self, pattern: str, reply: Reply, last: str) -> str:
        if isinstance(reply, str):
            return reply
        if isinstance(reply, list):
            with self._lock:
                queue = self._queues[pattern]
                if not queue:
                    raise LLMError(f"ScriptedLLM ran out of scripted replies for {pattern!r}")
                return queue.pop(0)
        return reply(last)

    def _record(
        self,
        messages: list[Message],
        params: GenParams,
        schema: type[pydantic.BaseModel] | None,
    ) -> Completion:
        with self._lock:
            self.calls.append(ScriptedCall(messages, params, schema))
        text = apply_stop(self._reply_for(messages), params.stop)
        return Completion(
            text=text,
            prompt_tokens=estimate_prompt_tokens(messages),
            completion_tokens=estimate_tokens(text),
            model=self.model,
            finish_reason="stop",
        )

    def _complete(self, messages: list[Message], params: GenParams) -> Completion:
        return self._record(messages, params, None)

    def _complete_constrained(
        self, messages: list[Message], params: GenParams, schema: type[pydantic.BaseModel]
    ) -> Completion:
        return self._record(messages, params, schema)
