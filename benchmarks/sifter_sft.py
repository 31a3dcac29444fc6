"""MemSifter cold start on Gemma-3-270M: LoRA SFT on LoCoMo, evaluated on held-out conversations.

Rows: sessions as query-relevant snippets (``memkit.sifterlab.snippets``: the 8 sessions of
highest MiniLM score, each shown as its 2 best-matching turns, 200 characters each; the
proxy ranks 5). Split by conversation: ``--eval-samples`` (default 7,8,9 of locomo10.json)
are never trained on. Training rows keep the gold sessions among the candidates; evaluation
rows do not (a gold session the prefilter drops is a miss for the proxy too). The reply
taught is an empty think and the gold candidates first.

Reported on the held-out rows, session-level over *all* sessions of the conversation:
the embedding prefilter, prefilter + BM25 (RRF of the two session rankings), and the
proxy (its order of the 8 candidates, then the rest by embedding score); NDCG@1, NDCG@10,
recall@5, the well-formed rate, per category; the learning curve (loss; well-formed rate
and NDCG@1 on ``--n-curve`` held-out rows every ``--eval-every`` steps; step 0 is the base
model zero-shot), and the added latency of ``Memory.read(..., rerank="sifter",
rerank_model=PROXY)`` over a plain read.

    python benchmarks/sifter_sft.py --out evals/sifter/locomo_sft_gemma270m

Resumable: rerunning with the same arguments continues the training from its last
checkpoint and reuses finished evaluations. ``--device cuda`` (with larger
``--n-train``) runs the same script on an accelerator.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "locomo10.json"


def bm25_fused(rows: list[dict[str, Any]], examples: dict[str, Any]) -> list[list[int]]:
    """Per row: RRF (c = 60) of the embedding session ranking and a BM25 session ranking."""
    import bm25s

    out = []
    for r in rows:
        ex = examples[r["qid"]]
        corpus = bm25s.tokenize([u.text for u in ex.units], stopwords="en", show_progress=False)
        index = bm25s.BM25()
        index.index(corpus, show_progress=False)
        q = bm25s.tokenize([r["question"]], stopwords="en", show_progress=False)
        n = len(ex.units)
        ids, _ = index.retrieve(q, k=n, show_progress=False)
        lexical = [int(i) for i in ids[0]]
        score: dict[int, float] = {}
        for ranking in (r["all_ranking"], lexical):
            for pos, s in enumerate(ranking):
                score[s] = score.get(s, 0.0) + 1.0 / (60 + pos + 1)
        out.append(sorted(range(n), key=lambda s: (-score.get(s, 0.0), s)))
    return out


def latency(proxy_dir: Path, rows: list[dict[str, Any]], examples: dict[str, Any],
            n: int) -> dict[str, Any]:
    """p50 of plain dense reads vs the same reads reranked by the trained proxy (8 candidates),
    over one held-out conversation written as memories, one per turn (as a conversation
    memory stores it)."""
    import statistics

    import memkit

    ex = examples[rows[0]["qid"]]
    same = [r for r in rows if examples[r["qid"]].meta["sample"] == ex.meta["sample"]][:n]
    with tempfile.TemporaryDirectory() as d, memkit.Memory.open(d, embedder=None) as mem:
        mem.write_many([{"text": line, "source": str(u.uid)} for u in ex.units
                        for line in u.text.splitlines() if line.strip()],
                       scope={"user": "bench"})
        plain, reranked = [], []
        mem.read(same[0]["question"], k=5, rerank="sifter", rerank_model=str(proxy_dir),
                 rerank_options={"candidates": 8, "max_tokens": 40})  # loads the proxy
        for r in same:
            t = time.perf_counter()
            mem.read(r["question"], k=5)
            plain.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            mem.read(r["question"], k=5, rerank="sifter", rerank_model=str(proxy_dir),
                     rerank_options={"candidates": 8, "max_tokens": 40})
            reranked.append((time.perf_counter() - t) * 1000)
    return {"reads": len(same), "units": "turns",
            "p50_plain_ms": round(statistics.median(plain), 1),
            "p50_sifter_ms": round(statistics.median(reranked), 1),
            "p50_added_ms": round(statistics.median(reranked) - statistics.median(plain), 1)}


def plot(log: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e for e in log if "loss" in e]
    evals = [e for e in log if "eval" in e]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    ax[0].plot([e["step"] for e in steps], [e["loss"] for e in steps])
    ax[0].set(title="SFT loss (reply tokens)", xlabel="optimizer step")
    ax[1].plot([e["step"] for e in evals], [e["eval"]["well_formed_rate"] for e in evals], "o-")
    ax[1].set(title="well-formed rate (curve rows)", xlabel="optimizer step", ylim=(0, 1.05))
    ax[2].plot([e["step"] for e in evals], [e["eval"]["proxy"]["ndcg@1"] for e in evals], "o-",
               label="proxy")
    ax[2].plot([e["step"] for e in evals], [e["eval"]["prefilter"]["ndcg@1"] for e in evals],
               "--", label="prefilter")
    ax[2].set(title="session NDCG@1 (curve rows)", xlabel="optimizer step")
    ax[2].legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default="evals/sifter/locomo_sft_gemma270m")
    ap.add_argument("--base", default="gemma3-270m")
    ap.add_argument("--eval-samples", default="7,8,9")
    ap.add_argument("--n-train", type=int, default=240)
    ap.add_argument("--n-eval", type=int, default=150)
    ap.add_argument("--n-curve", type=int, default=30)
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--turns", type=int, default=2)
    ap.add_argument("--turn-chars", type=int, default=200)
    ap.add_argument("--top-n", type=int, default=5)
    ap.add_argument("--order", choices=["chronological", "score"], default="chronological",
                    help="candidates in the prompt: by date (the paper) or best score first")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--grad-accum", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--latency-reads", type=int, default=10)
    args = ap.parse_args()

    import torch

    from memkit.backends.sifter.prompt import PromptConfig
    from memkit.backends.sifter.trained import load_base_model, write_proxy_dir
    from memkit.embed import load_embedder
    from memkit.llm.transformers_llm import TransformersLLM
    from memkit.sifterlab.data import locomo_examples
    from memkit.sifterlab.sft import (
        SFTSettings,
        attach_proxy_lora,
        evaluate_proxy,
        score_replies,
        train_sft,
    )
    from memkit.sifterlab.snippets import SnippetSettings, snippet_rows, split_by_conversation

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    held = [int(s) for s in args.eval_samples.split(",") if s.strip()]
    examples = locomo_examples(args.data)
    train_ex, eval_ex = split_by_conversation(examples, held)
    rng = random.Random(args.seed)
    train_ex = sorted(rng.sample(train_ex, min(args.n_train, len(train_ex))),
                      key=lambda e: e.qid)
    eval_ex = sorted(rng.sample(eval_ex, min(args.n_eval, len(eval_ex))), key=lambda e: e.qid)
    by_qid = {e.qid: e for e in train_ex + eval_ex}
    snip = SnippetSettings(args.candidates, args.turns, args.turn_chars, args.top_n, args.order)
    config = PromptConfig(top_n=args.top_n)
    embedder = load_embedder(None)
    cache = Path(tempfile.gettempdir()) / "memkit-sifter-sft-cache"
    train_rows = snippet_rows(train_ex, embedder, snip, keep_gold=True, config=config,
                              cache_dir=cache, progress=True)
    eval_rows = snippet_rows(eval_ex, embedder, snip, keep_gold=False, config=config,
                             cache_dir=cache, progress=True)
    curve_rows = eval_rows[: args.n_curve]

    model, tok = load_base_model(args.base)
    model = attach_proxy_lora(model, SFTSettings(lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                                                 seed=args.seed))
    llm = TransformersLLM(model, tokenizer=tok, device=args.device, model_name="sifter-sft")
    settings = SFTSettings(lr=args.lr, epochs=args.epochs, grad_accum=args.grad_accum,
                           lora_r=args.lora_r, lora_alpha=2 * args.lora_r, seed=args.seed)

    def curve(step: int) -> dict[str, Any]:
        res = evaluate_proxy(llm, curve_rows, progress=False)
        print(f"step {step}: well-formed {res['well_formed_rate']:.2f} "
              f"NDCG@1 proxy {res['proxy']['ndcg@1']:.3f} prefilter "
              f"{res['prefilter']['ndcg@1']:.3f}", flush=True)
        return {k: v for k, v in res.items() if k != "replies"}

    log = train_sft(llm, train_rows, settings, out, evaluate=curve, eval_every=args.eval_every)
    (out / "log.json").write_text(json.dumps(log, indent=1))
    plot(log, out)
    proxy_dir = write_proxy_dir(out / "proxy", model, base=args.base, config=config,
                                snippets=snip.as_dict(), sft=settings.__dict__,
                                trained_on=f"locomo10 conversations not in {held}",
                                train_questions=len(train_rows))
    final_file = out / "final_eval.json"
    if final_file.exists():  # re-scored from its replies (no generation)
        saved = json.loads(final_file.read_text())
        if [r["qid"] for r in saved["replies"]] != [r["qid"] for r in eval_rows]:
            raise SystemExit(f"{final_file} holds other questions: delete it to re-evaluate")
        final = {**score_replies(eval_rows, [r["reply"] for r in saved["replies"]]),
                 "seconds_per_row": saved["seconds_per_row"]}
        final_file.write_text(json.dumps(final, indent=1))
    else:
        final = evaluate_proxy(llm, eval_rows)
        final_file.write_text(json.dumps(final, indent=1))
    fused = bm25_fused(eval_rows, by_qid)
    from memkit.sifterlab.reward import ndcg_at_k, recall_at_k

    def mean(fn: Any, k: int) -> float:
        return round(sum(fn(f, r["all_gold"], k) for f, r in zip(fused, eval_rows,
                                                                  strict=True)) / len(fused), 4)

    summary = {
        "command": "python benchmarks/sifter_sft.py " + " ".join(sys.argv[1:]),
        "base": args.base, "device": args.device, "split": {
            "eval_conversations": held, "train_questions": len(train_rows),
            "eval_questions": len(eval_rows), "categories": [1, 2, 3, 4]},
        "snippets": snip.as_dict(), "sft": settings.__dict__,
        "gold_among_candidates_eval": round(sum(bool(r["gold"]) for r in eval_rows)
                                            / len(eval_rows), 4),
        "held_out": {"prefilter": final["prefilter"], "proxy": final["proxy"],
                     "prefilter+bm25 (rrf)": {"ndcg@1": mean(ndcg_at_k, 1),
                                              "ndcg@10": mean(ndcg_at_k, 10),
                                              "recall@5": mean(recall_at_k, 5)},
                     "well_formed_rate": final["well_formed_rate"],
                     "by_category": final["by_category"],
                     "seconds_per_ranking": final["seconds_per_row"]},
        "curve": [{"step": e["step"], **{k: e["eval"][k] for k in ("well_formed_rate",
                                                                   "proxy", "prefilter")}}
                  for e in log if "eval" in e],
        "latency": latency(proxy_dir, eval_rows, by_qid, args.latency_reads)
        if args.latency_reads > 0 else None,
        "minutes_this_run": round((time.time() - t_start) / 60, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("held_out", "latency")}, indent=2))


if __name__ == "__main__":
    main()
