"""An agent loop with long-term memory: read relevant memories before each reply, write each
exchange after it. The reply function is pluggable: the default needs no LLM (it reports what
it remembers); pass an LLM (memkit.llm.load_llm) to reply with one.

    python examples/agent_loop.py --memory /tmp/agent            # interactive
    python examples/agent_loop.py --memory /tmp/agent --script    # a scripted demo
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from typing import Any

from memkit import Hit, Memory

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
    args = ap.parse_args(argv)
    reply: Reply = recall_reply
    if args.llm:
        from memkit.llm import load_llm

        reply = llm_reply(load_llm(args.llm))
    kwargs = {"embedder": args.embedder} if args.embedder else {}
    messages: Iterable[str] = SCRIPT if args.script else (line.strip() for line in sys.stdin)
    with Memory.open(args.memory, **kwargs) as mem:
        for message, answer in run(mem, messages, reply):
            print(f"user:  {message}\nagent: {answer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
