"""Serve a dense + hipporag memory whose LLM takes ``--llm-ms`` per call (a scripted fake):
the server half of ``server_load.py --slow-llm-ms``. Importing memkit from ``PYTHONPATH``
lets the same benchmark run against an older checkout (the "before" figures).

    python benchmarks/slow_llm_server.py --memory DIR --port 8123 --llm-ms 1000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--memory", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--llm-ms", type=float, default=1000.0)
    args = ap.parse_args()

    from memkit.llm.fake import ScriptedLLM
    from memkit.server.app import ServeSettings
    from memkit.server.cli import _serve_http

    delay = args.llm_ms / 1000.0

    def slow(reply: str):  # type: ignore[no-untyped-def]
        def answer(prompt: str) -> str:
            time.sleep(delay)  # an LLM call that takes this long (OpenIE, filter)
            return reply
        return answer

    llm = ScriptedLLM({
        r"^Question:": slow(json.dumps({"fact": []})),
        r"triple list": slow(json.dumps({"triples": [["the note", "mentions", "a topic"]]})),
        r"named_entities|named entities": slow(json.dumps({"named_entities": ["the note"]})),
    })
    settings = ServeSettings(memory_dir=Path(args.memory), port=args.port, auth="auto",
                             embedder="hash", backends=["dense", "hipporag"], llm=llm)
    _serve_http(settings, "warning", 1000)


if __name__ == "__main__":
    main()
