"""End to end with the `mcp` package's own client session, over streamable HTTP (the /mcp
endpoint of a real server) and over stdio (a `python -m memkit.server serve --transport stdio`
subprocess): list the tools, remember, recall, update, forget; scope comes from the key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

httpx2 = pytest.importorskip("httpx2")
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from memkit import Memory, Scope  # noqa: E402
from memkit.server.auth import KeyStore  # noqa: E402
from memkit.server.ids import IdCodec  # noqa: E402
from memkit.server.service import ID_SECRET  # noqa: E402

if TYPE_CHECKING:
    from conftest import Served

REPO = Path(__file__).resolve().parents[2]
TOOLS = {"remember", "remember_conversation", "recall", "update_memory", "forget"}


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


async def _http_session(url: str, key: str | None, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http, \
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await body(session)


def check_tool_schemas(tools: list[Any]) -> None:
    assert {t.name for t in tools} == TOOLS  # no `answer`: this server has no LLM
    for tool in tools:
        assert tool.description and len(tool.description) > 40
        props = tool.input_schema["properties"]
        # scope is never a tool argument: the model cannot pick a tenant
        assert not {"scope", "namespace", "user", "agent", "ctx"} & set(props)
        assert all(p.get("description") for p in props.values()), tool.name
    recall = next(t for t in tools if t.name == "recall")
    assert recall.input_schema["required"] == ["query"]
    assert recall.input_schema["properties"]["k"]["maximum"] == 50


def test_mcp_over_http_lists_writes_recalls_updates_forgets(served: Served) -> None:
    async def body(s: ClientSession) -> None:
        check_tool_schemas((await s.list_tools()).tools)
        a = structured(await s.call_tool("remember", {"text": "Dana prefers aisle seats.",
                                                      "source": "chat"}))["id"]
        b = structured(await s.call_tool("remember", {"text": "Dana's badge number is 4471."}))
        again = structured(await s.call_tool("remember", {"text": "Dana prefers aisle seats."}))
        assert again == {"id": a, "created": False}  # duplicate in scope: same id
        assert b["created"] is True
        got = structured(await s.call_tool("recall", {"query": "Dana prefers seats", "k": 1}))
        assert [m["id"] for m in got["memories"]] == [a]
        assert got["memories"][0]["source"] == "chat"
        new = structured(await s.call_tool("update_memory", {
            "id": a, "text": "Dana prefers window seats."}))["id"]
        got = structured(await s.call_tool("recall", {"query": "Dana seats", "k": 5}))
        assert {m["id"] for m in got["memories"]} == {new, b["id"]}
        assert structured(await s.call_tool("forget", {"ids": [b["id"]]}))["deleted"] == [
            b["id"]]
        bad = await s.call_tool("forget", {"ids": [b["id"]]})
        assert bad.is_error and "NotFound" in bad.content[0].text
        invalid = await s.call_tool("recall", {"query": "", "k": 1})
        assert invalid.is_error

    anyio.run(_http_session, served.url, served.keys["acme"], body)
    # what the tools wrote is in the key's namespace, visible over REST with the same key
    with served.client(served.keys["acme"]) as c:
        hits = c.post("/v1/read", json={"query": "Dana", "k": 10}).json()["hits"]
        assert [h["item"]["text"] for h in hits] == ["Dana prefers window seats."]
        assert hits[0]["item"]["scope"]["namespace"] == "acme"


def test_mcp_tenants_cannot_see_each_other(served: Served) -> None:
    async def write(s: ClientSession) -> int:
        return int(structured(await s.call_tool(
            "remember", {"text": "Globex secret: the vault code is 1234."}))["id"])

    secret = anyio.run(_http_session, served.url, served.keys["globex"], write)

    async def snoop(s: ClientSession) -> None:
        got = structured(await s.call_tool("recall", {"query": "vault code", "k": 50}))
        assert got["memories"] == []
        r = await s.call_tool("update_memory", {"id": secret, "text": "pwned"})
        assert r.is_error and "NotFound" in r.content[0].text
        r = await s.call_tool("forget", {"ids": [secret]})
        assert r.is_error
        # extra arguments cannot smuggle a scope in
        r = await s.call_tool("recall", {"query": "vault code", "namespace": "globex"})
        assert r.is_error or structured(r)["memories"] == []

    anyio.run(_http_session, served.url, served.keys["acme"], snoop)
    with served.client(served.keys["globex"]) as c:
        assert c.get(f"/v1/memories/{secret}").json()["text"].endswith("1234.")


def test_mcp_endpoint_requires_a_key(served: Served) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    for key in (None, "mk_000000000000_" + "x" * 43):
        h = dict(headers, **({"Authorization": f"Bearer {key}"} if key else {}))
        r = httpx.post(f"{served.url}/mcp", json=init, headers=h, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    h = dict(headers, Authorization=f"Bearer {served.keys['acme']}")
    r = httpx.post(f"{served.url}/mcp", json=init, headers=h, timeout=10)
    assert r.status_code == 200 and r.json()["result"]["serverInfo"]["name"] == "memkit"


def test_mcp_over_stdio_with_a_key(tmp_path: Path, new_memory: Any) -> None:
    directory = tmp_path / "mem"
    new_memory(directory)
    keys = KeyStore.open(directory)
    key, _ = keys.create("team-a", agent="helper")
    keys.close()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memkit.server", "serve", "--transport", "stdio", "--memory",
              str(directory), "--log-level", "warning"],
        env={"MEMKIT_API_KEY": key, "HF_HUB_OFFLINE": "1"}, cwd=str(REPO))

    async def run() -> tuple[int, list[dict[str, Any]]]:
        with open(tmp_path / "stderr.log", "w") as errlog, anyio.fail_after(120):
            async with stdio_client(params, errlog=errlog) as (read, write), \
                    ClientSession(read, write) as s:
                await s.initialize()
                check_tool_schemas((await s.list_tools()).tools)
                new = structured(await s.call_tool(
                    "remember", {"text": "The staging database is db-stg-2."}))["id"]
                structured(await s.call_tool("remember", {"text": "Lunch is at noon."}))
                got = structured(await s.call_tool(
                    "recall", {"query": "staging database", "k": 1}))["memories"]
                return new, got

    new, got = anyio.run(run)
    assert [m["id"] for m in got] == [new]
    keys = KeyStore.open(directory)
    internal = IdCodec(keys.secret(ID_SECRET)).decode(new, "team-a")  # ids are per namespace
    keys.close()
    assert internal is not None
    with Memory.open(directory) as mem:
        assert mem.get(internal).scope == Scope(namespace="team-a", agent="helper")
        assert mem.read("staging database", scope="other-ns").hits == []


def test_stdio_refuses_a_bad_key(tmp_path: Path, new_memory: Any) -> None:
    from click.testing import CliRunner

    from memkit.server.cli import serve_cmd

    directory = tmp_path / "mem"
    new_memory(directory)
    KeyStore.open(directory).close()
    out = CliRunner().invoke(serve_cmd, [
        "--memory", str(directory), "--transport", "stdio", "--key", "mk_000000000000_" + "x" * 43])
    assert out.exit_code != 0
    assert "not a valid" in out.output


def test_mcp_answer_tool_when_an_llm_is_configured(tmp_path: Path, new_memory: Any,
                                                  start_served: Any) -> None:
    from memkit.llm.fake import ScriptedLLM

    new_memory(tmp_path / "m")
    ks = KeyStore.open(tmp_path / "m")
    key = ks.create("acme")[0]
    ks.close()
    srv = start_served(tmp_path / "m", llm=ScriptedLLM({}, default="Answer: aisle."))

    async def body(s: ClientSession) -> dict[str, Any]:
        names = {t.name for t in (await s.list_tools()).tools}
        assert names == TOOLS | {"answer"}
        mid = structured(await s.call_tool("remember", {"text": "Dana prefers aisle seats."}))
        got = structured(await s.call_tool("answer", {"question": "Which seat for Dana?"}))
        assert got["cited_ids"] == [mid["id"]]
        return got

    assert anyio.run(_http_session, srv.url, key, body)["answer"] == "aisle"
