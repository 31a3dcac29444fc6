"""An agent loop with long-term memory: read relevant memories before each reply, write each
exchange after it. The reply function is pluggable: the default needs no LLM (it reports what
it remembers); pass an LLM (memkit.llm.load_llm) to reply with one.

    python examples/agent_loop.py --memory /tmp/agent            # interactive
    python examples/agent_loop.py --memory /tmp/agent --script    # a scripted demo
    python examples/agent_loop.py --memory /tmp/agent --script --tools

With ``--tools`` the model itself decides when to remember and recall, through memkit's
function-calling tools (memkit.tools): each turn it may answer with tool calls as JSON
(``{"tool_calls": [...]}``), which the dispatcher executes against the memory, feeding the
results back until the model answers in plain text. ``--script`` drives this with the
scripted LLM (memkit.llm.ScriptedLLM), so the demo needs no model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from memkit import Hit, Memory
from memkit.tools import ToolDispatcher, parse_tool_calls, tool_definitions

Reply = Callable[[str, list[Hit]], str]


def recall_reply(message: str, memories: list[Hit]) -> str:
    """A reply function with no LLM: say what the memory holds that is relevant."""
    if not memories:
        return "I don't remember anything about that yet."
    best = memories[0].item.text.split("\nagent: ")[0].removeprefix("user: ")
    return f"I remember you said: {best!r}"


def llm_reply(llm: Any) -> Reply:
    def reply(message: str, memories: list[Hit]) -> str:
        context = "\n".join(f"- {h.item.text}" for h in memories) or "(nothing yet)"
        prompt = (f"You are a helpful assistant with a long-term memory.\nRelevant memories:\n"
                  f"{context}\n\nUser: {message}\nAssistant:")
        return str(llm.complete(prompt, max_tokens=200).text.strip())

    return reply


def run(mem: Memory, messages: Iterable[str], reply: Reply, user: str = "demo-user",
        k: int = 3) -> list[tuple[str, str]]:
    """One turn per message: read, reply, write the exchange. Returns the transcript."""
    transcript = []
    scope = {"user": user, "agent": "assistant"}
    for turn, message in enumerate(messages):
        memories = mem.read(message, k=k, scope=scope).hits
        answer = reply(message, memories)
        mem.write(f"user: {message}\nagent: {answer}", scope, source=f"turn:{turn}")
        transcript.append((message, answer))
    return transcript


TOOL_SYSTEM = (
    "You are a helpful assistant with a long-term memory, reached through tools. To call "
    "tools, reply with only JSON: {\"tool_calls\": [{\"name\": ..., \"arguments\": {...}}]}. "
    "Tool results come back as messages starting 'tool results:'. Otherwise reply in plain "
    "text.\nTools: ")


def run_with_tools(target: Any, messages: Iterable[str], llm: Any, *,
                   scope: dict[str, str] | None = None, max_steps: int = 4
                   ) -> list[tuple[str, str]]:
    """One turn per message; within a turn the model may call memory tools (executed by a
    ToolDispatcher on ``target``, a Memory or a Client) until it replies in plain text."""
    tools = ToolDispatcher(target, scope=scope)
    system = TOOL_SYSTEM + json.dumps(tool_definitions())
    transcript = []
    for message in messages:
        chat: list[dict[str, str]] = [{"role": "system", "content": system},
                                      {"role": "user", "content": message}]
        answer = "(no answer)"
        for _ in range(max_steps):
            text = str(llm.complete(chat, max_tokens=300).text).strip()
            calls = parse_tool_calls(text)
            if calls is None:
                answer = text
                break
            results = [tools.tool_message(call) for call in calls]
            chat += [{"role": "assistant", "content": text},
                     {"role": "user", "content": "tool results: " + json.dumps(results)}]
        transcript.append((message, answer))
    return transcript


def scripted_tool_llm() -> Any:
    """A ScriptedLLM playing a tool-calling model for SCRIPT: it remembers statements and
    recalls before answering questions."""
    from memkit.llm import ScriptedLLM

    def call(name: str, **arguments: Any) -> str:
        return json.dumps({"tool_calls": [{"id": f"call_{name}", "type": "function",
                                           "function": {"name": name,
                                                        "arguments": json.dumps(arguments)}}]})

    def after_tools(text: str) -> str:
        results = json.loads(text.removeprefix("tool results: "))
        content = json.loads(results[0]["content"])
        if "memories" in content:
            found = [m["text"] for m in content["memories"]]
            return f"From memory: {found[0]}" if found else "I don't know yet."
        return "Noted, I'll remember that."

    return ScriptedLLM({
        r"^tool results: ": after_tools,
        r"^What tea": call("recall", query="favourite tea", k=1),
        r"^When is my trip": call("recall", query="flying to Lisbon", k=1),
        r"^My favourite tea": call("remember", text="The user's favourite tea is genmaicha."),
        r"^I'm flying": call("remember", text="The user is flying to Lisbon on 14 March.",
                             source="chat"),
    })


SCRIPT = [
    "My favourite tea is genmaicha.",
    "I'm flying to Lisbon on the 14th of March.",
    "What tea do I like?",
    "When is my trip to Lisbon?",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="agent loop with memory")
    ap.add_argument("--memory", required=True)
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--llm", default=None, help="LLM spec for replies (memkit.llm.load_llm)")
    ap.add_argument("--script", action="store_true", help="run a scripted conversation")
    ap.add_argument("--tools", action="store_true",
                    help="let the model call memory tools (needs --llm, or --script)")
    args = ap.parse_args(argv)
    reply: Reply = recall_reply
    if args.llm:
        from memkit.llm import load_llm

        reply = llm_reply(load_llm(args.llm))
    kwargs = {"embedder": args.embedder} if args.embedder else {}
    messages: Iterable[str] = SCRIPT if args.script else (line.strip() for line in sys.stdin)
    with Memory.open(args.memory, **kwargs) as mem:
        if args.tools:
            if args.llm:
                from memkit.llm import load_llm

                llm = load_llm(args.llm)
            elif args.script:
                llm = scripted_tool_llm()
            else:
                ap.error("--tools needs --llm (or --script for the scripted model)")
            turns = run_with_tools(mem, messages, llm, scope={"user": "demo-user"})
        else:
            turns = run(mem, messages, reply)
        for message, answer in turns:
            print(f"user:  {message}\nagent: {answer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
