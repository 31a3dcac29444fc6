"""LLM boundary benchmark: HTTP concurrency, SQLite cache hits, and (opt-in) Gemma-3-270M.

    python benchmarks/llm_throughput.py                  # HTTP + cache (about 10 s)
    python benchmarks/llm_throughput.py --gemma          # + the packaged GGUF on llama.cpp

1. ``OpenAICompatible.complete_many`` against a local chat-completions server (standard
   library, 127.0.0.1) that answers each request after a fixed simulated latency: wall time
   with ``concurrency=1`` versus ``concurrency=8``. The ideal speed-up is min(8, n).
2. ``CachedLLM`` over that server on a real SQLite file: a pass of misses versus a pass of
   hits over the same prompts (per-call milliseconds).
3. ``--gemma``: Gemma-3-270M Q4_K_M through llama.cpp, free generation versus
   grammar-constrained ``complete_json`` (tokens per second, ms per call).

Every ratio compares figures measured in this one run on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pydantic
from tqdm import tqdm

from memkit.llm import CachedLLM, OpenAICompatible


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.server.latency_s)
        text = body["messages"][-1]["content"][::-1]
        payload = json.dumps(
            {
                "model": body["model"],
                "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    latency_s = 0.05


def bench_http(n: int, latency_s: float) -> None:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.latency_s = latency_s
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{srv.server_port}/v1"
    prompts = [f"prompt number {i}" for i in range(n)]
    try:
        print(f"\n[1] complete_many, {n} prompts, server latency {latency_s * 1000:.0f} ms")
        times = {}
        for conc in tqdm((1, 8), desc="concurrency", leave=False):
            llm = OpenAICompatible(url, "bench", concurrency=conc)
            start = time.perf_counter()
            out = llm.complete_many(prompts)
            times[conc] = time.perf_counter() - start
            assert [c.text for c in out] == [p[::-1] for p in prompts]
            print(f"    concurrency={conc}: {times[conc]:.2f} s ({n / times[conc]:.1f} req/s)")
        print(f"    speed-up 8 vs 1: {times[1] / times[8]:.1f}x (ideal {min(8, n)}x)")

        print(f"\n[2] CachedLLM on a SQLite file, {n} prompts, one by one")
        with tempfile.TemporaryDirectory() as tmp:
            cached = CachedLLM(OpenAICompatible(url, "bench"), Path(tmp) / "cache.db")
            per_call = {}
            for label in ("miss", "hit"):
                start = time.perf_counter()
                for p in tqdm(prompts, desc=label, leave=False):
                    cached.complete(p)
                per_call[label] = (time.perf_counter() - start) / n * 1000
            cached.close()
        print(f"    miss: {per_call['miss']:.2f} ms/call   hit: {per_call['hit']:.3f} ms/call")
        print(f"    hit is {per_call['miss'] / per_call['hit']:.0f}x faster than a miss")
        print(f"    usage: {cached.usage}")
    finally:
        srv.shutdown()
        srv.server_close()


class _Answer(pydantic.BaseModel):
    city: str
    country: str


def bench_gemma(calls: int) -> None:
    from memkit.llm import load_llm

    llm = load_llm("gemma3-270m", n_ctx=1024, n_threads=1)
    prompt = "Where is the Eiffel Tower? Reply as JSON with the city and country."
    print(f"\n[3] Gemma-3-270M Q4_K_M (llama.cpp, 1 thread), {calls} calls each, max_tokens=48")
    llm.complete(prompt, max_tokens=8)  # warm-up: page the weights in, outside the timing
    rows = {}
    for label in ("free", "json grammar"):
        before = llm.usage.copy()
        start = time.perf_counter()
        for _ in tqdm(range(calls), desc=label, leave=False):
            if label == "free":
                llm.complete(prompt, max_tokens=48)
            else:
                llm.complete(prompt, max_tokens=48, json_schema=_Answer)
        wall = time.perf_counter() - start
        spent = llm.usage - before
        rows[label] = (wall / calls * 1000, spent.completion_tokens / wall)
        print(f"    {label}: {rows[label][0]:.0f} ms/call, {rows[label][1]:.1f} generated tok/s")
    ratio = rows["json grammar"][1] / rows["free"][1]
    print(f"    grammar tok/s relative to free generation: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64, help="prompts per HTTP pass")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--gemma", action="store_true", help="also run the packaged GGUF")
    parser.add_argument("--gemma-calls", type=int, default=5)
    args = parser.parse_args()
    cpus, py = os.cpu_count(), platform.python_version()
    print(f"machine: {platform.machine()}, {cpus} CPUs, Python {py}")
    bench_http(args.n, args.latency_ms / 1000)
    if args.gemma:
        bench_gemma(args.gemma_calls)


if __name__ == "__main__":
    main()
