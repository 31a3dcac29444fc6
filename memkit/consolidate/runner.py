"""Continual-learning runner: one method over a stream of fact tasks -> accuracy matrix R.

Round 0 fully fine-tunes the base model on task 0 plus general text (the knowledge the model
"had before"); rounds 1..T go through :class:`Consolidator` exactly as memory items would.
After every round ``i`` the runner records ``R[i][j]`` (accuracy on task ``j``), the perplexity
of held-out general text, and for updated facts whether the model answers the new or the stale
value.
"""

from __future__ import annotations

import copy
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from memkit.consolidate import formulas as F
from memkit.consolidate.consolidator import Consolidator
from memkit.consolidate.examples import TrainExample
from memkit.consolidate.methods import GeRe, Method, make_method
from memkit.consolidate.model import LoraSettings, TinyLMConfig, build_tiny_lm, load_base
from memkit.consolidate.synthetic import FactStream, make_fact_stream
from memkit.consolidate.tokenizer import TokenizerLike, WordTokenizer
from memkit.consolidate.trainer import TrainConfig, answer_matches, perplexity, train_round

EVAL_BATCH = 16  # a real LM's logits over a 262K vocabulary: keep evaluation batches small


@dataclass
class RunnerConfig:
    """Everything a comparison depends on; saved next to the results."""

    methods: list[str] = field(default_factory=lambda: [
        "sequential", "replay", "ewc", "ilora", "hft", "gere", "rewarm", "mer", "subspace",
        "spaced", "ewc-lowrank", "grpo"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    n_rounds: int = 5
    facts_per_round: int = 40
    updates_per_round: int = 8
    n_general: int = 1000
    heldout_general: int = 200
    tiny: TinyLMConfig = field(default_factory=TinyLMConfig)
    model_path: str | None = None  # a real model instead of the tiny one
    pretrain: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=6, batch_size=32, lr=3e-3, max_len=32))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=30, batch_size=16, lr=5e-3, max_len=32))
    lora: LoraSettings = field(default_factory=LoraSettings)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    fact_repeats_in_pretrain: int = 10
    #: continual evaluation: accuracy on every seen task every this many optimiser steps
    #: during a round (0 = only at round ends)
    eval_every: int = 0
    #: a fixed general text sample for perplexity (None: the stream's held-out grammar text)
    heldout_texts: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lora"] = self.lora.as_dict()
        return data


@dataclass
class MethodRun:
    """One method x one seed: the accuracy matrix and everything measured along the way."""

    method: str
    seed: int
    r: list[list[float]]
    perplexity: list[float]
    updates: list[dict[str, float]]  # per round i >= 2: new / stale share on round i's updates
    updates_final: dict[str, float]  # after the last round, over every update
    train_seconds: list[float]
    options: dict[str, Any]
    #: continual evaluation points: {"step", "round", "acc": [accuracy on tasks 0..round]}
    curve: list[dict[str, Any]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        r = self.r
        t = len(r) - 1
        retained = _mean([r[t][j] for j in range(1, t)])  # memories of earlier rounds
        newly = r[t][t] if t >= 1 else float("nan")
        upd = self.updates_final.get("new", float("nan"))
        forgotten = max(0.0, -F.backward_transfer(r))
        gained = _mean([x for x in (upd, newly) if x == x])
        return {
            **continual_metrics(self.curve, r),
            "ku_retained": retained,
            "ku_updated": upd,
            "ku_stale": self.updates_final.get("stale", float("nan")),
            "ku_new": newly,
            "ku_fuar": forgotten / gained if gained and gained == gained else float("nan"),
            "avg_acc": F.average_accuracy(r),
            "bwt": F.backward_transfer(r),
            "fwt": F.forward_transfer(r, r[0], first=2),
            "new_acc": F.new_task_accuracy(r, first=1),
            "base_retained": r[-1][0] - r[0][0],
            "ppl_base": self.perplexity[0],
            "ppl_final": self.perplexity[-1],
            "train_s": sum(self.train_seconds),
            "update_new": self.updates_final.get("new", float("nan")),
            "update_stale": self.updates_final.get("stale", float("nan")),
            "update_new_at_round": _mean([u["new"] for u in self.updates]),
            "update_stale_at_round": _mean([u["stale"] for u in self.updates]),
        }

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["metrics"] = self.metrics()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodRun:
        data = {k: v for k, v in data.items() if k != "metrics"}
        return cls(**data)


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


def continual_metrics(curve: list[dict[str, Any]], r: list[list[float]]) -> dict[str, float]:
    """Continual-evaluation figures (De Lange et al., "Continual evaluation for lifelong
    learning: identifying the stability gap"), over rounds ``i >= 2`` (rounds with an earlier
    consolidated task; task 0 is the base knowledge):

    * ``min_acc``: mean over tasks ``1 <= j < T`` of the lowest accuracy on ``j`` at any
      evaluation point after round ``j`` ended (worst case on old rounds);
    * ``stability_gap``: mean over rounds of (accuracy on old tasks ``1..i-1`` at the end of
      round ``i - 1``) minus (its lowest value during round ``i``) -- the dip after a round
      starts, recovered or not;
    * ``wc_acc``: ``1/T * R[T][T] + (1 - 1/T) * min_acc`` (worst-case accuracy).
    """
    nan = float("nan")
    t = len(r) - 1
    if not curve or t < 2:
        return {"min_acc": nan, "stability_gap": nan, "wc_acc": nan}
    mins = []
    for j in range(1, t):
        seen = [p["acc"][j] for p in curve if p["round"] > j] + [r[i][j] for i in range(j, t + 1)]
        mins.append(min(seen))
    gaps = []
    for i in range(2, t + 1):
        before = _mean([r[i - 1][j] for j in range(1, i)])
        during = [_mean(p["acc"][1:i]) for p in curve if p["round"] == i]
        if during:
            gaps.append(before - min(during))
    min_acc = _mean(mins)
    return {"min_acc": min_acc, "stability_gap": _mean(gaps),
            "wc_acc": r[t][t] / t + (1 - 1 / t) * min_acc}


BaseFactory = Callable[[], tuple[Any, TokenizerLike]]


def pretrained_base(stream: FactStream, cfg: RunnerConfig, seed: int,
                    progress: bool = False) -> tuple[Any, TokenizerLike]:
    """Round 0: the base model fully fine-tuned on task 0 (repeated) plus general text."""
    if cfg.model_path is None:
        tok: TokenizerLike = WordTokenizer.build(stream.all_texts())
        model = build_tiny_lm(len(tok.vocab), cfg.tiny, seed=seed)  # type: ignore[attr-defined]
    else:
        model, tok = load_base(cfg.model_path)
        if torch.cuda.is_available():
            model = model.to("cuda")
    facts = [TrainExample(f.question, f.value, f.question) for f in stream.rounds[0]]
    general = [TrainExample("", t, t) for t in stream.general_train]
    examples = facts * cfg.fact_repeats_in_pretrain + general
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        train_round(model, tok, Method(), examples, cfg.pretrain, seed=seed, progress=progress,
                    desc=f"pretrain seed {seed}")
    model.eval()
    return model, tok


def _task_acc(model: Any, tok: TokenizerLike, stream: FactStream, j: int, max_len: int
              ) -> float:
    pairs = stream.task(j)
    hits = answer_matches(model, tok, pairs, batch_size=EVAL_BATCH, max_len=max_len)
    return sum(hits) / len(hits) if hits else 0.0


def evaluate_round(model: Any, tok: TokenizerLike, stream: FactStream, max_len: int
                   ) -> tuple[list[float], float]:
    """Accuracy on every task and held-out perplexity."""
    row = [_task_acc(model, tok, stream, j, max_len) for j in range(len(stream.rounds))]
    return row, perplexity(model, tok, stream.general_heldout, batch_size=EVAL_BATCH,
                           max_len=max_len)


def update_shares(model: Any, tok: TokenizerLike, facts: list[Any], max_len: int
                  ) -> dict[str, float]:
    """Share of updated facts answered with the new value, the stale value, or neither."""
    if not facts:
        return {"new": float("nan"), "stale": float("nan"), "other": float("nan"), "n": 0}
    new = answer_matches(model, tok, [(f.question, f.value) for f in facts], max_len=max_len)
    old = answer_matches(model, tok, [(f.question, f.previous) for f in facts], max_len=max_len)
    n = len(facts)
    return {"new": sum(new) / n, "stale": sum(old) / n,
            "other": sum(1 for a, b in zip(new, old, strict=True) if not (a or b)) / n, "n": n}


def make_runner_method(name: str, stream: FactStream, cfg: RunnerConfig) -> Method:
    options = dict(cfg.method_options.get(name, {}))
    base_name = options.pop("method", name)  # variants like "ewc-strong" name their method
    if base_name == GeRe.name:  # GeRe replays a fixed sample of the pre-training corpus
        corpus = [f"{q} {a}" for q, a in stream.task(0)] + stream.general_train
        n = min(options.pop("n_texts", 1000), len(corpus))
        options.setdefault("general_texts", random.Random(0).sample(corpus, n))
    return make_method(base_name, **options)


def run_method(
    stream: FactStream,
    base: tuple[Any, TokenizerLike],
    name: str,
    seed: int,
    cfg: RunnerConfig,
    workdir: Path | None = None,
    progress: bool = False,
) -> MethodRun:
    """Rounds 1..T of one method from a copy of the pre-trained ``base``; returns its R."""
    model0, tok = base
    method = make_runner_method(name, stream, cfg)

    def factory() -> tuple[Any, TokenizerLike]:
        return copy.deepcopy(model0), tok

    max_len = cfg.train.max_len
    row0, ppl0 = evaluate_round(model0, tok, stream, max_len)
    r, ppl, updates, seconds = [row0], [ppl0], [], []
    curve: list[dict[str, Any]] = []
    steps_before = [0]
    final: dict[str, float] = {}
    all_updates = [f for j in range(len(stream.rounds)) for f in stream.updates(j)]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        cons = Consolidator(Path(tmp), factory, method, lora=cfg.lora, train=cfg.train,
                            seed=seed, progress=progress, base_model_name="tiny-pretrained")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            for i in range(1, len(stream.rounds)):
                started = time.perf_counter()
                paused = [0.0]

                def on_step(step: int, i: int = i, paused: list[float] = paused) -> None:
                    if not cfg.eval_every or step % cfg.eval_every:
                        return
                    t0 = time.perf_counter()
                    with cons.inference(allow_stale=True) as (live, _t):
                        acc = [_task_acc(live, tok, stream, j, max_len) for j in range(i + 1)]
                    curve.append({"step": steps_before[0] + step, "round": i, "acc": acc})
                    paused[0] += time.perf_counter() - t0

                manifest = cons.consolidate(stream.items(i), on_step=on_step)
                steps_before[0] += int(manifest.stats.get("steps", 0))
                seconds.append(time.perf_counter() - started - paused[0])
                with cons.inference() as (model, _tok):
                    row, p = evaluate_round(model, tok, stream, max_len)
                    if stream.updates(i):
                        updates.append(update_shares(model, tok, stream.updates(i), max_len))
                    if i == len(stream.rounds) - 1:
                        final = update_shares(model, tok, all_updates, max_len)
                r.append(row)
                ppl.append(p)
    return MethodRun(name, seed, r, ppl, updates, final, seconds, method.options(), curve)


def run_comparison(cfg: RunnerConfig, cache: Path | None = None, progress: bool = True,
                   log: Callable[[str], None] | None = None) -> list[MethodRun]:
    """Every method x seed; with ``cache`` (a folder), finished runs are reused on rerun."""
    import json

    from tqdm.auto import tqdm

    runs: list[MethodRun] = []
    todo = [(s, m) for s in cfg.seeds for m in cfg.methods]
    bar = tqdm(total=len(todo), desc="methods x seeds", disable=not progress)
    for seed in cfg.seeds:
        stream = make_fact_stream(cfg.n_rounds, cfg.facts_per_round, cfg.updates_per_round,
                                  cfg.n_general, cfg.heldout_general, seed=seed)
        if cfg.heldout_texts is not None:
            stream.general_heldout = list(cfg.heldout_texts)
        base: tuple[Any, TokenizerLike] | None = None
        for name in cfg.methods:
            path = cache / f"{name}-seed{seed}.json" if cache is not None else None
            if path is not None and path.exists():
                runs.append(MethodRun.from_dict(json.loads(path.read_text("utf-8"))))
                bar.update(1)
                continue
            if base is None:
                base = pretrained_base(stream, cfg, seed, progress=progress)
            run = run_method(stream, base, name, seed, cfg, progress=False)
            runs.append(run)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(run.as_dict(), indent=1), "utf-8")
            if log is not None:
                m = run.metrics()
                log(f"{name:12s} seed {seed}: avg {m['avg_acc']:.3f} bwt {m['bwt']:+.3f} "
                    f"new {m['new_acc']:.3f} ppl {m['ppl_final']:.2f} {m['train_s']:.1f}s")
            bar.update(1)
    bar.close()
    return runs
