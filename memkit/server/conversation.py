"""REST routes for conversation memory: ``POST /v1/remember`` (chat turns in) and
``POST /v1/memories/{id}/revert`` (undo the latest change of an item, e.g. a contradiction).
Installed by :func:`memkit.server.app.create_app`; the logic is
:meth:`memkit.server.service.ScopedMemory.remember` over :mod:`memkit.conversation`."""

# no `from __future__ import annotations`: FastAPI must see the route annotations as objects
# (the principal dependency and id type are passed in, not module globals)
from collections.abc import Callable
from typing import Any, Literal

from memkit._deps import require

require("fastapi", "server", "memkit serve")

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from memkit.server import models as m

TimeValue = float | str


class MessageModel(BaseModel):
    """One chat turn."""

    model_config = m._strict
    role: Literal["user", "assistant", "system", "tool"]
    content: str = Field(..., max_length=m.MAX_TEXT)
    name: str | None = Field(None, max_length=200, description="the speaker's name")
    at: TimeValue | None = Field(None, description="when it was said: epoch seconds or ISO "
                                 "8601 (naive = UTC; do not mix naive and aware)")


class RememberRequest(BaseModel):
    model_config = m._strict
    messages: list[MessageModel] = Field(..., max_length=50_000)
    scope: m.ScopeModel | None = None
    session: str | None = Field(None, max_length=200)
    at: TimeValue | None = Field(None, description="time of turns without their own 'at'")
    facts: Literal["auto", "rules", "llm", "off"] = "auto"
    contradictions: Literal["auto", "rules", "llm", "off"] = "auto"


class RememberResponse(BaseModel):
    turns: list[int] = Field(..., description="item ids of the turns, in message order")
    facts: list[int] = Field(..., description="item ids of the new facts")
    duplicates: list[int] = Field(..., description="facts already known (nothing written)")
    invalidated: list[int] = Field(..., description="items that stopped holding (their "
                                   "latest version has event_until); none is deleted")
    decisions: list[dict[str, Any]] = Field(..., description="each decision and its reason")


class RevertRequest(BaseModel):
    model_config = m._strict
    reason: m.Label | None = None


def install(app: FastAPI, scoped: Callable[..., Any], scope_arg: Callable[..., Any],
            who_dep: Any, item_id_type: Any) -> None:
    """Add the routes to ``app`` (with the app's own principal dependency and id type)."""

    @app.post("/v1/remember", response_model=RememberResponse, tags=["write"])
    async def remember(body: RememberRequest, request: Request, who: who_dep) -> Any:
        """Remember a conversation: turns with speaker, session and event time, facts
        extracted from them (deduplicated), contradicted facts invalidated (never deleted).
        All or nothing: 400 naming every bad message."""
        state, mem = scoped(request, who)
        messages = [msg.model_dump(exclude_none=True) for msg in body.messages]
        report = await state.call(mem.remember, messages, scope_arg(body.scope),
                                  session=body.session, at=body.at, facts=body.facts,
                                  contradictions=body.contradictions)
        return RememberResponse(**report.as_dict())

    @app.post("/v1/memories/{item_id}/revert", response_model=m.UpdateResponse,
              tags=["manage"])
    async def revert(item_id: item_id_type, request: Request, who: who_dep,
                     body: RevertRequest | None = None) -> Any:
        """Undo the latest change (update, invalidation, contradiction) of the item's chain;
        returns the id of the new version that restores the one before."""
        state, mem = scoped(request, who)
        reason = body.reason if body is not None else None
        return m.UpdateResponse(id=await state.call(mem.revert, item_id, reason=reason))
