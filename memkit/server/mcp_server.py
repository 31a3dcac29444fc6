"""The MCP face of a served memory: tools an agent's LLM can call to remember and recall.

Tools: ``remember``, ``recall``, ``update_memory``, ``forget`` and (when the server has an LLM)
``answer``. None of them takes a scope argument: the scope comes from the connection - the API
key of the HTTP request (``Authorization: Bearer mk_...``), or the key / namespace the stdio
server was started with - so a model cannot forge its way into another tenant's memories.

Over HTTP the MCP endpoint is mounted in the REST app at ``/mcp`` (streamable HTTP, stateless,
JSON responses). Over stdio, ``memkit serve --transport stdio`` runs :func:`run_stdio`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from memkit.errors import MemkitError, MissingDependency
from memkit.server.auth import Principal
from memkit.server.service import RequestTimeout, ScopedMemory, ServerState

try:  # module level: the tools' annotations (Context) are resolved against these globals
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as exc:  # pragma: no cover - the [server] extra is not installed
    raise MissingDependency("the MCP server", "server", "mcp") from exc

log = logging.getLogger("memkit.server.mcp")

INSTRUCTIONS = (
    "Long-term memory for this agent. Call `recall` before answering anything that may depend "
    "on what you were told earlier (preferences, facts about people and projects, past "
    "decisions). Call `remember` to store a durable fact in one self-contained sentence "
    "(who/what/when, no pronouns that need context). Use `update_memory` when a stored fact "
    "changed and `forget` when the user asks you to forget something. Memories are private to "
    "this connection's namespace."
)

PrincipalOf = Callable[[Any], Principal | None]


def _hit_view(hit: Any) -> dict[str, Any]:
    item = hit.item
    return {"id": item.id, "text": item.text, "score": round(float(hit.score), 4),
            "source": item.source, "created_at": item.created_at,
            "metadata": item.metadata, "version": item.version,
            "invalidated": item.invalidated}


def build_mcp(state_of: Callable[[], ServerState], principal_of: PrincipalOf,
              with_answer: bool = False) -> Any:
    """An MCPServer whose tools act as the connection's principal.

    ``state_of()`` returns the running ServerState; ``principal_of(ctx)`` the principal of the
    request behind an MCP Context (None: unauthenticated, the tool call fails)."""
    server = MCPServer("memkit", instructions=INSTRUCTIONS, log_level="WARNING")

    def scoped(ctx: Any) -> tuple[ServerState, ScopedMemory]:
        state = state_of()
        principal = principal_of(ctx)
        if principal is None:
            raise ToolError("missing or invalid API key")
        return state, ScopedMemory(state.memory, principal, state.default_namespace,
                                   ids=state.ids)

    async def call(ctx: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        state, mem = scoped(ctx)
        try:
            return await state.call(getattr(mem, method), *args, **kwargs)
        except (MemkitError, RequestTimeout) as exc:
            # the model sees a short, actionable error (never a traceback)
            raise ToolError(f"{type(exc).__name__}: {exc}") from None

    @server.tool(name="remember", title="Remember a fact")
    async def remember(
        text: Annotated[str, Field(description="The fact to store, as one self-contained "
                                   "sentence, e.g. 'Dana prefers aisle seats on flights.'",
                                   min_length=1, max_length=100_000)],
        ctx: Context,
        source: Annotated[str | None, Field(description="Where it came from, e.g. 'chat "
                                            "2024-05-01' (optional)", max_length=2_000)] = None,
        ttl_seconds: Annotated[float | None, Field(description="Forget it automatically after "
                                                   "this many seconds (optional)", gt=0,
                                                   le=1e10)] = None,
    ) -> dict[str, Any]:
        """Store a memory for later. Returns its id and whether it is new ("created": false
        when the same fact was already stored; its id is returned)."""
        written = await call(ctx, "put", text, None, source=source, ttl=ttl_seconds)
        return {"id": written.id, "created": written.created}

    @server.tool(name="remember_conversation", title="Remember a conversation")
    async def remember_conversation(
        messages: Annotated[list[dict[str, Any]], Field(
            description="The chat turns, oldest first: objects with 'role' (user, assistant, "
                        "system or tool), 'content', optional 'name' (the speaker) and "
                        "optional 'at' (ISO 8601 time it was said)",
            min_length=1, max_length=50_000)],
        ctx: Context,
        session: Annotated[str | None, Field(description="A conversation/session id "
                                             "(optional)", max_length=200)] = None,
    ) -> dict[str, Any]:
        """Store a conversation: every turn, plus the lasting facts in it. A fact that
        contradicts an older one (a new address, job or partner) ends the old one, which is
        kept as history, never deleted. Returns the ids of turns, new facts, facts already
        known and facts that stopped holding."""
        report = await call(ctx, "remember", messages, None, session=session)
        return {k: v for k, v in report.as_dict().items() if k != "decisions"}

    @server.tool(name="recall", title="Recall memories")
    async def recall(
        query: Annotated[str, Field(description="What to look for, in natural language, e.g. "
                                    "'Dana seating preference'", min_length=1,
                                    max_length=10_000)],
        ctx: Context,
        k: Annotated[int, Field(description="How many memories to return", ge=1,
                                le=50)] = 5,
    ) -> dict[str, Any]:
        """Find the stored memories most relevant to a query, best first, each with its id,
        text and relevance score."""
        result = await call(ctx, "read", query, k)
        return {"memories": [_hit_view(h) for h in result.hits]}

    @server.tool(name="update_memory", title="Correct a memory")
    async def update_memory(
        id: Annotated[int, Field(description="The id of the memory to correct (from recall)",
                                 ge=1, le=2**63 - 1)],
        text: Annotated[str, Field(description="The corrected fact, one self-contained "
                                   "sentence", min_length=1, max_length=100_000)],
        ctx: Context,
    ) -> dict[str, Any]:
        """Replace a memory's text with a corrected version (the old one is kept as history).
        Returns the id of the new version."""
        new_id = await call(ctx, "update", id, text)
        return {"id": new_id}

    @server.tool(name="forget", title="Forget memories")
    async def forget(
        ids: Annotated[list[Annotated[int, Field(ge=1, le=2**63 - 1)]], Field(
            description="Ids of the memories to delete (from recall)", min_length=1,
            max_length=1_000)],
        ctx: Context,
        reason: Annotated[str | None, Field(description="Why (kept in the audit log)",
                                            max_length=2_000)] = None,
    ) -> dict[str, Any]:
        """Permanently delete memories, with all their versions. Use when the user asks to
        forget something or a memory is wrong and should not be corrected."""
        deleted = await call(ctx, "delete", ids, reason=reason)
        return {"deleted": deleted}

    if with_answer:
        @server.tool(name="answer", title="Answer from memory")
        async def answer(
            question: Annotated[str, Field(description="A question to answer from the stored "
                                           "memories", min_length=1, max_length=10_000)],
            ctx: Context,
            k: Annotated[int, Field(description="How many memories to read", ge=1,
                                    le=50)] = 5,
        ) -> dict[str, Any]:
            """Answer a question using only stored memories; returns the answer and the ids of
            the memories it cites."""
            result = await call(ctx, "answer", question, k)
            return {"answer": result["answer"], "cited_ids": result["cited_ids"]}

    return server


def request_principal(ctx: Any) -> Principal | None:
    """The principal the HTTP auth wrapper stored on the request behind this MCP call."""
    request = getattr(ctx.request_context, "request", None)
    scope = getattr(request, "scope", None) or {}
    return (scope.get("state") or {}).get("memkit_principal")


async def run_stdio(state: ServerState, principal: Principal) -> None:
    """Serve MCP over stdin/stdout as ``principal`` until stdin closes."""
    server = build_mcp(lambda: state, lambda ctx: principal,
                       with_answer=state.memory.llm is not None)
    await server.run_stdio_async()
