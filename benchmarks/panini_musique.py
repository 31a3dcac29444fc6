"""MuSiQue-200 retrieval: dense vs Panini (single-hop, and *oracle* decomposition) [vs HippoRAG].

Builds (or reopens, resumably) one memory over the 3,141 unique passages (f"{title}\\n{text}",
metadata title) with the Panini LLM-free writer and the dense backend, MiniLM embeddings, then
for every question measures Recall@2/5 of the supporting passages among the items behind the
surviving chains, the reader-context tokens (memkit.fusion.approx_tokens of the rendered
evidence; for dense, of the top-5 passages), abstentions and latency.

Oracle = MuSiQue's gold ``question_decomposition`` used as the decomposition (placeholders
filled by the beams, gold answers unused): analysis only, always labelled "oracle".

    python benchmarks/panini_musique.py [--limit N] [--cache DIR] [--out evals/panini]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm.auto import tqdm  # noqa: E402

from memkit import Memory  # noqa: E402
from memkit.backends.panini import from_musique  # noqa: E402
from memkit.fusion import approx_tokens  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "musique_dev200.jsonl"


def load(limit: int | None) -> tuple[list[dict], list[tuple[str, str]]]:
    rows = [json.loads(line) for line in DATA.open()]
    corpus: dict[tuple[str, str], None] = {}
    for r in rows:  # the corpus is always all 200 questions' passages
        for p in r["paragraphs"]:
            corpus.setdefault((p["title"], p["paragraph_text"]), None)
    return rows[:limit] if limit else rows, list(corpus)


def cached_embedder(spec: str, cache: Path):  # type: ignore[no-untyped-def]
    """The embedder behind a text-hash vector cache (benchmarks/hipporag_data.py), seeded
    with the HippoRAG benchmark's cached passage vectors when present."""
    import shutil

    from benchmarks.hipporag_data import CachedEmbedder, cache_dir
    from memkit.embed import load_embedder

    inner = load_embedder(spec)
    path = cache.parent / f"panini-vectors-{inner.name.replace('/', '_')}.sqlite"
    seed = cache_dir() / f"vectors-{inner.name.replace('/', '_')}.sqlite"
    if not path.exists() and seed.exists():
        shutil.copy(seed, path)
    return CachedEmbedder(inner, path)


def recall(found: list[int], gold: set[int], k: int) -> float:
    return len(set(found[:k]) & gold) / len(gold)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--cache", default="/tmp/memkit-cache/panini-musique")
    ap.add_argument("--out", default="evals/panini")
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--entity-search", default="bm25")
    ap.add_argument("--min-score", type=float, default=0.2)
    ap.add_argument("--tag", default="")
    ap.add_argument("--beam-widths", default="5,10",
                    help="oracle runs, one per beam width (5 = the paper's)")
    args = ap.parse_args()
    rows, corpus = load(args.limit)
    opts = {
        "writer": "parse",
        "decompose": "single",
        "entity_search": args.entity_search,
        "min_score": args.min_score,
    }
    t0 = time.perf_counter()
    embedder = cached_embedder(args.embedder, Path(args.cache))
    mem = Memory.open(
        args.cache,
        backends=["panini", "dense"],
        embedder=embedder,
        backend_options={"panini": opts},
        progress=True,
    )
    panini = mem.backends["panini"]
    t_open = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = mem.write_many(
        [{"text": f"{t}\n{x}", "metadata": {"title": t}} for t, x in corpus],
        batch_size=128,
        progress=True,
        desc="writing passages",
    )
    t_write = time.perf_counter() - t1
    ids = {}
    for item in mem.store.iter_items():
        ids[(item.metadata.get("title"), item.text.partition("\n")[2])] = item.id
    widths = [int(w) for w in args.beam_widths.split(",")]
    systems = ["dense", "panini-single"] + [f"panini-oracle-beam{w}" for w in widths]
    has_hippo = "hipporag" in mem.backends
    per: dict[str, list[dict]] = {s: [] for s in systems}
    for r in tqdm(rows, desc="questions"):
        gold = {
            ids[(p["title"], p["paragraph_text"])] for p in r["paragraphs"] if p["is_supporting"]
        }
        q = r["question"]
        ts = time.perf_counter()
        res = mem.read(q, k=5, backend="dense")
        found = res.ids
        per["dense"].append(
            {
                "r2": recall(found, gold, 2),
                "r5": recall(found, gold, 5),
                "tokens": sum(approx_tokens(h.text) for h in res.hits),
                "ms": (time.perf_counter() - ts) * 1000,
                "abstain": False,
            }
        )
        default_width = panini.beam.beam_width
        runs = [("panini-single", None, default_width)] + [
            (f"panini-oracle-beam{w}", from_musique(q, r["question_decomposition"]), w)
            for w in widths]
        for name, dec, width in runs:
            ts = time.perf_counter()
            # None: the backend's own decomposition (a single hop without an LLM)
            given = None if dec is None else [(sq.text, sq.requires_retrieval)
                                              for sq in dec.questions]
            res = mem.read(q, k=5, backend="panini", trace=True, read_options={
                "panini": {"decomposition": given, "beam_width": width}})
            found = res.ids
            tr = res.traces["panini"]
            per[name].append(
                {
                    "r2": recall(found, gold, 2),
                    "r5": recall(found, gold, 5),
                    "tokens": tr["context_tokens"],
                    "abstain": tr["abstained"],
                    "ms": (time.perf_counter() - ts) * 1000,
                    "hops": len(r["question_decomposition"]),
                    "hits": len(found),
                }
            )
    summary = {}
    for name, xs in per.items():
        summary[name] = {
            "recall@2": round(100 * statistics.mean(x["r2"] for x in xs), 1),
            "recall@5": round(100 * statistics.mean(x["r5"] for x in xs), 1),
            "context_tokens_mean": round(statistics.mean(x["tokens"] for x in xs), 1),
            "abstain_rate": round(100 * statistics.mean(x["abstain"] for x in xs), 1),
            "hits_mean": round(statistics.mean(x.get("hits", 5) for x in xs), 2),
            "ms_mean": round(statistics.mean(x["ms"] for x in xs), 1),
        }
        for hops in (2, 3, 4):
            sub = [x for x in xs if x.get("hops", 0) == hops]
            if sub:
                summary[name][f"recall@5_{hops}hop"] = round(
                    100 * statistics.mean(x["r5"] for x in sub), 1
                )
    stats = mem.stats()["backends"]["panini"]
    out = {
        "command": "python " + " ".join(sys.argv),
        "questions": len(rows),
        "passages": len(corpus),
        "embedder": mem.embedder.name,
        "panini_options": opts,
        "token_count": "memkit.fusion.approx_tokens",
        "note": "panini-oracle-* use MuSiQue's gold question_decomposition (analysis "
        "only); beamN = beam width",
        "hipporag": "not run (backend not open in this memory)" if not has_hippo else "open",
        "build": {
            "open_s": round(t_open, 1),
            "write_s": round(t_write, 1),
            "added": len(report.added),
            "panini": stats,
        },
        "summary": summary,
    }
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    name = f"musique200{args.tag}"
    (dest / f"{name}.json").write_text(json.dumps(out, indent=2))
    lines = [
        f"# MuSiQue-200 retrieval ({len(rows)} questions, {len(corpus)} passages, "
        f"{mem.embedder.name})",
        "",
        f"Command: `{out['command']}`",
        "",
        "| system | R@2 | R@5 | reader tokens | hits | abstain % | ms/q |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, s in summary.items():
        label = n + (" (ORACLE decomposition)" if "oracle" in n else "")
        lines.append(
            f"| {label} | {s['recall@2']} | {s['recall@5']} | "
            f"{s['context_tokens_mean']} | {s['hits_mean']} | {s['abstain_rate']} | "
            f"{s['ms_mean']} |"
        )
    (dest / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    mem.close()


if __name__ == "__main__":
    main()
