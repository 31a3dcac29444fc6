"""RecaLLM training recipe end to end: exact match on a key→value copy task before vs after.

Default: a tiny random-initialised Llama and a word-level tokenizer, on CPU (a few minutes).
Point ``--model`` at a real checkpoint directory (transformers format) to run the same recipe on
a GPU; the task then uses ``--kind digits`` or ``uuid`` values in plain text.

Recipe (ALGORITHMS.md §4): add ``<|start_recall|>`` / ``<|end_recall|>`` (mean-initialised rows);
stage 1 trains only those two embedding rows; stage 2 fine-tunes everything. The target is
``<|start_recall|> value <|end_recall|>``. Exact match is measured three ways after each stage:

* ``free``: greedy decoding, the text between the markers;
* ``recall``: greedy decoding with the recall constraint (trained mode: the model opens spans);
* ``slot``: the constraint, the application opening the span (prompt ends with the start token).

    python benchmarks/recall_train_demo.py                         # tiny model, CPU
    python benchmarks/recall_train_demo.py --model /path/to/ckpt --kind uuid --device cuda \\
        --steps1 200 --steps2 1000 --lr2 2e-5 --pairs 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from memkit.generate.recall_tokens import add_recall_tokens
from memkit.generate.recall_train import (
    StageConfig,
    build_copy_tokenizer,
    copy_exact_match,
    make_copy_examples,
    tiny_llama,
    train_stage,
)


def evaluate(model: Any, tok: Any, test: list[Any], max_new: int) -> dict[str, float]:
    return {
        "free": copy_exact_match(model, tok, test, constrained=False, max_new_tokens=max_new),
        "recall": copy_exact_match(model, tok, test, constrained=True, max_new_tokens=max_new),
        "slot": copy_exact_match(
            model, tok, test, constrained=True, at_slot=True, max_new_tokens=max_new
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="a transformers checkpoint dir (default: tiny)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--kind", default="words", choices=["words", "digits", "uuid"])
    ap.add_argument("--pairs", type=int, default=3, help="records per context")
    ap.add_argument("--keys", type=int, default=20)
    ap.add_argument("--value-len", type=int, default=2)
    ap.add_argument("--train", type=int, default=5000)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--steps1", type=int, default=100)
    ap.add_argument("--steps2", type=int, default=3000)
    ap.add_argument("--lr1", type=float, default=1e-2)
    ap.add_argument("--lr2", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", default=None, help="save the trained model + tokenizer here")
    ap.add_argument("--out", default="evals/recall/train_demo.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.model is None:
        if args.kind != "words":
            ap.error("the tiny model's word-level tokenizer only covers --kind words")
        tok = build_copy_tokenizer(args.keys, args.keys)
        model = tiny_llama(len(tok) + 2, hidden=args.hidden)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
    add_recall_tokens(tok, model)
    model.to(args.device)
    kw = {
        "n_pairs": args.pairs,
        "n_keys": args.keys,
        "n_values": args.keys,
        "value_len": args.value_len,
        "kind": args.kind,
    }
    train = make_copy_examples(args.train, seed=1, **kw)
    test = make_copy_examples(args.test, seed=2, **kw)
    max_new = 8 + 2 * len(tok(train[0].answer, add_special_tokens=False)["input_ids"])
    report: dict[str, Any] = {"args": vars(args), "em": {}, "loss": {}, "seconds": {}}
    report["em"]["before"] = evaluate(model, tok, test, max_new)
    print("before", report["em"]["before"], flush=True)
    for name, stage in (
        ("stage1_embeddings", StageConfig("embeddings", args.steps1, args.lr1, args.batch)),
        ("stage2_full", StageConfig("full", args.steps2, args.lr2, args.batch)),
    ):
        t0 = time.perf_counter()
        losses = train_stage(model, tok, train, stage)
        report["seconds"][name] = time.perf_counter() - t0
        report["loss"][name] = [losses[0], losses[-1]] if losses else []
        report["em"][name] = evaluate(model, tok, test, max_new)
        print(name, report["em"][name], f"loss {losses[0]:.3f}->{losses[-1]:.3f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "| after | EM free | EM recall (model opens span) | EM slot (span at answer) |",
        "|---|---:|---:|---:|",
    ]
    for k, v in report["em"].items():
        lines.append(f"| {k} | {v['free']:.2f} | {v['recall']:.2f} | {v['slot']:.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.save:
        model.save_pretrained(args.save)
        tok.save_pretrained(args.save)


if __name__ == "__main__":
    main()
