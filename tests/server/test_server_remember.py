"""Conversation memory over a real server: POST /v1/remember, read with valid_at, revert, and
the MCP tool remember_conversation; ids are the key's public ids; bad messages are 400 with
nothing stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

httpx2 = pytest.importorskip("httpx2")
from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

if TYPE_CHECKING:
    from conftest import Served

PARIS = [{"role": "user", "name": "Ann", "content": "I live in Paris.", "at": "2020-01-01"},
         {"role": "assistant", "content": "Lovely."}]
LYON = [{"role": "user", "name": "Ann", "content": "I moved to Lyon.", "at": "2024-01-01"}]


def test_remember_read_valid_at_revert_over_rest(served: Served) -> None:
    with served.client(served.keys["acme"]) as c:
        r = c.post("/v1/remember", json={"messages": PARIS, "scope": {"user": "ann"},
                                         "session": "s1", "at": "2020-01-01T00:00:00"})
        assert r.status_code == 200, r.text
        first = r.json()
        assert len(first["turns"]) == 2 and len(first["facts"]) == 1
        paris = first["facts"][0]
        second = c.post("/v1/remember", json={"messages": LYON, "scope": {"user": "ann"}}).json()
        assert paris in second["invalidated"]
        assert any(d["action"] == "invalidated" and d["by"] == second["facts"][0]
                   for d in second["decisions"])
        now = c.post("/v1/read", json={"query": "where does Ann live", "k": 10}).json()["hits"]
        assert all("Paris" not in h["item"]["text"] for h in now)
        past = c.post("/v1/read", json={"query": "where does Ann live", "k": 10,
                                        "valid_at": "2021-06-01"}).json()["hits"]
        old = [h for h in past if h["item"]["text"].startswith("Ann lives in Paris")]
        assert old and old[0]["item"]["invalidated"] is True
        r = c.post(f"/v1/memories/{paris}/revert", json={"reason": "test"})
        assert r.status_code == 200, r.text
        restored = c.get(f"/v1/memories/{r.json()['id']}").json()
        assert restored["event_until"] is None and restored["invalidated"] is False
        # another tenant sees none of it
    with served.client(served.keys["globex"]) as c:
        assert c.post("/v1/read", json={"query": "Ann", "k": 10}).json()["hits"] == []
        assert c.post(f"/v1/memories/{paris}/revert").status_code == 404


def test_bad_messages_are_400_and_nothing_is_stored(served: Served) -> None:
    with served.client(served.keys["acme"]) as c:
        r = c.post("/v1/remember", json={"messages": [
            {"role": "user", "content": "I live in Oslo."},
            {"role": "user", "content": "  "}]})
        assert r.status_code == 400 and "messages[1].content" in r.json()["error"]["message"]
        r = c.post("/v1/remember", json={"messages": [{"role": "robot", "content": "x"}]})
        assert r.status_code == 422
        assert c.post("/v1/read", json={"query": "Oslo", "k": 5}).json()["hits"] == []


def test_mcp_remember_conversation(served: Served) -> None:
    async def body(s: ClientSession) -> Any:
        got = await s.call_tool("remember_conversation", {"messages": PARIS, "session": "s1"})
        assert not got.is_error, got.content
        first = dict(got.structured_content)
        got = await s.call_tool("remember_conversation", {"messages": LYON})
        second = dict(got.structured_content)
        assert first["facts"][0] in second["invalidated"]
        bad = await s.call_tool("remember_conversation", {"messages": [{"content": "x"}]})
        assert bad.is_error and "role: missing" in bad.content[0].text
        recall = dict((await s.call_tool("recall", {"query": "Ann live", "k": 5}))
                      .structured_content)
        assert all(not m["invalidated"] for m in recall["memories"])
        assert any("Lyon" in m["text"] for m in recall["memories"])

    async def session(url: str, key: str) -> Any:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"},
                                      timeout=30) as http, \
                streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
                ClientSession(read, write) as s:
            await s.initialize()
            return await body(s)

    anyio.run(session, served.url, served.keys["acme"])
