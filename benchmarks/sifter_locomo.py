"""LoCoMo session retrieval: embedding prefilter alone vs prefilter + MemSifter proxy ranking.

Units are sessions; gold = sessions holding the question's evidence turns (categories 1-4).
Metrics are session-level NDCG@1, NDCG@10 and Recall@5 over each conversation's sessions:

- ``prefilter``: all sessions by MiniLM score (max over each session's chunks).
- ``sifter``: the proxy's order of the units kept by the prefilter (budget ``--budget-tokens``;
  units it leaves out follow in prefilter order), then the sessions the budget dropped.

Zero-shot plumbing check with the packaged Gemma-3-270M (weak; report honestly)::

    python benchmarks/sifter_locomo.py --proxy gemma3-270m --n 60 --budget-tokens 3000

A real proxy (a trained MemSifter checkpoint served by vLLM or an OpenAI-compatible server)::

    python benchmarks/sifter_locomo.py --proxy openai:http://localhost:8000/v1@memsifter-4b \\
        --n 0 --budget-tokens 16000 --max-tokens 4096

Per-question results are appended to ``<out>/rows.jsonl``; rerunning resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tqdm import tqdm  # noqa: E402

from memkit.backends.sifter.prefilter import prefilter  # noqa: E402
from memkit.backends.sifter.rank import ProxyRanker  # noqa: E402
from memkit.sifterlab.data import UnitScorer, locomo_examples  # noqa: E402
from memkit.sifterlab.reward import ndcg_at_k, recall_at_k  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "locomo10.json"


def make_proxy(spec: str, n_ctx: int, threads: int):  # type: ignore[no-untyped-def]
    if spec == "none":
        return None
    if spec == "gemma3-270m":
        from memkit.llm import LlamaCppLLM, gemma3_270m_path

        return LlamaCppLLM(gemma3_270m_path(), n_ctx=n_ctx, n_threads=threads)
    from memkit.llm import load_llm

    return load_llm(spec)


def summarise(rows: list[dict], key: str) -> dict[str, float]:
    n = max(len(rows), 1)
    return {m: round(sum(r[key][m] for r in rows) / n, 4)
            for m in ("ndcg@1", "ndcg@10", "recall@5")}


def metrics(order: list[int], gold: list[int]) -> dict[str, float]:
    return {"ndcg@1": ndcg_at_k(order, gold, 1), "ndcg@10": ndcg_at_k(order, gold, 10),
            "recall@5": recall_at_k(order, gold, 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy", default="gemma3-270m",
                    help="'gemma3-270m', 'none' (prefilter only) or a memkit.llm spec")
    ap.add_argument("--n", type=int, default=60, help="questions (0: all), sampled with --seed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-tokens", type=int, default=3000)
    ap.add_argument("--top-n", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=256, help="proxy reply budget")
    ap.add_argument("--n-ctx", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--out", default="evals/sifter/locomo_gemma270m")
    args = ap.parse_args()

    from memkit.embed import load_embedder

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    examples = locomo_examples(DATA)
    embedder = load_embedder(args.embedder)
    # embed every session once (cached): runs on different question samples share the vectors
    scorer = UnitScorer(embedder, [u for e in examples for u in e.units],
                        cache_dir="/tmp/memkit-cache/sifter", progress=True)
    if args.n:
        examples = random.Random(args.seed).sample(examples, min(args.n, len(examples)))
    qvecs = embedder.embed_queries([e.question for e in examples])
    proxy = make_proxy(args.proxy, args.n_ctx, args.threads)
    ranker = ProxyRanker(proxy, top_n=args.top_n, max_tokens=args.max_tokens) if proxy else None

    rows_path = out / "rows.jsonl"
    done = {}
    if rows_path.exists():
        done = {r["qid"]: r for r in map(json.loads, rows_path.read_text().splitlines())}
    t0 = time.time()
    with open(rows_path, "a") as f:
        for ex, qv in tqdm(list(zip(examples, qvecs, strict=True)), desc="questions"):
            if ex.qid in done:
                continue
            scores = scorer.scores(qv, ex.units)
            pre_order = sorted(range(len(ex.units)), key=lambda i: (-scores[i], i))
            row = {"qid": ex.qid, "category": ex.category, "gold": ex.gold,
                   "n_sessions": len(ex.units), "prefilter": metrics(pre_order, ex.gold)}
            if ranker is not None:
                pre = prefilter(ex.question, ex.units, embedder, args.budget_tokens,
                                scores=scores)
                by_score = sorted(range(len(pre.units)), key=lambda i: (-pre.scores[i], i))
                ts = time.perf_counter()
                res = ranker.rank(ex.question, pre.units, fallback=by_score)
                kept_order = [pre.indices[i] for i in res.order]
                order = kept_order + [i for i in pre_order if i not in set(kept_order)]
                row.update({
                    "sifter": metrics(order, ex.gold),
                    "prefilter_kept_gold": len(set(pre.indices) & set(ex.gold)) / len(ex.gold),
                    "n_candidates": len(pre.units), "proxy_well_formed": res.parsed.ok,
                    "proxy_errors": res.parsed.errors, "proxy_seconds":
                        round(time.perf_counter() - ts, 2),
                    "prompt_tokens": res.cost.prompt_tokens, "reply": res.text[:400],
                })
            done[ex.qid] = row
            f.write(json.dumps(row) + "\n")
            f.flush()
    rows = [done[e.qid] for e in examples if e.qid in done]
    summary = {
        "command": "python " + " ".join(sys.argv),
        "questions": len(rows), "proxy": args.proxy, "budget_tokens": args.budget_tokens,
        "embedder": embedder.name, "prefilter": summarise(rows, "prefilter"),
        "minutes_this_run": round((time.time() - t0) / 60, 1),
    }
    if ranker is not None:
        srows = [r for r in rows if "sifter" in r]
        summary["sifter"] = summarise(srows, "sifter")
        summary["prefilter_same_questions"] = summarise(srows, "prefilter")
        m = max(len(srows), 1)
        summary["proxy_well_formed_rate"] = round(sum(r["proxy_well_formed"] for r in srows) / m, 4)
        summary["gold_kept_by_budget"] = round(sum(r["prefilter_kept_gold"] for r in srows) / m, 4)
        summary["mean_candidates"] = round(sum(r["n_candidates"] for r in srows) / m, 2)
        summary["mean_proxy_seconds"] = round(sum(r["proxy_seconds"] for r in srows) / m, 2)
        summary["mean_prompt_tokens"] = round(sum(r["prompt_tokens"] for r in srows) / m, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
