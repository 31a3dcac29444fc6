"""Panini write cost on MuSiQue passages.

1. LLM-free writer: items/s of the spaCy parse + workspace building + validation alone, and of
   the whole backend ``add`` with the hash embedder (so the figure is the writer's, not the
   embedding model's); texts embedded per item (what MiniLM would embed).
2. LLM writer, scripted: calls and prompt/completion tokens per document, with a scripted LLM
   whose reply is a realistic workspace (the parse writer's, as JSON) - token counts are
   memkit's estimates (4 chars/token).
3. LLM writer with the packaged Gemma-3-270M (llama.cpp, CPU) on a few documents: a plumbing
   check (calls, real tokens, seconds, how many workspaces validated / were rejected and why).

    python benchmarks/panini_write_cost.py [--n 300] [--gemma 3] [--out evals/panini]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memkit import Memory  # noqa: E402
from memkit.backends.panini.extract_parse import ParseWriter  # noqa: E402
from memkit.backends.panini.gsw import WorkspaceRejected, normalize  # noqa: E402
from memkit.embed import HashEmbedder  # noqa: E402
from memkit.llm.fake import ScriptedLLM  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "musique_dev200.jsonl"


def passages(n: int) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for line in DATA.open():
        for p in json.loads(line)["paragraphs"]:
            seen.setdefault((p["title"], p["paragraph_text"]), None)
    return list(seen)[:n]


def parse_only(docs: list[tuple[str, str]]) -> dict:
    w = ParseWriter()
    w.write(docs[:8])  # load and warm the pipeline outside the timing
    t = time.perf_counter()
    raws = w.write(docs)
    ok = rejected = qa = ents = 0
    for (title, _), raw in zip(docs, raws, strict=True):
        try:
            ws, _ = normalize(raw, title)
            ok += 1
            qa += ws.qa_count()
            ents += len(ws.entities)
        except WorkspaceRejected:
            rejected += 1
    dt = time.perf_counter() - t
    return {"items": len(docs), "seconds": round(dt, 2), "items_per_s": round(len(docs) / dt, 1),
            "ok": ok, "rejected": rejected, "qa_pairs_per_item": round(qa / max(ok, 1), 1),
            "entities_per_item": round(ents / max(ok, 1), 1)}


def backend_add(docs: list[tuple[str, str]], llm=None, writer="parse") -> dict:  # type: ignore
    mem = Memory.open(None, backends=["panini"], embedder=HashEmbedder(256), llm=llm,
                      backend_options={"panini": {"writer": writer, "entity_search": "bm25"}})
    t = time.perf_counter()
    mem.write_many([{"text": f"{a}\n{b}", "metadata": {"title": a}} for a, b in docs],
                   batch_size=64)
    dt = time.perf_counter() - t
    stats = mem.stats()["backends"]["panini"]
    mem.close()
    return {"items": len(docs), "seconds": round(dt, 2),
            "items_per_s": round(len(docs) / dt, 1), "stats": stats}


def scripted_llm_cost(docs: list[tuple[str, str]]) -> dict:
    raws = ParseWriter().write(docs)
    replies = {b[:60]: r.model_dump_json() for (_, b), r in zip(docs, raws, strict=True)}

    def reply(prompt: str) -> str:
        for head, js in replies.items():
            if head in prompt:
                return js
        return "{}"

    llm = ScriptedLLM({r"Write the document below": reply})
    out = backend_add(docs, llm=llm, writer="llm")
    wc = out["stats"]["write_cost"]
    n = wc["docs"]
    return {"docs": n, "calls_per_doc": round(wc["llm_calls"] / n, 2),
            "prompt_tokens_per_doc": round(wc["prompt_tokens"] / n, 1),
            "completion_tokens_per_doc": round(wc["completion_tokens"] / n, 1),
            "token_counts": "estimates (4 chars/token) from ScriptedLLM",
            "docs_ok": out["stats"].get("docs_ok", 0),
            "docs_rejected": out["stats"].get("docs_rejected", 0)}


def gemma_cost(docs: list[tuple[str, str]]) -> dict:
    from memkit.llm import load_llm

    llm = load_llm("gemma3-270m", n_ctx=4096)
    mem = Memory.open(None, backends=["panini"], embedder=HashEmbedder(256), llm=llm,
                      backend_options={"panini": {"writer": "llm", "entity_search": "bm25",
                                                  "writer_max_tokens": 768}})
    t = time.perf_counter()
    ids = [mem.write(f"{a}\n{b}", metadata={"title": a}) for a, b in docs]
    dt = time.perf_counter() - t
    backend = mem.backends["panini"]
    statuses = [backend.status(i) for i in ids]
    wc = backend.stats()["write_cost"]
    mem.close()
    return {"docs": len(docs), "seconds": round(dt, 1),
            "calls_per_doc": round(wc["llm_calls"] / len(docs), 2),
            "prompt_tokens_per_doc": round(wc["prompt_tokens"] / len(docs), 1),
            "completion_tokens_per_doc": round(wc["completion_tokens"] / len(docs), 1),
            "statuses": [{"status": s["status"], "reason": (s["reason"] or "")[:160],
                          "repairs": len(s["repairs"])} for s in statuses if s]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--gemma", type=int, default=3)
    ap.add_argument("--out", default="evals/panini")
    args = ap.parse_args()
    docs = passages(args.n)
    out: dict = {"command": "python " + " ".join(sys.argv), "passages": len(docs)}
    out["parse_writer_only"] = parse_only(docs)
    print("parse writer only:", out["parse_writer_only"], flush=True)
    out["backend_add_parse_hash_embedder"] = backend_add(docs)
    print("backend add:", out["backend_add_parse_hash_embedder"], flush=True)
    out["llm_writer_scripted"] = scripted_llm_cost(docs)
    print("scripted LLM writer:", out["llm_writer_scripted"], flush=True)
    if args.gemma:
        try:
            out["llm_writer_gemma3_270m"] = gemma_cost(docs[:args.gemma])
        except Exception as exc:  # a plumbing check: report what broke
            out["llm_writer_gemma3_270m"] = {"error": f"{type(exc).__name__}: {exc}"}
        print("gemma:", out["llm_writer_gemma3_270m"], flush=True)
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "write_cost.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
