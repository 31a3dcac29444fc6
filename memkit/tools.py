"""Memory as tools for function-calling agents: OpenAI-style definitions and a dispatcher.

The tools are the MCP server's (``remember``, ``recall``, ``update_memory``, ``forget``) with
the same arguments. :func:`tool_definitions` gives their JSON definitions for a chat API's
``tools=`` parameter; :class:`ToolDispatcher` executes a tool call (OpenAI's
``{"id", "type": "function", "function": {"name", "arguments"}}``, or ``{"name",
"arguments"}``) against a :class:`memkit.Memory` or the HTTP
:class:`memkit.client.Client`, and :meth:`ToolDispatcher.tool_message` wraps the result
as the ``{"role": "tool", ...}`` message to send back. Models without native tool calling can
emit ``{"tool_calls": [...]}`` as text: :func:`parse_tool_calls` reads it.

>>> from memkit import Memory
>>> from memkit.embed import HashEmbedder
>>> mem = Memory.open(None, embedder=HashEmbedder())
>>> tools = ToolDispatcher(mem, scope={"user": "u1"})
>>> [t["function"]["name"] for t in tool_definitions()]
['remember', 'recall', 'update_memory', 'forget']
>>> tools.execute({"name": "remember", "arguments": '{"text": "Dana likes aisle seats."}'})
{'id': 1, 'created': True}
>>> found = tools.execute({"name": "recall", "arguments": {"query": "Dana seats", "k": 1}})
>>> found["memories"][0]["text"]
'Dana likes aisle seats.'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from memkit.errors import InvalidInput, MemkitError
from memkit.types import Scope

__all__ = ["TOOL_NAMES", "ToolDispatcher", "parse_tool_calls", "tool_definitions"]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RememberArgs(_Args):
    """Store a memory for later. Returns its id and whether it is new ("created": false when
    the same fact was already stored; its id is returned)."""

    text: Annotated[str, Field(min_length=1, max_length=100_000, description=(
        "The fact to store, as one self-contained sentence, e.g. 'Dana prefers aisle seats "
        "on flights.'"))]
    source: Annotated[str | None, Field(max_length=2_000, description=(
        "Where it came from, e.g. 'chat 2024-05-01' (optional)"))] = None
    ttl_seconds: Annotated[float | None, Field(gt=0, le=1e10, description=(
        "Forget it automatically after this many seconds (optional)"))] = None


class RecallArgs(_Args):
    """Find the stored memories most relevant to a query, best first, each with its id, text
    and relevance score."""

    query: Annotated[str, Field(min_length=1, max_length=10_000, description=(
        "What to look for, in natural language, e.g. 'Dana seating preference'"))]
    k: Annotated[int, Field(ge=1, le=50, description="How many memories to return")] = 5


class UpdateArgs(_Args):
    """Replace a memory's text with a corrected version (the old one is kept as history).
    Returns the id of the new version."""

    id: Annotated[int, Field(ge=1, le=2**63 - 1, description=(
        "The id of the memory to correct (from recall)"))]
    text: Annotated[str, Field(min_length=1, max_length=100_000, description=(
        "The corrected fact, one self-contained sentence"))]


class ForgetArgs(_Args):
    """Permanently delete memories, with all their versions. Use when the user asks to forget
    something or a memory is wrong and should not be corrected."""

    ids: Annotated[list[int], Field(min_length=1, max_length=1_000, description=(
        "Ids of the memories to delete (from recall)"))]
    reason: Annotated[str | None, Field(max_length=2_000, description=(
        "Why (kept in the audit log)"))] = None


_TOOLS: dict[str, type[_Args]] = {"remember": RememberArgs, "recall": RecallArgs,
                                  "update_memory": UpdateArgs, "forget": ForgetArgs}
TOOL_NAMES = tuple(_TOOLS)


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def tool_definitions(names: Sequence[str] = TOOL_NAMES) -> list[dict[str, Any]]:
    """OpenAI-style function tool definitions (``{"type": "function", "function": {name,
    description, parameters}}``) for the named memory tools."""
    unknown = [n for n in names if n not in _TOOLS]
    if unknown:
        raise InvalidInput(f"unknown memory tool(s) {unknown}; available: {list(TOOL_NAMES)}")
    out = []
    for name in names:
        model = _TOOLS[name]
        params = _strip_titles(model.model_json_schema())
        params.pop("description", None)
        params["additionalProperties"] = False
        out.append({"type": "function", "function": {
            "name": name, "description": " ".join((model.__doc__ or "").split()),
            "parameters": params}})
    return out


def parse_tool_calls(text: str) -> list[dict[str, Any]] | None:
    """Tool calls a model wrote as text: ``{"tool_calls": [...]}``, a list of calls, or one
    call ``{"name", "arguments"}``; None when ``text`` is not a tool call (a final answer)."""
    try:
        data = json.loads(text.strip().removeprefix("```json").removesuffix("```").strip())
    except (json.JSONDecodeError, AttributeError):
        return None
    if isinstance(data, dict) and isinstance(data.get("tool_calls"), list):
        data = data["tool_calls"]
    if isinstance(data, dict) and ("name" in data or "function" in data):
        data = [data]
    if isinstance(data, list) and data and all(isinstance(c, dict) for c in data):
        return data
    return None


def _hit_view(hit: Any) -> dict[str, Any]:
    item = hit.item
    return {"id": item.id, "text": item.text, "score": round(float(hit.score), 4),
            "source": item.source, "created_at": item.created_at,
            "metadata": item.metadata, "version": item.version}


class ToolDispatcher:
    """Executes memory tool calls against ``target`` (a Memory or a Client).

    ``scope``: where a Memory target remembers and recalls, and what it may update or forget
    (a Client is confined by its API key instead). ``raise_errors=False`` (the default)
    returns ``{"error": "..."}`` for a bad call or a memkit error, so the model can read it
    and retry; True raises :class:`~memkit.errors.MemkitError` instead."""

    def __init__(self, target: Any, *, scope: Scope | dict[str, Any] | str | None = None,
                 raise_errors: bool = False) -> None:
        from memkit.memory import Memory

        self.target = target
        # a Memory, or a proxy of one (memkit.integrations.otel.traced): confined by ``scope``
        self.is_memory = isinstance(getattr(target, "memory", target), Memory)
        self.scope = Scope.coerce(scope) if scope is not None else None
        self.raise_errors = raise_errors

    def definitions(self) -> list[dict[str, Any]]:
        return tool_definitions()

    def execute(self, call: dict[str, Any]) -> dict[str, Any]:
        """Run one tool call; returns the JSON-ready result."""
        try:
            name, args = self._unpack(call)
            return self._run(name, args)
        except MemkitError as exc:
            if self.raise_errors:
                raise
            return {"error": f"{type(exc).__name__}: {exc}"}

    def tool_message(self, call: dict[str, Any]) -> dict[str, Any]:
        """Run ``call`` and wrap the result as the ``role: tool`` message for the model."""
        return {"role": "tool", "tool_call_id": call.get("id"),
                "name": self._name_of(call), "content": json.dumps(self.execute(call))}

    @staticmethod
    def _name_of(call: dict[str, Any]) -> Any:
        fn = call.get("function") if isinstance(call.get("function"), dict) else call
        return fn.get("name") if isinstance(fn, dict) else None

    def _unpack(self, call: Any) -> tuple[str, _Args]:
        if not isinstance(call, dict):
            raise InvalidInput(f"a tool call is an object, got {type(call).__name__}")
        fn = call["function"] if isinstance(call.get("function"), dict) else call
        name, raw = fn.get("name"), fn.get("arguments", {})
        if name not in _TOOLS:
            raise InvalidInput(f"unknown tool {name!r}; available: {list(TOOL_NAMES)}")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{name}: arguments are not valid JSON ({exc.msg})") from exc
        try:
            return name, _TOOLS[name].model_validate(raw)
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: "
                                 f"{e['msg']}" for e in exc.errors()[:5])
            raise InvalidInput(f"{name}: {problems}") from None

    def _confined(self) -> dict[str, Any]:
        return {"scope": self.scope} if self.is_memory and self.scope is not None else {}

    def _run(self, name: str, args: _Args) -> dict[str, Any]:
        t = self.target
        if isinstance(args, RememberArgs):
            written = t.put(args.text, self.scope, source=args.source, ttl=args.ttl_seconds)
            return {"id": written.id, "created": written.created}
        if isinstance(args, RecallArgs):
            result = t.read(args.query, args.k, self.scope)
            return {"memories": [_hit_view(h) for h in result.hits]}
        if isinstance(args, UpdateArgs):
            return {"id": t.update(args.id, args.text, reason="tool call", **self._confined())}
        assert isinstance(args, ForgetArgs)
        return {"deleted": t.delete(args.ids, reason=args.reason, **self._confined())}
