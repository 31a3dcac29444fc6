"""More continual-learning methods from the reading list, on the same hooks as methods.py.

    name          class             defaults
    mer           MER               replay ratio 0.25, beta 0.5, every 4 steps (Reptile)
    subspace      SubspaceLoRA      fraction 0.5 of singular directions protected
    spaced        SpacedReplay      replay ratio 0.25, first rest 1 round, factor 2
    ewc-lowrank   LowRankEWC        lam 1000, rank 8, fisher_samples 64
    grpo          GRPO              group 8, sft_weight 0, clip 0.2, beta 0, reward exact

* **MER** ("Revisiting Replay and Gradient Alignment for Continual Pre-Training"; Riemer et
  al.'s meta-experience replay): replay plus a Reptile meta-update every ``k`` optimiser steps,
  ``theta <- theta_0 + beta (theta_k - theta_0)``, which to first order rewards aligned
  gradients between new and replayed batches.
* **SubspaceLoRA** ("Sculpting Subspaces"): at each round start, SVD every adapted weight as
  it serves now (base + LoRA) and, after every step, project the round's LoRA change so that
  ``U_k^T Delta W V_k = 0`` on the top ``k`` singular pairs (see
  :func:`~memkit.consolidate.formulas.constrain_lora_update`). The paper constrains full
  fine-tuning gradients; this is the LoRA form of the same constraint.
* **SpacedReplay** (after "Do Your Best and Get Enough Rest for Continual Learning"): replay
  with a spacing schedule -- an example rests ``1, 2, 4, ...`` rounds between reviews; each
  round replays the due examples (most overdue first) within the replay budget. The paper's
  view-batch scheme works inside one training run; this schedules reviews over rounds.
* **LowRankEWC**: EWC with a rank-``k`` empirical Fisher ``F ~ M^T M`` over all LoRA
  parameters (captures their correlations; rank 1 = ``rank=1``) beside the diagonal ``ewc``.
* **GRPO** ("Reinforcement Fine-Tuning Naturally Mitigates Forgetting"): per question sample
  ``group`` answers from the current policy, reward 1 for an exact match with the memory's
  answer (``reward="prefix"``: partial credit, the fraction of the answer's tokens matched
  from its start; :func:`~memkit.consolidate.formulas.answer_reward`), group-normalised
  advantages, clipped-ratio policy loss (+ optional k3 KL to the
  round-start adapter). ``sft_weight`` > 0 mixes in the SFT loss. It uses the same GRPO
  objective as the MemSifter trainer (trl's ``GRPOTrainer``), written on this loop's hooks
  since the consolidation loop trains its own LoRA on its own tokenizers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch

from memkit.consolidate import formulas as F
from memkit.consolidate.examples import TrainExample, collate
from memkit.consolidate.methods import Method, Replay
from memkit.consolidate.model import lora_params, lora_units, snapshot
from memkit.consolidate.tokenizer import TokenizerLike
from memkit.consolidate.trainer import StepContext, causal_lm_loss, forward, model_device
from memkit.errors import ConfigError


class MER(Replay):
    """Replay + a Reptile meta-update every ``k`` steps (gradient-alignment replay)."""

    name = "mer"

    def __init__(self, beta: float = 0.5, k: int = 4, ratio: float = 0.25,
                 capacity: int = 1000) -> None:
        super().__init__(ratio=ratio, capacity=capacity)
        if not 0.0 < beta <= 1.0 or k < 1:
            raise ConfigError(f"MER needs 0 < beta <= 1 and k >= 1, got beta={beta}, k={k}")
        self.beta = beta
        self.k = k
        self._start: dict[str, torch.Tensor] = {}
        self._inner = 0

    def options(self) -> dict[str, Any]:
        return {"beta": self.beta, "k": self.k, **super().options()}

    def begin_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                    rng: random.Random) -> None:
        self._start = snapshot(lora_params(model))
        self._inner = 0

    def after_step(self, model: Any) -> None:
        self._inner += 1
        if self._inner % self.k:
            return
        params = lora_params(model)
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(F.reptile_interpolate(self._start[n], p.detach(), self.beta))
        self._start = snapshot(params)


class SubspaceLoRA(Method):
    """LoRA whose per-round update avoids the dominant singular directions of the weights."""

    name = "subspace"

    def __init__(self, fraction: float = 0.5) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"subspace fraction must be in [0, 1], got {fraction}")
        self.fraction = fraction
        self._bases: dict[str, tuple[str, str, torch.Tensor, torch.Tensor]] = {}
        self._start: dict[str, torch.Tensor] = {}

    def options(self) -> dict[str, Any]:
        return {"fraction": self.fraction}

    def begin_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                    rng: random.Random) -> None:
        self._bases = {}
        params = lora_params(model)
        for unit, names in lora_units(model).items():
            a_name = next((n for n in names if ".lora_A." in n), None)
            b_name = next((n for n in names if ".lora_B." in n), None)
            module = model.get_submodule(unit)
            if a_name is None or b_name is None or not hasattr(module, "base_layer"):
                continue
            adapter = a_name.split(".lora_A.")[1].split(".")[0]
            scale = float(module.scaling[adapter])
            with torch.no_grad():
                serving = module.base_layer.weight.float() + scale * (
                    params[b_name].float() @ params[a_name].float())
            u, v = F.top_singular_bases(serving, self.fraction)
            self._bases[unit] = (a_name, b_name, u.to(params[b_name].dtype),
                                 v.to(params[a_name].dtype))
        self._start = snapshot(params)

    def after_step(self, model: Any) -> None:
        params = lora_params(model)
        with torch.no_grad():
            for a_name, b_name, u, v in self._bases.values():
                b, a = F.constrain_lora_update(self._start[b_name], self._start[a_name],
                                               params[b_name], params[a_name], u, v)
                params[b_name].copy_(b)
                params[a_name].copy_(a)


class SpacedReplay(Replay):
    """Replay on a spaced-review schedule (expanding rest intervals, in rounds)."""

    name = "spaced"

    def __init__(self, ratio: float = 0.25, capacity: int = 1000, first_interval: int = 1,
                 factor: float = 2.0) -> None:
        super().__init__(ratio=ratio, capacity=capacity)
        F.next_review(0, first_interval, factor)  # validates
        self.first_interval = first_interval
        self.factor = factor
        self.round = 0
        self.schedule: dict[str, list[int]] = {}  # key -> [due round, interval]

    def options(self) -> dict[str, Any]:
        return {"first_interval": self.first_interval, "factor": self.factor,
                **super().options()}

    def begin_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                    rng: random.Random) -> None:
        self.round += 1
        self._reviewed: set[str] = set()

    def training_set(self, new: list[TrainExample], rng: random.Random) -> list[TrainExample]:
        keys = {ex.key for ex in new}
        self.buffer = [b for b in self.buffer if b.key not in keys]
        budget = min(F.replay_count(len(new), self.ratio), len(self.buffer))
        due = [b for b in self.buffer if self.schedule.get(b.key, [0, 1])[0] <= self.round]
        due.sort(key=lambda b: (self.schedule.get(b.key, [0, 1])[0], b.key))
        picked = due[:budget]
        self._reviewed.update(b.key for b in picked)
        self.last_replayed = len(picked)
        return list(new) + [b.replayed() for b in picked]

    def end_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                  rng: random.Random) -> None:
        for key in self._reviewed:
            _due, interval = self.schedule.get(key, [self.round, self.first_interval])
            self.schedule[key] = list(F.next_review(self.round, interval, self.factor))
        for ex in new:  # learnt now: first review after the first rest
            self.schedule[ex.key] = [self.round + self.first_interval, self.first_interval]
        super().end_round(model, tok, new, rng)

    def state_json(self) -> dict[str, Any]:
        return {**super().state_json(), "round": self.round, "schedule": self.schedule}

    def load_state(self, tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> None:
        super().load_state(tensors, data)
        self.round = int(data.get("round", 0))
        self.schedule = {k: list(v) for k, v in data.get("schedule", {}).items()}


def _flat(params: Mapping[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([params[n].reshape(-1) for n in names])


class LowRankEWC(Method):
    """EWC with a rank-``k`` empirical Fisher over all LoRA parameters."""

    name = "ewc-lowrank"

    def __init__(self, lam: float = 1000.0, rank: int = 8, fisher_samples: int = 64) -> None:
        if rank < 1:
            raise ConfigError(f"low-rank EWC rank must be >= 1, got {rank}")
        self.lam = lam
        self.rank = rank
        self.fisher_samples = fisher_samples
        self.factor: torch.Tensor | None = None
        self.anchor: torch.Tensor | None = None
        self.names: list[str] = []

    def options(self) -> dict[str, Any]:
        return {"lam": self.lam, "rank": self.rank, "fisher_samples": self.fisher_samples}

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        if self.factor is None or self.anchor is None:
            return None
        params = lora_params(ctx.model)
        delta = _flat(params, self.names) - self.anchor.to(model_device(ctx.model))
        return F.lowrank_ewc_penalty(delta.float(), self.factor.to(delta.device), self.lam)

    def end_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                  rng: random.Random) -> None:
        params = lora_params(model)
        self.names = sorted(params)
        sample = rng.sample(new, min(self.fisher_samples, len(new)))
        flags = {n: p.requires_grad for n, p in params.items()}
        for p in params.values():
            p.requires_grad_(True)
        rows = []
        for ex in sample:
            model.zero_grad(set_to_none=True)
            batch = collate([ex], tok)
            causal_lm_loss(forward(model, batch).logits, batch.labels).backward()
            grads = [params[n].grad for n in self.names]
            rows.append(torch.cat([(torch.zeros_like(params[n]) if g is None else g)
                                   .reshape(-1).float().cpu()
                                   for n, g in zip(self.names, grads, strict=True)]))
        model.zero_grad(set_to_none=True)
        for n, p in params.items():
            p.requires_grad_(flags[n])
        if rows:
            new_factor = F.lowrank_fisher_factor(torch.stack(rows), self.rank)
            stacked = new_factor if self.factor is None else torch.cat([self.factor, new_factor])
            self.factor = F.lowrank_refactor(stacked, self.rank)
        self.anchor = _flat(snapshot(params), self.names).float().cpu()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        if self.factor is None or self.anchor is None:
            return {}
        return {"factor": self.factor, "anchor": self.anchor}

    def state_json(self) -> dict[str, Any]:
        return {"names": self.names}

    def load_state(self, tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> None:
        self.factor = tensors.get("factor")
        self.anchor = tensors.get("anchor")
        self.names = list(data.get("names", []))


class GRPO(Method):
    """RL-style consolidation: GRPO on sampled answers with a verifiable answer reward."""

    name = "grpo"

    def __init__(self, group: int = 8, sft_weight: float = 0.0, clip: float = 0.2,
                 beta: float = 0.0, temperature: float = 1.0, extra_tokens: int = 1,
                 reward: str = "exact") -> None:
        if group < 2:
            raise ConfigError(f"GRPO group must be >= 2, got {group}")
        if reward not in ("exact", "prefix"):
            raise ConfigError(f"GRPO reward must be 'exact' or 'prefix', got {reward!r}")
        self.reward = reward
        self.group = group
        self.sft_weight = sft_weight
        self.clip = clip
        self.beta = beta
        self.temperature = temperature
        self.extra_tokens = extra_tokens
        self._ref: dict[str, torch.Tensor] = {}
        self.last_reward = 0.0

    def options(self) -> dict[str, Any]:
        return {"group": self.group, "sft_weight": self.sft_weight, "clip": self.clip,
                "beta": self.beta, "temperature": self.temperature,
                "extra_tokens": self.extra_tokens, "reward": self.reward}

    def begin_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                    rng: random.Random) -> None:
        self._ref = snapshot(lora_params(model)) if self.beta else {}

    @torch.no_grad()
    def _sample(self, model: Any, prompt: list[int], n_new: int, gen: torch.Generator
                ) -> torch.Tensor:
        """``group`` completions of ``n_new`` tokens, one new token per forward pass over
        the key/value cache (the prompt is run once, not once per token)."""
        dev = model_device(model)
        seq = torch.tensor([prompt] * self.group, device=dev)
        out = model(input_ids=seq, use_cache=True)
        for step in range(n_new):
            logits = out.logits[:, -1, :].float() / self.temperature
            probs = torch.softmax(logits, -1).cpu()
            nxt = torch.multinomial(probs, 1, generator=gen).to(dev)
            seq = torch.cat([seq, nxt], dim=1)
            if step + 1 < n_new:
                out = model(input_ids=nxt, cache=out.cache, use_cache=True)
        return seq[:, len(prompt):].cpu()

    def rollouts(self, model: Any, tok: TokenizerLike, prompt: list[int], target: list[int],
                 gen: torch.Generator) -> list[tuple[list[int], int, float]]:
        """``group`` sampled answers to ``prompt``: (completion ids, length up to and with its
        eos, reward against ``target``, the answer tokens + eos)."""
        out = []
        for c in self._sample(model, prompt, len(target) + self.extra_tokens, gen).tolist():
            cut = c.index(tok.eos_token_id) + 1 if tok.eos_token_id in c else len(c)
            out.append((c, cut, F.answer_reward(c[:cut], target, self.reward)))
        return out

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        tok, model = ctx.tokenizer, ctx.model
        gen = torch.Generator().manual_seed(ctx.rng.randrange(2 ** 31))
        seqs, masks, rewards = [], [], []
        prompt_lens = []
        was_training = model.training
        model.eval()
        for row in range(ctx.batch.input_ids.shape[0]):
            ids = ctx.batch.input_ids[row][ctx.batch.attention_mask[row].bool()].tolist()
            answer = ctx.batch.answer_mask[row].tolist()
            if not any(answer):
                continue
            first = answer.index(True)
            prompt, target = ids[:first], ids[first:]  # target: answer tokens + eos
            for c, cut, reward in self.rollouts(model, tok, prompt, target, gen):
                rewards.append(reward)
                seqs.append(prompt + c)
                masks.append([0] * len(prompt) + [1] * cut + [0] * (len(c) - cut))
                prompt_lens.append(len(prompt))
        if was_training:
            model.train()
        if not seqs:
            return None
        r = torch.tensor(rewards).view(-1, self.group)
        self.last_reward = float(r.mean())
        adv = F.group_advantages(r).view(-1)
        width = max(len(s) for s in seqs)
        pad = tok.pad_token_id
        ids_t = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        mask_t = torch.tensor([m + [0] * (width - len(m)) for m in masks])
        attn = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        dev = model_device(model)
        logits = model(input_ids=ids_t.to(dev), attention_mask=attn.to(dev)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(
            -1, ids_t[:, 1:].to(dev).unsqueeze(-1)).squeeze(-1)
        ref = None
        if self.beta and self._ref:
            with torch.no_grad():
                out = torch.func.functional_call(
                    model, self._ref, args=(), strict=False,
                    kwargs={"input_ids": ids_t.to(dev), "attention_mask": attn.to(dev)})
                ref = torch.log_softmax(out.logits.float()[:, :-1], -1).gather(
                    -1, ids_t[:, 1:].to(dev).unsqueeze(-1)).squeeze(-1)
        return F.grpo_loss(logp, logp.detach(), ref, adv.to(dev), mask_t[:, 1:].to(dev),
                           self.clip, self.beta)
