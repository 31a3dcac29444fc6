"""memkit.tools: definitions match the MCP server's tools, the dispatcher runs calls against a
Memory (scoped), bad calls come back as errors the model can read, and a scripted model
drives a full tool-call loop."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.errors import InvalidInput
from memkit.llm import ScriptedLLM
from memkit.tools import TOOL_NAMES, ToolDispatcher, parse_tool_calls, tool_definitions

REPO = Path(__file__).resolve().parents[2]


def openai_call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"id": f"call_{name}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}


def test_definitions_are_openai_function_tools_with_the_mcp_arguments() -> None:
    defs = tool_definitions()
    assert [d["function"]["name"] for d in defs] == list(TOOL_NAMES)
    for d in defs:
        assert d["type"] == "function" and len(d["function"]["description"]) > 40
        params = d["function"]["parameters"]
        assert params["type"] == "object" and params["additionalProperties"] is False
        assert all(p.get("description") for p in params["properties"].values())
        assert "title" not in json.dumps(params)
    pytest.importorskip("mcp", reason="the comparison needs the [server] extra")
    import anyio

    from memkit.server.mcp_server import build_mcp

    async def mcp_tools() -> dict[str, Any]:
        server = build_mcp(lambda: None, lambda ctx: None)  # type: ignore[arg-type,return-value]
        return {t.name: t.input_schema for t in await server.list_tools()}

    mcp = anyio.run(mcp_tools)
    for d in defs:
        ours = d["function"]["parameters"]
        theirs = mcp[d["function"]["name"]]
        assert sorted(ours["properties"]) == sorted(theirs["properties"])
        assert sorted(ours.get("required", [])) == sorted(theirs.get("required", []))
    with pytest.raises(InvalidInput, match="unknown memory tool"):
        tool_definitions(["remember", "nope"])


def test_dispatcher_runs_each_tool_within_its_scope(mem: Memory) -> None:
    other = mem.write("u2's secret", scope={"user": "u2"})
    tools = ToolDispatcher(mem, scope={"user": "u1"})
    made = tools.execute(openai_call("remember", text="Dana likes aisle seats.",
                                     source="chat", ttl_seconds=3600))
    assert made == {"id": made["id"], "created": True}
    assert mem.get(made["id"]).scope.user == "u1" and mem.get(made["id"]).expires_at
    found = tools.execute(openai_call("recall", query="secret seats", k=5))
    assert [m["text"] for m in found["memories"]] == ["Dana likes aisle seats."]
    new = tools.execute(openai_call("update_memory", id=made["id"],
                                    text="Dana likes window seats."))["id"]
    assert [v.text for v in mem.versions(new)] == ["Dana likes aisle seats.",
                                                   "Dana likes window seats."]
    # another scope's item looks missing, and nothing happens to it
    assert tools.execute(openai_call("forget", ids=[other]))["error"].startswith("NotFound")
    assert tools.execute(openai_call("update_memory", id=other, text="x"))["error"] \
        .startswith("NotFound")
    assert tools.execute(openai_call("forget", ids=[new], reason="asked"))["deleted"] == \
        [made["id"], new]
    assert mem.get(other).text == "u2's secret"


@pytest.mark.parametrize("call, message", [
    ({"name": "nope", "arguments": {}}, "unknown tool 'nope'"),
    ({"name": "recall", "arguments": "{bad"}, "arguments are not valid JSON"),
    ({"name": "recall", "arguments": {"query": "x", "k": 99}}, "k: Input should be less"),
    ({"name": "recall", "arguments": {"query": "x", "scope": "other"}}, "scope: Extra inputs"),
    ({"name": "remember", "arguments": {}}, "text: Field required"),
    ({"name": "remember", "arguments": {"text": "   "}}, "text is empty"),
])
def test_bad_calls_become_errors_the_model_can_read(mem: Memory, call: dict[str, Any],
                                                    message: str) -> None:
    tools = ToolDispatcher(mem)
    assert message in tools.execute(call)["error"]
    with pytest.raises(InvalidInput, match=message.split(":")[0]):
        ToolDispatcher(mem, raise_errors=True).execute(call)
    assert mem.stats()["items"] == 0


def test_parse_tool_calls() -> None:
    one = {"name": "recall", "arguments": {"query": "x"}}
    assert parse_tool_calls(json.dumps({"tool_calls": [one]})) == [one]
    assert parse_tool_calls(json.dumps(one)) == [one]
    assert parse_tool_calls("```json\n" + json.dumps([one]) + "\n```") == [one]
    assert parse_tool_calls("Paris is the capital.") is None
    assert parse_tool_calls('{"answer": 42}') is None


def test_a_scripted_model_drives_a_full_tool_call_loop(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "examples"))
    try:
        import agent_loop
    finally:
        sys.path.remove(str(REPO / "examples"))
    llm = agent_loop.scripted_tool_llm()
    with Memory.open(tmp_path / "agent", embedder=HashEmbedder(128)) as mem:
        turns = agent_loop.run_with_tools(mem, agent_loop.SCRIPT, llm, scope={"user": "d"})
        assert [a for _, a in turns] == [
            "Noted, I'll remember that.", "Noted, I'll remember that.",
            "From memory: The user's favourite tea is genmaicha.",
            "From memory: The user is flying to Lisbon on 14 March."]
        assert sorted(i.text for i in mem.store.iter_items()) == [
            "The user is flying to Lisbon on 14 March.",
            "The user's favourite tea is genmaicha."]
        # what went back to the model after a recall is the tool result message
        fed = [c.prompt for c in llm.calls if c.prompt.startswith("tool results: ")]
        result = json.loads(fed[2].removeprefix("tool results: "))[0]
        assert result["role"] == "tool" and result["tool_call_id"] == "call_recall"
        assert json.loads(result["content"])["memories"][0]["text"] == \
            "The user's favourite tea is genmaicha."
    # a model that never stops calling tools is cut off after max_steps
    looping = ScriptedLLM({".": json.dumps({"name": "recall", "arguments": {"query": "x"}})})
    with Memory.open(None, embedder=HashEmbedder(64)) as mem:
        assert agent_loop.run_with_tools(mem, ["hi"], looping, max_steps=3) == \
            [("hi", "(no answer)")]
        assert len(looping.calls) == 3
