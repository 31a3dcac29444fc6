"""Per-step cost of the RecaLLM constraint vs unconstrained decoding, by context length.

Synthetic token ids (Zipf-distributed, like text: frequent tokens have many positions, which is
what makes the first in-span steps expensive). For each context length we replay a generation of
``--steps`` tokens that alternates free text and recall spans copied from the context
(``--span-len`` tokens each), and time, per step:

* ``baseline``: what an unconstrained greedy step does with the scores (argmax over the vocab);
* ``core``: the framework-free state machine alone (observe the token + compute the allowed set);
* ``hf``: the transformers ``RecallLogitsProcessor.__call__`` on a (1, vocab) score tensor
  (core + masking the scores), i.e. the real per-token overhead added to ``generate``;

split into outside-span, span-opening (empty prefix) and in-span steps, plus the one-time cost
of indexing the prompt (first call). Writes ``evals/recall/overhead.json`` and a markdown table.

    python benchmarks/recall_overhead.py                      # 1k, 8k, 32k, 128k; vocab 262144
    python benchmarks/recall_overhead.py --vocab 32000 --lengths 1024 131072
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from memkit.generate.recall import RecallConfig, RecallState
from memkit.generate.recall_hf import RecallLogitsProcessor

START, END = 0, 1  # reserve two ids for the recall tokens


def synthetic_context(n: int, vocab: int, rng: np.random.Generator) -> np.ndarray:
    """Zipf(1.1) ids in [2, vocab): a text-like frequency profile."""
    z = rng.zipf(1.1, size=n)
    return (2 + (z - 1) % (vocab - 2)).astype(np.int64)


def plan(ctx: np.ndarray, steps: int, span_len: int, rng: np.random.Generator) -> list[int]:
    """Generated tokens: 8 free tokens, a start token, ``span_len`` copied tokens, end; repeat."""
    out: list[int] = []
    while len(out) < steps:
        out += rng.integers(2, 50, size=8).tolist()
        j = int(rng.integers(0, len(ctx) - span_len))
        out += [START, *ctx[j : j + span_len].tolist(), END]
    return out[:steps]


def kind_of(state: RecallState) -> str:
    if not state.in_span:
        return "outside"
    n = len(state.open_span_tokens)
    return "open" if n == 0 else ("first" if n == 1 else "in_span")


def bench_length(n: int, vocab: int, steps: int, span_len: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ctx = synthetic_context(n, vocab, rng)
    gen = plan(ctx, steps, span_len, rng)
    cfg = RecallConfig(start_id=START, end_id=END)
    ids = torch.from_numpy(np.concatenate([ctx, np.asarray(gen, dtype=np.int64)]))[None, :]
    scores = torch.randn(1, vocab)

    # baseline: argmax over the scores (the minimum an unconstrained greedy step does with them)
    base = []
    for _ in range(steps):
        s = scores.clone()
        t0 = time.perf_counter()
        int(torch.argmax(s[0]))
        base.append(time.perf_counter() - t0)

    # core alone
    st = RecallState(cfg, vocab)
    t0 = time.perf_counter()
    st.observe(ctx)
    core_init = time.perf_counter() - t0
    core: dict[str, list[float]] = {"outside": [], "open": [], "first": [], "in_span": []}
    alive_first: list[int] = []
    for tok in gen:
        k = kind_of(st)
        if k == "first":
            alive_first.append(int(st._alive.size))
        t0 = time.perf_counter()
        st.allowed()
        st.observe([tok])
        core[k].append(time.perf_counter() - t0)

    # the transformers processor
    proc = RecallLogitsProcessor(cfg)
    t0 = time.perf_counter()
    proc(ids[:, :n], scores.clone())
    hf_init = time.perf_counter() - t0
    hf: dict[str, list[float]] = {"outside": [], "open": [], "first": [], "in_span": []}
    for i in range(1, len(gen)):
        k = kind_of(proc.states[0])
        s = scores.clone()
        view = ids[:, : n + i]
        t0 = time.perf_counter()
        proc(view, s)
        hf[k].append(time.perf_counter() - t0)

    def ms(xs: list[float]) -> float:  # median: robust to scheduler noise on a shared box
        return 1e3 * statistics.median(xs) if xs else float("nan")

    all_hf = [x for v in hf.values() for x in v]
    all_core = [x for v in core.values() for x in v]
    return {
        "context_tokens": n,
        "vocab": vocab,
        "steps": steps,
        "baseline_argmax_ms": ms(base),
        "core_ms": ms(all_core),
        "core_ms_by_kind": {k: ms(v) for k, v in core.items()},
        "hf_ms": ms(all_hf),
        "hf_ms_mean": 1e3 * statistics.mean(all_hf),
        "hf_ms_p95": 1e3 * float(np.percentile(all_hf, 95)),
        "hf_ms_by_kind": {k: ms(v) for k, v in hf.items()},
        "index_prompt_ms_core": 1e3 * core_init,
        "index_prompt_ms_hf_first_call": 1e3 * hf_init,
        "distinct_context_tokens": int(np.unique(ctx).size),
        "alive_after_first_span_token_median": float(np.median(alive_first)),
        "alive_after_first_span_token_max": int(max(alive_first)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 8192, 32768, 131072])
    ap.add_argument("--vocab", type=int, default=262144, help="262144 = Gemma 3's vocabulary")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--span-len", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="evals/recall/overhead.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [
        bench_length(n, args.vocab, args.steps, args.span_len, seed=n)
        for n in tqdm(args.lengths, desc="context lengths")
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"vocab {args.vocab}, {args.steps} steps, spans of {args.span_len} tokens, "
        f"{args.threads} torch thread(s)",
        "",
        "median ms per step (p95 for the processor);",
        "outside / open / 1st / later = processor by step kind",
        "(open = empty prefix, 1st = first in-span step, alive = matches after 1 span token)",
        "",
        "| context | argmax ms | core ms | hf ms | hf p95 | outside | open | 1st | later "
        "| alive med/max | index prompt ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        k = r["hf_ms_by_kind"]
        lines.append(
            f"| {r['context_tokens']} | {r['baseline_argmax_ms']:.3f} | {r['core_ms']:.3f} | "
            f"{r['hf_ms']:.3f} | {r['hf_ms_p95']:.3f} | {k['outside']:.3f} | {k['open']:.3f} | "
            f"{k['first']:.3f} | {k['in_span']:.3f} | "
            f"{r['alive_after_first_span_token_median']:.0f}/"
            f"{r['alive_after_first_span_token_max']} | "
            f"{r['index_prompt_ms_hf_first_call']:.1f} |"
        )
    table = "\n".join(lines)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)
    plot(rows, out.with_suffix(".png"), args.vocab)


def plot(rows: list[dict[str, Any]], path: Path, vocab: int) -> None:
    """ms per step against context length (log x), if matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    xs = [r["context_tokens"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, [r["baseline_argmax_ms"] for r in rows], "k--", label="argmax (baseline)")
    ax.plot(xs, [r["core_ms"] for r in rows], "o-", label="core state machine")
    ax.plot(xs, [r["hf_ms"] for r in rows], "s-", label="HF processor (median)")
    ax.plot(xs, [r["hf_ms_by_kind"]["open"] for r in rows], "^-", label="HF span-open step")
    ax.axhline(0.2, color="r", lw=0.8, label="0.2 ms target")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context tokens")
    ax.set_ylabel("ms per step")
    ax.set_title(f"RecaLLM constraint cost per step, vocab {vocab}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
