"""memkit.tools against the HTTP Client: the same tool calls work over a real server, and the
key (not a tool argument) confines them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from memkit.client import Client
from memkit.tools import ToolDispatcher

if TYPE_CHECKING:
    from conftest import Served

REPO = Path(__file__).resolve().parents[2]


def test_tool_loop_over_the_http_client(served: Served) -> None:
    sys.path.insert(0, str(REPO / "examples"))
    try:
        import agent_loop
    finally:
        sys.path.remove(str(REPO / "examples"))
    with Client(served.url, served.keys["acme_u1"]) as client:
        turns = agent_loop.run_with_tools(client, agent_loop.SCRIPT,
                                          agent_loop.scripted_tool_llm())
        assert turns[2][1] == "From memory: The user's favourite tea is genmaicha."
        assert turns[3][1] == "From memory: The user is flying to Lisbon on 14 March."
    with Client(served.url, served.keys["admin"]) as admin:
        hits = admin.read("favourite tea", k=5, scope={"namespace": "acme", "user": "u1"}).hits
        assert [h.text for h in hits][0] == "The user's favourite tea is genmaicha."
        secret = admin.write("globex plan", scope={"namespace": "globex"})
    with Client(served.url, served.keys["acme_u1"]) as client:
        tools = ToolDispatcher(client)
        got = tools.execute({"name": "forget", "arguments": json.dumps({"ids": [secret]})})
        assert "error" in got and "NotFound" in got["error"]
        # ids are opaque per namespace on the server: the tenant uses the id it was given
        mine = tools.execute({"name": "recall", "arguments": {"query": "favourite tea",
                                                              "k": 1}})["memories"][0]["id"]
        assert mine != hits[0].id  # the admin's (internal) id is not the tenant's
        new = tools.execute({"name": "update_memory",
                             "arguments": {"id": mine, "text": "Tea: sencha now."}})
        assert tools.execute({"name": "recall", "arguments": {"query": "tea now", "k": 1}})[
            "memories"][0]["id"] == new["id"]
