"""Train a MemSifter proxy with GRPO and show whether the learning loop works.

CPU proof (default): a random-initialised tiny Llama with a word-level tokenizer, on a
synthetic relevance toy (``--toy category``: which of 4 sessions names a fruit; the gold
position is uniform, so chance NDCG@1 is 0.25), against a SIMULATED working LLM (answers
correctly iff a gold unit is in its top k). The format is taught first by a warm-up that
trains embeddings and norms only, and the GRPO loss covers the ``<ranking>`` span
(``--loss-tokens``). Prints and saves greedy-eval NDCG@1 / answer reward before and after,
the per-step training curves, and a plot (about 4 minutes on 2 CPU cores)::

    python benchmarks/sifter_train.py --out runs/sifter_toy

The same script runs a real proxy against a real working LLM (e.g. on a GPU machine)::

    python benchmarks/sifter_train.py --data locomo --model /models/Qwen3-4B \\
        --working-llm openai:http://localhost:8000/v1@Qwen3-30B-A3B-Instruct \\
        --lr 1e-6 --warmup-steps 0 --top-n 10 --budget-tokens 16000 --steps 500 \\
        --prompts-per-step 16 --max-completion 4096 --bf16 --out runs/sifter_locomo

Rerunning with the same ``--out`` resumes from the last checkpoint (rows and the initial
policy are reused). Every file written says whether the working LLM was simulated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from memkit.backends.sifter.prompt import PromptConfig  # noqa: E402
from memkit.sifterlab.data import (  # noqa: E402
    build_rows,
    load_rows,
    locomo_examples,
    musique_examples,
    save_rows,
    toy_examples,
    toy_match_examples,
)
from memkit.sifterlab.working import SimulatedWorkingLLM, WorkingAgent  # noqa: E402

COMPACT_TASK = "Question : {query} . Rank the {k} most useful sessions ."
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def make_examples(args: argparse.Namespace) -> tuple[list, list]:
    if args.data == "toy" and args.toy in ("category", "choice", "key"):
        return (toy_match_examples(args.n_train, args.toy_units, args.seed + 1, args.toy),
                toy_match_examples(args.n_eval, args.toy_units, args.seed + 2, args.toy))
    if args.data == "toy":
        kw = {"n_units": args.toy_units, "gold_at": args.toy_gold_at}
        return (toy_examples(args.n_train, seed=args.seed + 1, **kw),
                toy_examples(args.n_eval, seed=args.seed + 2, **kw))
    if args.data == "locomo":
        exs = locomo_examples(DATA / "locomo10.json")
        # hold out whole conversations: samples 8-9 evaluate, 0-7 train
        train = [e for e in exs if e.meta["sample"] < 8][: args.n_train]
        test = [e for e in exs if e.meta["sample"] >= 8][: args.n_eval]
        return train, test
    exs = musique_examples(DATA / "musique_dev200.jsonl")
    return exs[: min(args.n_train, 150)], exs[150:150 + args.n_eval]


def make_rows(args: argparse.Namespace, out: Path) -> tuple[list, list, list]:
    paths = out / "train_rows.jsonl", out / "eval_rows.jsonl"
    train_ex, eval_ex = make_examples(args)
    if all(p.exists() for p in paths):
        return load_rows(paths[0]), load_rows(paths[1]), train_ex + eval_ex
    from memkit.embed import load_embedder

    embedder = load_embedder("hash:256" if args.data == "toy" else args.embedder)
    config = PromptConfig(top_n=args.top_n) if not args.compact_prompt else \
        PromptConfig(system=None, task=COMPACT_TASK, top_n=args.top_n)
    kw = {"config": config, "cache_dir": "/tmp/memkit-cache/sifter", "progress": True}
    budget = args.budget_tokens or None
    train_rows = build_rows(train_ex, embedder, budget, **kw)
    eval_rows = build_rows(eval_ex, embedder, budget, **kw)
    save_rows(train_rows, paths[0])
    save_rows(eval_rows, paths[1])
    return train_rows, eval_rows, train_ex + eval_ex


def make_agent(args: argparse.Namespace, examples: list) -> tuple[WorkingAgent, bool]:
    if args.working_llm == "simulated":
        return WorkingAgent(SimulatedWorkingLLM.from_examples(examples)), True
    from memkit.llm import load_llm

    return WorkingAgent(load_llm(args.working_llm), max_tokens=64), False


def plot(out: Path, simulated: bool) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    train = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()] \
        if (out / "train_log.jsonl").exists() else []
    evals = [json.loads(x) for x in (out / "eval_log.jsonl").read_text().splitlines()] \
        if (out / "eval_log.jsonl").exists() else []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    tr = [r for r in train if "reward" in r]
    if tr:
        steps = [r["step"] for r in tr]
        axes[0].plot(steps, [r["reward"] for r in tr], alpha=.4, label="mixed reward (batch)")
        for key, lab in (("sifter/answer_reward", "answer reward (batch)"),
                         ("sifter/ndcg@1", "NDCG@1 (sampled rollouts)"),
                         ("sifter/format_ok", "format ok")):
            if key in tr[0]:
                axes[0].plot(steps, _smooth([r[key] for r in tr]), label=lab)
    axes[0].set_xlabel("GRPO step")
    axes[0].set_title("training rollouts (smoothed)")
    axes[0].legend(fontsize=8)
    if evals:
        steps = [r["step"] for r in evals]
        for key in ("policy_ndcg@1", "ndcg@1", "answer_reward", "format_ok"):
            axes[1].plot(steps, [r[key] for r in evals], marker="o", label=f"eval {key}")
        axes[1].axhline(evals[0].get("random_ndcg@1", 0), ls=":", c="grey",
                        label="random NDCG@1")
    axes[1].set_xlabel("GRPO step")
    axes[1].set_title("held-out, greedy")
    axes[1].legend(fontsize=8)
    label = "SIMULATED working LLM" if simulated else "real working LLM"
    fig.suptitle(f"MemSifter GRPO ({label})")
    fig.tight_layout()
    path = out / "training.png"
    fig.savefig(path, dpi=110)
    return path


def supervised_check(args: argparse.Namespace, train_rows: list, eval_rows: list,
                     out: Path) -> dict:
    """Learnability diagnostic (no GRPO): cross-entropy on the gold id's token after
    ``<think> </think> <ranking>`` for a fresh random-init tiny policy; held-out greedy top-1
    accuracy every 100 steps. Tells whether the tiny model *can* learn the task in minutes."""
    import random

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memkit.sifterlab.reward import format_gate
    from memkit.sifterlab.train import build_tiny_policy, format_warmup

    path = build_tiny_policy(train_rows + eval_rows, out / "supervised_init", seed=args.seed,
                             hidden=args.hidden, layers=args.layers)
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    warm: dict = {"steps": 0}
    if args.supervised_after_warmup:
        # does the format warm-up (same flags as a GRPO run) leave the policy able to learn?
        freeze = [f for f in args.warmup_freeze.split(",") if f]
        format_warmup(model, tok, train_rows, steps=args.warmup_steps, lr=args.warmup_lr,
                      seed=args.seed, id_target=args.warmup_ids, freeze=freeze)
        tok.padding_side = "left"
        rows = eval_rows[:64]
        enc = tok([tok.apply_chat_template(r["prompt"], add_generation_prompt=True,
                                           tokenize=False) for r in rows],
                  return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(args.seed)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=args.max_completion, do_sample=True,
                                 temperature=1.0, top_k=0, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)
        texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        ok = sum(format_gate(t, int(r["n_candidates"]), args.top_n)
                 for t, r in zip(texts, rows, strict=True)) / len(rows)
        warm = {"steps": args.warmup_steps, "lr": args.warmup_lr, "ids": args.warmup_ids,
                "freeze": freeze, "sampled_format_ok": ok}
        print("after warm-up:", warm, flush=True)
    head = tok("<think> </think> <ranking>", add_special_tokens=False)["input_ids"]

    def encode(rows: list) -> list[tuple[list[int], int]]:
        out_ = []
        for r in rows:
            ids = tok.apply_chat_template(r["prompt"], add_generation_prompt=True,
                                          tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            gold = tok(str(r["gold"][0]), add_special_tokens=False)["input_ids"][0]
            out_.append((list(ids) + head, gold))
        return out_

    def batch(xs: list) -> tuple:
        width = max(len(x) for x, _ in xs)
        ids = torch.full((len(xs), width), tok.pad_token_id)
        attn = torch.zeros((len(xs), width), dtype=torch.long)
        for i, (x, _) in enumerate(xs):  # left padding: the answer slot is the last position
            ids[i, width - len(x):] = torch.tensor(x)
            attn[i, width - len(x):] = 1
        return ids, attn, torch.tensor([g for _, g in xs])

    train, held = encode(train_rows), encode(eval_rows)
    opt = torch.optim.AdamW(model.parameters(), lr=args.supervised_lr, weight_decay=0.0)
    rng = random.Random(args.seed)
    curve = []
    for step in range(args.supervised_check + 1):
        if step % 100 == 0:
            model.eval()
            ids, attn, gold = batch(held)
            with torch.no_grad():
                pred = model(input_ids=ids, attention_mask=attn).logits[:, -1].argmax(-1)
            curve.append({"step": step, "heldout_top1": float((pred == gold).float().mean())})
            print(curve[-1], flush=True)
            model.train()
        ids, attn, gold = batch(rng.sample(train, min(32, len(train))))
        loss = torch.nn.functional.cross_entropy(
            model(input_ids=ids, attention_mask=attn).logits[:, -1], gold)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    result = {"what": "supervised learnability check (CE on the gold id, batch 32, "
              f"lr {args.supervised_lr}); not part of GRPO", "warmup": warm, "curve": curve}
    (out / "supervised_check.json").write_text(json.dumps(result, indent=2))
    return result


def _smooth(xs: list[float], w: int = 5) -> list[float]:
    return [sum(xs[max(0, i - w + 1):i + 1]) / len(xs[max(0, i - w + 1):i + 1])
            for i in range(len(xs))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=["toy", "locomo", "musique"], default="toy")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-eval", type=int, default=200)
    ap.add_argument("--toy", choices=["places", "category", "choice", "key"],
                    default="category",
                    help="toy task: 'places' (toy_examples), 'category' (find the one fruit), "
                    "'choice' (find the fruit or the colour, as the question asks) or 'key' "
                    "(find the unit holding the question's word): toy_match_examples")
    ap.add_argument("--toy-units", type=int, default=4)
    ap.add_argument("--toy-gold-at", type=int, default=None,
                    help="fix the gold session's position (a learnable prior: RL sanity check)")
    ap.add_argument("--model", default="tiny", help="'tiny' or a local HF model directory")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--working-llm", default="simulated",
                    help="'simulated' or a memkit.llm.load_llm spec")
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--budget-tokens", type=int, default=0, help="0: keep every unit")
    ap.add_argument("--top-n", type=int, default=1)
    ap.add_argument("--compact-prompt", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--prompts-per-step", type=int, default=16)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup-steps", type=int, default=400, help="format SFT steps (tiny)")
    ap.add_argument("--warmup-lr", type=float, default=3e-3)
    ap.add_argument("--warmup-freeze", default="self_attn,mlp",
                    help="comma-separated parameter-name parts kept frozen during the format "
                    "warm-up ('' trains everything; see format_warmup)")
    ap.add_argument("--warmup-ids", choices=["uniform", "sample"], default="uniform",
                    help="format warm-up loss at the id positions (see format_warmup)")
    ap.add_argument("--lr-warmup-steps", type=int, default=10,
                    help="GRPO learning-rate warm-up (Adam's first steps are sign-like)")
    ap.add_argument("--retrieval-weight-start", type=float, default=1.0)
    ap.add_argument("--max-completion", type=int, default=8)
    ap.add_argument("--loss-tokens", choices=["auto", "all", "ranking"], default="auto",
                    help="GRPO loss over every completion token ('all', the paper) or only the "
                    "<ranking> span ('ranking'); 'auto': 'ranking' for the tiny policy, else 'all'")
    ap.add_argument("--temperature", type=float, default=1.0, help="rollout sampling temperature")
    ap.add_argument("--entropy-coef", type=float, default=0.0,
                    help="TRL entropy bonus (the paper uses 0)")
    ap.add_argument("--eval-steps", type=int, default=50)
    ap.add_argument("--save-steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest on a shared, oversubscribed CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--use-vllm", action="store_true")
    ap.add_argument("--average-last", type=int, default=0,
                    help="also save the fp32 mean of the last N checkpoints")
    ap.add_argument("--supervised-check", type=int, default=0, metavar="STEPS",
                    help="only run the supervised learnability check for STEPS steps")
    ap.add_argument("--supervised-lr", type=float, default=3e-3)
    ap.add_argument("--supervised-after-warmup", action="store_true",
                    help="run the format warm-up (--warmup-* flags) before the check")
    ap.add_argument("--out", default="runs/sifter_toy",
                    help="output folder; rerunning with the same one resumes")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memkit.sifterlab.train import (
        TrainSettings,
        average_checkpoints,
        build_tiny_policy,
        evaluate_policy,
        format_warmup,
        train_grpo,
    )

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=2))
    t0 = time.time()
    train_rows, eval_rows, examples = make_rows(args, out)
    agent, simulated = make_agent(args, examples)
    print(f"{len(train_rows)} train rows, {len(eval_rows)} eval rows; working LLM: "
          f"{'SIMULATED' if simulated else args.working_llm}")
    if args.supervised_check:
        supervised_check(args, train_rows, eval_rows, out)
        return

    init = out / "init_policy"
    if args.model == "tiny":
        if not (init / "config.json").exists():
            build_tiny_policy(train_rows + eval_rows, out / "random_init", seed=args.seed,
                              hidden=args.hidden, layers=args.layers)
            model = AutoModelForCausalLM.from_pretrained(out / "random_init")
            tok = AutoTokenizer.from_pretrained(out / "random_init")
            losses = format_warmup(model, tok, train_rows, steps=args.warmup_steps,
                                   lr=args.warmup_lr, seed=args.seed, id_target=args.warmup_ids,
                                   freeze=[f for f in args.warmup_freeze.split(",") if f])
            (out / "warmup_losses.json").write_text(json.dumps(losses))
            model.save_pretrained(init)
            tok.save_pretrained(init)
        model_path = str(init)
    else:
        model_path = args.model
    model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)

    # the toy keeps every unit: its "prefilter" order is meaningless, fall back to shown order
    fallback = "index" if args.data == "toy" else "prefilter"
    before_path = out / "before.json"
    if before_path.exists():
        before = json.loads(before_path.read_text())
    else:
        before = evaluate_policy(model, tok, eval_rows, agent, max_new_tokens=args.max_completion,
                                 top_n=args.top_n, fallback=fallback)
        before["random_ndcg@1"] = sum(len(r["gold"]) / r["n_candidates"]
                                      for r in eval_rows) / len(eval_rows)
        before["step"] = 0
        before_path.write_text(json.dumps(before, indent=2))
        with open(out / "eval_log.jsonl", "a") as f:
            f.write(json.dumps(before) + "\n")
    print("before:", {k: v for k, v in before.items() if k != "sample"})

    settings = TrainSettings(
        model=model_path, output_dir=str(out / "grpo"), seed=args.seed,
        num_generations=args.generations, learning_rate=args.lr, temperature=args.temperature,
        prompts_per_step=args.prompts_per_step, max_steps=args.steps,
        max_completion_length=args.max_completion, top_n=args.top_n,
        retrieval_weight_start=args.retrieval_weight_start,
        anneal_epochs=1.0, save_steps=args.save_steps, eval_steps=args.eval_steps,
        eval_max_new_tokens=args.max_completion, eval_fallback=fallback, bf16=args.bf16,
        use_vllm=args.use_vllm,
        loss_tokens=args.loss_tokens if args.loss_tokens != "auto" else
        ("ranking" if args.model == "tiny" else "all"),
        use_cpu=not torch.cuda.is_available(), weight_decay=0.0 if args.model == "tiny" else 0.1,
        extra={"warmup_steps": args.lr_warmup_steps, "entropy_coef": args.entropy_coef},
    )
    result = train_grpo(settings, train_rows, agent, eval_rows=eval_rows, model=model,
                        tokenizer=tok)
    for name in ("eval_log.jsonl", "train_log.jsonl"):
        src = out / "grpo" / name
        if src.exists():
            with open(out / name, "a") as f:
                f.write(src.read_text())
            src.unlink()
    after = evaluate_policy(model, tok, eval_rows, agent, max_new_tokens=args.max_completion,
                            top_n=args.top_n, fallback=fallback)
    after["step"] = result["steps"]
    if args.average_last:
        ckpts = sorted((out / "grpo").glob("checkpoint-*"),
                       key=lambda p: int(p.name.split("-")[-1]))[-args.average_last:]
        avg = average_checkpoints(ckpts, out / "averaged")
        avg_model = AutoModelForCausalLM.from_pretrained(avg, local_files_only=True)
        after["averaged"] = evaluate_policy(avg_model, tok, eval_rows, agent,
                                            max_new_tokens=args.max_completion,
                                            top_n=args.top_n, fallback=fallback)
    summary = {
        "working_llm": "SIMULATED (correct iff a gold unit is in the top k)" if simulated
        else args.working_llm,
        "data": args.data, "model": args.model, "steps": result["steps"],
        "minutes": round((time.time() - t0) / 60, 1),
        "agent_calls": agent.calls, "agent_cache_hits": agent.cache_hits,
        "before": before, "after": after,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("after:", {k: v for k, v in after.items() if k != "sample"})
    print(f"working-LLM calls {agent.calls}, cache hits {agent.cache_hits}")
    print("plot:", plot(out, simulated))


if __name__ == "__main__":
    main()
