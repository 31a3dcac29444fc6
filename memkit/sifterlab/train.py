"""Train a MemSifter proxy with GRPO through TRL (extra ``[train]``).

The policy reads a row's prompt (prefiltered units + question) and writes
``<think>…</think><ranking>…</ranking>``. :class:`SifterReward` scores each completion:

- the *answer* reward (:func:`~memkit.sifterlab.reward.outcome_reward`): the working LLM
  answers from the top k of the ranking at each cut-off k ∈ {0, 1, 2, 3, 5, 8, …, N}; token F1
  gives s_k; R = −s₀ + Σ wₙ s_{kₙ}. Answers are memoised per (question, units shown).
- the *retrieval* (warm-up) reward: DCG of the gold units' positions / number of gold units.
- mixed as ``(1 − λ)·answer + λ·retrieval`` with λ annealed linearly from
  ``retrieval_weight_start`` to 0 over the first ``anneal_epochs`` epoch(s) (the cold start).

Defaults are the paper's: 6 rollouts per prompt, clip ε 0.2 / ε_high 0.28 (DAPO), no KL
(β = 0), lr 1e-6, temperature 1.0, DAPO token-mean loss. :func:`average_checkpoints` takes the
fp32 mean of several checkpoints (the paper seeds the next round with it).

For CPU proofs, :mod:`memkit.sifterlab.tiny` builds a random-initialised small policy
and teaches it the output format without any relevance signal (re-exported here), so every
gain in NDCG afterwards comes from the reward.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from memkit._deps import require
from memkit.backends.sifter.parse import RANK_CLOSE, RANK_OPEN, parse_ranking
from memkit.errors import ConfigError, InvalidInput
from memkit.sifterlab.data import rows_units
from memkit.sifterlab.reward import (
    cold_start_weight,
    format_gate,
    marginal_utility_reward,
    mixed_reward,
    ndcg_at_k,
    recall_at_k,
    retrieval_reward,
    reward_cutoffs,
    token_f1,
)
from memkit.sifterlab.tiny import build_tiny_policy, format_warmup
from memkit.sifterlab.working import WorkingAgent

__all__ = [
    "SifterReward",
    "TrainSettings",
    "average_checkpoints",
    "build_tiny_policy",
    "completion_text",
    "evaluate_policy",
    "format_warmup",
    "ranking_span_mask",
    "train_grpo",
]

@dataclass
class TrainSettings:
    """Everything a run needs; saved as ``sifter_train.json`` in ``output_dir``."""

    model: str
    output_dir: str
    seed: int = 0
    num_generations: int = 6
    epsilon: float = 0.2
    epsilon_high: float = 0.28
    beta: float = 0.0
    learning_rate: float = 1e-6
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    temperature: float = 1.0
    loss_type: str = "dapo"
    prompts_per_step: int = 16
    gradient_accumulation_steps: int = 1
    num_train_epochs: float = 1.0
    max_steps: int = -1
    max_completion_length: int = 2048
    top_n: int = 10
    retrieval_weight_start: float = 1.0
    anneal_epochs: float = 1.0
    logging_steps: int = 1
    save_steps: int = 50
    save_total_limit: int = 5
    eval_steps: int = 0
    eval_max_new_tokens: int = 0  # 0: max_completion_length
    eval_fallback: str = "prefilter"  # order of units a reply leaves out (evaluate_policy)
    bf16: bool = False
    gradient_checkpointing: bool = False
    use_vllm: bool = False
    use_cpu: bool = False
    # "all": the policy-gradient loss covers every completion token (the paper);
    # "ranking": only the <ranking>…</ranking> span of each completion (its whole text when it
    # has none, so malformed replies are still pushed down). See ranking_span_mask.
    loss_tokens: str = "all"
    extra: dict[str, Any] = field(default_factory=dict)  # passed to GRPOConfig as is

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2, sort_keys=True, default=str))

    @classmethod
    def load(cls, path: str | Path) -> TrainSettings:
        data = json.loads(Path(path).read_text())
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def completion_text(completion: Any) -> str:
    """Text of a TRL completion (a string, or conversational ``[{"role", "content"}]``)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


class SifterReward:
    """TRL reward function (``reward_funcs=[SifterReward(...)]``); see the module docstring.

    Reads the row columns ``units``, ``gold``, ``question``, ``answers``, ``n_candidates``,
    ``top_n`` (from :func:`memkit.sifterlab.data.build_rows`). ``steps_per_epoch``
    converts the trainer's step into epochs when its ``epoch`` is unknown.
    """

    __name__ = "sifter_reward"

    def __init__(self, agent: WorkingAgent, *, retrieval_weight_start: float = 1.0,
                 anneal_epochs: float = 1.0, top_n: int = 10) -> None:
        self.agent = agent
        self.retrieval_weight_start = retrieval_weight_start
        self.anneal_epochs = anneal_epochs
        self.top_n = top_n
        self.history: list[dict[str, float]] = []

    def weight(self, trainer_state: Any) -> float:
        epoch = float(getattr(trainer_state, "epoch", 0.0) or 0.0)
        return cold_start_weight(epoch, self.retrieval_weight_start, self.anneal_epochs)

    def score_completions(self, texts: Sequence[str], rows: Sequence[dict[str, Any]],
                          weight: float) -> tuple[list[float], dict[str, float]]:
        """Mixed rewards of ``texts`` (one row each) and batch metrics."""
        plans: list[tuple[list[int], list[int]] | None] = []
        requests: list[tuple[str, Any]] = []
        for text, row in zip(texts, rows, strict=True):
            n = int(row["n_candidates"])
            top_n = int(row.get("top_n", self.top_n))
            if not format_gate(text, n, top_n):
                plans.append(None)
                continue
            ranking = parse_ranking(text, n).ranked
            units = rows_units(row)
            ks = reward_cutoffs(len(ranking))
            plans.append((ranking, ks))
            requests.extend((row["question"], [units[i] for i in ranking[:k]]) for k in ks)
        answers = iter(self.agent.answer_many(requests)) if requests else iter(())
        rewards: list[float] = []
        ans_r, ret_r, n1, n10, ok = [], [], [], [], []
        for text, row, plan in zip(texts, rows, plans, strict=True):
            gold = list(row["gold"])
            if plan is None:
                a = r = 0.0
                order = parse_ranking(text, int(row["n_candidates"])).order
            else:
                ranking, ks = plan
                scores = {k: token_f1(next(answers), list(row["answers"])) for k in ks}
                a = marginal_utility_reward(scores)
                r = retrieval_reward(text, int(row["n_candidates"]), gold,
                                     int(row.get("top_n", self.top_n)))
                order = ranking
            rewards.append(mixed_reward(a, r, weight))
            ans_r.append(a)
            ret_r.append(r)
            ok.append(float(plan is not None))
            n1.append(ndcg_at_k(order, gold, 1) if plan is not None else 0.0)
            n10.append(ndcg_at_k(order, gold, 10) if plan is not None else 0.0)
        m = len(texts) or 1
        metrics = {"answer_reward": sum(ans_r) / m, "retrieval_reward": sum(ret_r) / m,
                   "format_ok": sum(ok) / m, "ndcg@1": sum(n1) / m, "ndcg@10": sum(n10) / m,
                   "retrieval_weight": weight}
        return rewards, metrics

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        keys = ("units", "gold", "question", "answers", "n_candidates", "top_n")
        rows = [{k: kwargs[k][i] for k in keys if k in kwargs} for i in range(len(completions))]
        weight = self.weight(kwargs.get("trainer_state"))
        rewards, metrics = self.score_completions(
            [completion_text(c) for c in completions], rows, weight)
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        if log_metric is not None:
            for name, value in metrics.items():
                log_metric(f"sifter/{name}", value)
        self.history.append(metrics)
        return rewards


# ----- evaluation ----------------------------------------------------------------------


def evaluate_policy(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]],
                    agent: WorkingAgent, *, max_new_tokens: int = 64, batch_size: int = 16,
                    top_n: int = 10, fallback: str = "prefilter") -> dict[str, float]:
    """Greedy-decode each row's prompt; mean answer reward, NDCG@1/@10, Recall@5, format rate.

    ``ndcg@1`` etc. use the parsed order as deployed: units the reply leaves out (all of them
    when it is malformed) follow in ``fallback`` order (``"prefilter"``: the embedding ranking,
    comparable with ``prefilter_ndcg@1``; ``"index"``: the order shown). ``policy_ndcg@1``
    counts only well-formed replies (a malformed one scores 0): the policy's own skill.
    """
    torch = require("torch", "train", "evaluate_policy")
    was_training = model.training
    model.eval()
    texts: list[str] = []
    tokenizer.padding_side = "left"
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        prompts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True,
                                                 tokenize=False) for r in chunk]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids",
                                                                        "attention_mask")}
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        texts.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    if was_training:
        model.train()
    reward = SifterReward(agent, retrieval_weight_start=0.0, top_n=top_n)
    answer_rewards, metrics = reward.score_completions(texts, rows, 0.0)
    out_m: dict[str, float] = {"answer_reward": sum(answer_rewards) / max(len(rows), 1),
                               "format_ok": metrics["format_ok"]}
    n1, n10, r5, p1, own1 = [], [], [], [], []
    for text, row in zip(texts, rows, strict=True):
        n = int(row["n_candidates"])
        fb = row.get("prefilter_ranking") if fallback == "prefilter" else None
        order = parse_ranking(text, n, fallback=fb).order
        ok = format_gate(text, n, int(row.get("top_n", top_n)))
        own1.append(ndcg_at_k(order, row["gold"], 1) if ok else 0.0)
        n1.append(ndcg_at_k(order, row["gold"], 1))
        n10.append(ndcg_at_k(order, row["gold"], 10))
        r5.append(recall_at_k(order, row["gold"], 5))
        p1.append(ndcg_at_k(row.get("prefilter_ranking", []), row["gold"], 1))
    m = max(len(rows), 1)
    out_m.update({"policy_ndcg@1": sum(own1) / m, "ndcg@1": sum(n1) / m,
                  "ndcg@10": sum(n10) / m, "recall@5": sum(r5) / m,
                  "prefilter_ndcg@1": sum(p1) / m, "n": float(len(rows))})
    out_m["sample"] = texts[0] if texts else ""  # type: ignore[assignment]
    return out_m


# ----- checkpoint averaging ------------------------------------------------------------


def average_checkpoints(paths: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Save the fp32 mean of the floating-point parameters of ``paths`` (same architecture).

    The tokenizer and config of the first checkpoint are copied alongside.
    """
    if not paths:
        raise InvalidInput("need at least one checkpoint to average")
    torch = require("torch", "train", "average_checkpoints")
    transformers = require("transformers", "train", "average_checkpoints")
    base = transformers.AutoModelForCausalLM.from_pretrained(
        str(paths[0]), dtype=torch.float32, local_files_only=True)
    names = [n for n, _ in base.named_parameters()]
    total = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in base.named_parameters()}
    for path in paths:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(path), dtype=torch.float32, local_files_only=True)
        params = dict(model.named_parameters())
        if set(params) != set(names):
            raise InvalidInput(f"checkpoint {path} has different parameters than {paths[0]}")
        for n in names:
            total[n] += params[n].detach().float()
        del model
    with torch.no_grad():
        for n, p in base.named_parameters():
            p.copy_(total[n] / len(paths))
    out = Path(out_dir)
    base.save_pretrained(out)
    try:
        transformers.AutoTokenizer.from_pretrained(str(paths[0]),
                                                   local_files_only=True).save_pretrained(out)
    except (OSError, ValueError):
        pass  # a checkpoint without a tokenizer: the caller keeps its own
    return out


# ----- GRPO --------------------------------------------------------------------------------


def _eval_callback(trl_module: Any, evaluate: Callable[[], dict[str, Any]], every: int,
                   log_path: Path) -> Any:
    transformers = require("transformers", "train", "train_grpo")

    class EvalCallback(transformers.TrainerCallback):  # type: ignore[misc,name-defined]
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if every > 0 and state.global_step % every == 0:
                metrics = evaluate()
                metrics.update({"step": state.global_step, "time": time.time()})
                with open(log_path, "a") as f:
                    f.write(json.dumps(metrics) + "\n")

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
                   **kw: Any) -> None:
            if logs:
                with open(log_path.with_name("train_log.jsonl"), "a") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return EvalCallback()


_TAIL = 48


def ranking_span_mask(completion_ids: Any, tokenizer: Any, completion_mask: Any = None,
                      well_formed: Sequence[bool] | None = None) -> Any:
    """0/1 mask (same shape as ``completion_ids``) of the tokens inside each completion's
    first ``<ranking>…</ranking>`` span: the tokens after the one that completes ``<ranking>``
    up to and including the one that completes ``</ranking>`` (or to the end when it is never
    closed). A completion without ``<ranking>``, or marked ``False`` in ``well_formed``, keeps
    all of its tokens, so a malformed reply is pushed down as a whole.

    Why (``TrainSettings.loss_tokens = "ranking"``): only the span carries the decision. On
    the category toy (evals/sifter/README.md) GRPO with this mask reached held-out NDCG@1 1.0
    by step 400, with every token in the loss 0.55 at step 1,000; our reading is that the
    near-certain format tokens add small, noisy gradients that Adam scales up to full steps.
    """
    torch = require("torch", "train", "ranking_span_mask")
    ids = completion_ids.tolist()
    valid = completion_mask.tolist() if completion_mask is not None else None
    rows = []
    for r, seq in enumerate(ids):
        n = len(seq) if valid is None else int(sum(valid[r]))
        text, opened, closed, row = "", False, False, []
        for t in seq[:n]:
            # a short tail suffices to spot a tag that the newest token completes
            text = text[-_TAIL:] + tokenizer.decode([t], skip_special_tokens=False)
            if not opened:
                m = RANK_OPEN.search(text)
                row.append(0)
                if m is not None:
                    opened, text = True, text[m.end():]
                continue
            if closed:
                row.append(0)
                continue
            row.append(1)
            closed = RANK_CLOSE.search(text) is not None
        if not opened or (well_formed is not None and not well_formed[r]):
            row = [1] * n
        rows.append(row + [0] * (len(seq) - n))
    return torch.tensor(rows, dtype=completion_ids.dtype if completion_mask is None
                        else completion_mask.dtype, device=completion_ids.device)


def _trainer_class(trl: Any, loss_tokens: str, top_n: int) -> Any:
    if loss_tokens == "all":
        return trl.GRPOTrainer
    if loss_tokens != "ranking":
        raise InvalidInput(f"loss_tokens must be 'all' or 'ranking', not {loss_tokens!r}")
    import inspect

    try:
        honours_mask = "tool_mask" in inspect.getsource(trl.GRPOTrainer._compute_loss)
    except (AttributeError, OSError, TypeError):
        honours_mask = False
    if not honours_mask:  # the mask would be silently ignored: refuse instead
        raise ConfigError(
            "loss_tokens='ranking' needs a TRL whose GRPOTrainer applies a per-token tool_mask "
            f"in its loss (TRL 1.16 does); installed: {getattr(trl, '__version__', '?')}. "
            "Upgrade TRL or use loss_tokens='all'.")

    class RankingSpanGRPOTrainer(trl.GRPOTrainer):  # type: ignore[misc,name-defined]
        """GRPO whose loss covers only the ranking span (see :func:`ranking_span_mask`)."""

        def _generate_and_score_completions(self, inputs: Any) -> Any:
            out = super()._generate_and_score_completions(inputs)
            ids, valid = out["completion_ids"], out["completion_mask"]
            texts = self.processing_class.batch_decode(
                [row[: int(n)] for row, n in zip(ids.tolist(), valid.sum(1).tolist(),
                                                 strict=True)], skip_special_tokens=True)
            ok = [format_gate(t, int(x["n_candidates"]), int(x.get("top_n", top_n)))
                  for t, x in zip(texts, inputs, strict=True)]
            mask = ranking_span_mask(ids, self.processing_class, valid, ok)
            if "tool_mask" in out:
                mask = mask * out["tool_mask"]
            out["tool_mask"] = mask
            kept = (out["completion_mask"] * mask).sum()
            out["num_items_in_batch"] = self.accelerator.gather(kept).sum()
            return out

    return RankingSpanGRPOTrainer


def train_grpo(settings: TrainSettings, train_rows: Sequence[dict[str, Any]],
               agent: WorkingAgent, *, eval_rows: Sequence[dict[str, Any]] = (),
               model: Any = None, tokenizer: Any = None, resume: bool = True) -> dict[str, Any]:
    """Run GRPO; returns the trainer's log history and the eval history.

    ``model``/``tokenizer`` default to loading ``settings.model`` from a local directory.
    With ``resume`` and a ``checkpoint-*`` in ``output_dir``, training resumes from the last
    one. Eval metrics (greedy) go to ``output_dir/eval_log.jsonl`` every ``eval_steps``.
    """
    trl = require("trl", "train", "MemSifter GRPO training")
    datasets = require("datasets", "train", "MemSifter GRPO training")
    transformers = require("transformers", "train", "MemSifter GRPO training")
    if not train_rows:
        raise InvalidInput("no training rows")
    out = Path(settings.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings.save(out / "sifter_train.json")
    transformers.set_seed(settings.seed)
    if model is None:
        model = transformers.AutoModelForCausalLM.from_pretrained(settings.model,
                                                                  local_files_only=True)
    if tokenizer is None:
        tokenizer = transformers.AutoTokenizer.from_pretrained(settings.model,
                                                               local_files_only=True)
    g = settings.num_generations
    config = trl.GRPOConfig(
        output_dir=str(out), seed=settings.seed, num_generations=g,
        per_device_train_batch_size=settings.prompts_per_step * g,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        epsilon=settings.epsilon, epsilon_high=settings.epsilon_high, beta=settings.beta,
        learning_rate=settings.learning_rate, weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm, temperature=settings.temperature,
        loss_type=settings.loss_type, num_train_epochs=settings.num_train_epochs,
        max_steps=settings.max_steps, max_completion_length=settings.max_completion_length,
        logging_steps=settings.logging_steps, save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit, bf16=settings.bf16,
        gradient_checkpointing=settings.gradient_checkpointing, use_vllm=settings.use_vllm,
        use_cpu=settings.use_cpu, report_to=[], remove_unused_columns=False,
        **settings.extra,
    )
    reward = SifterReward(agent, retrieval_weight_start=settings.retrieval_weight_start,
                          anneal_epochs=settings.anneal_epochs, top_n=settings.top_n)
    eval_log = out / "eval_log.jsonl"
    max_new = settings.eval_max_new_tokens or settings.max_completion_length

    def run_eval() -> dict[str, Any]:
        return evaluate_policy(model, tokenizer, list(eval_rows), agent,
                               max_new_tokens=max_new, top_n=settings.top_n,
                               fallback=settings.eval_fallback)

    callbacks = []
    if eval_rows and settings.eval_steps > 0:
        callbacks.append(_eval_callback(trl, run_eval, settings.eval_steps, eval_log))
    trainer_cls = _trainer_class(trl, settings.loss_tokens, settings.top_n)
    trainer = trainer_cls(model=model, reward_funcs=[reward], args=config,
                          train_dataset=datasets.Dataset.from_list(list(train_rows)),
                          processing_class=tokenizer, callbacks=callbacks)
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if resume and checkpoints
                  else None)
    trainer.save_model(str(out / "final"))
    tokenizer.save_pretrained(str(out / "final"))
    return {"log_history": trainer.state.log_history, "reward_history": reward.history,
            "steps": trainer.state.global_step}
