"""The training loop every method shares, and the evaluations (answer accuracy, perplexity).

A round trains the model's trainable (LoRA) parameters with AdamW on the method's training set.
Methods act only through the hooks of :class:`memkit.consolidate.methods.Method`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from memkit.consolidate.examples import IGNORE, Batch, TrainExample, collate
from memkit.consolidate.tokenizer import TokenizerLike

if TYPE_CHECKING:
    from memkit.consolidate.methods import Method


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings for one consolidation round."""

    epochs: int = 3
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    max_len: int = 128

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepContext:
    """What a method's ``extra_loss`` sees at one optimisation step."""

    model: Any
    tokenizer: TokenizerLike
    batch: Batch
    outputs: Any
    task_loss: torch.Tensor
    step: int
    total_steps: int
    rng: random.Random
    max_len: int


@dataclass
class RoundStats:
    steps: int = 0
    examples: int = 0
    first_loss: float = float("nan")
    last_loss: float = float("nan")
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross entropy over positions whose label is not ``IGNORE``."""
    shift_logits = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1).to(logits.device)
    return torch.nn.functional.cross_entropy(shift_logits.float(), shift_labels,
                                             ignore_index=IGNORE)


def model_device(model: Any) -> torch.device:
    return next(model.parameters()).device


def forward(model: Any, batch: Batch, hidden: bool = False) -> Any:
    """Run ``model`` on ``batch`` (moved to the model's device)."""
    dev = model_device(model)
    return model(input_ids=batch.input_ids.to(dev), attention_mask=batch.attention_mask.to(dev),
                 output_hidden_states=hidden)


def train_round(
    model: Any,
    tokenizer: TokenizerLike,
    method: Method,
    new_examples: Sequence[TrainExample],
    config: TrainConfig,
    *,
    seed: int = 0,
    progress: bool = False,
    desc: str = "consolidate",
    on_step: Callable[[int], None] | None = None,
) -> RoundStats:
    """Train one round: the method builds the set, shapes the loss and the LR, then updates.

    ``method.training_set`` is called once per epoch, so replay methods draw a fresh sample of
    earlier examples each epoch (the replay ratio holds within every epoch).
    ``stats.examples`` counts examples seen over all epochs.
    """
    rng = random.Random(seed)
    started = time.perf_counter()
    method.begin_round(model, tokenizer, list(new_examples), rng)
    examples = method.training_set(list(new_examples), rng)
    stats = RoundStats(examples=len(examples))
    params = [p for p in model.parameters() if p.requires_grad]
    if not new_examples or not params:
        method.end_round(model, tokenizer, list(new_examples), rng)
        stats.seconds = time.perf_counter() - started
        return stats
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = math.ceil(len(examples) / config.batch_size)
    total = per_epoch * config.epochs
    model.train()
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    step = 0
    for epoch in range(config.epochs):
        if epoch > 0:  # replay methods draw a fresh replay sample every epoch
            examples = method.training_set(list(new_examples), rng)
            stats.examples += len(examples)
        order = list(examples)
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            batch = collate(order[start:start + config.batch_size], tokenizer, config.max_len)
            for group in opt.param_groups:
                group["lr"] = config.lr * method.lr_factor(step, total)
            if method.sft_weight or method.needs_hidden_states:
                outputs = forward(model, batch, hidden=method.needs_hidden_states)
                task_loss = causal_lm_loss(outputs.logits, batch.labels)
            else:  # the method's own loss only (GRPO): no SFT forward pass
                outputs, task_loss = None, torch.zeros((), device=model_device(model))
            ctx = StepContext(model, tokenizer, batch, outputs, task_loss, step, total, rng,
                              config.max_len)
            extra = method.extra_loss(ctx)
            loss = task_loss if method.sft_weight == 1.0 else method.sft_weight * task_loss
            if extra is not None:
                loss = loss + extra
            opt.zero_grad(set_to_none=True)
            if loss.requires_grad:
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                opt.step()
            method.after_step(model)
            value = float(loss.detach())
            if step == 0:
                stats.first_loss = value
            stats.last_loss = value
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}")
            if on_step is not None:
                on_step(step)
    bar.close()
    model.eval()
    method.end_round(model, tokenizer, list(new_examples), rng)
    stats.steps = step
    stats.seconds = time.perf_counter() - started
    return stats


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def answer_matches(
    model: Any,
    tokenizer: TokenizerLike,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 64,
    max_len: int = 128,
) -> list[bool]:
    """For each (question, answer): would greedy decoding produce ``answer`` first?

    Teacher-forced check: every answer token is the arg-max given the question and the answer
    tokens before it, which is exactly the condition for greedy decoding to emit the answer.
    """
    was_training = model.training
    model.eval()
    out: list[bool] = []
    for start in range(0, len(pairs), batch_size):
        chunk = [TrainExample(q, a, q) for q, a in pairs[start:start + batch_size]]
        batch = collate(chunk, tokenizer, max_len)
        logits = forward(model, batch).logits
        pred = logits[:, :-1, :].argmax(-1).cpu()
        gold = batch.input_ids[:, 1:]
        mask = batch.answer_mask[:, 1:]
        ok = ((pred == gold) | ~mask).all(dim=1) & mask.any(dim=1)
        out.extend(bool(x) for x in ok)
    if was_training:
        model.train()
    return out


@torch.no_grad()
def perplexity(model: Any, tokenizer: TokenizerLike, texts: Sequence[str],
               batch_size: int = 64, max_len: int = 128) -> float:
    """Token-level perplexity of ``texts`` (next-token, every token after the first)."""
    was_training = model.training
    model.eval()
    nll, count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        chunk = [TrainExample("", t, t) for t in texts[start:start + batch_size]]
        batch = collate(chunk, tokenizer, max_len)
        logits = forward(model, batch).logits.cpu()
        labels = batch.labels[:, 1:].reshape(-1)
        flat = logits[:, :-1, :].reshape(-1, logits.shape[-1]).float()
        nll += float(torch.nn.functional.cross_entropy(flat, labels, ignore_index=IGNORE,
                                                       reduction="sum"))
        count += int((labels != IGNORE).sum())
    if was_training:
        model.train()
    return math.exp(nll / max(1, count))
