"""Continual-learning methods behind one interface (ALGORITHMS.md §5).

``Method`` itself is plain sequential LoRA (the baseline that forgets). Every other method
overrides a few hooks: which examples a round trains on (replay), an extra loss term (EWC,
I-LoRA consistency, GeRe margin), the LR multiplier (re-warm), what happens after each step
(I-LoRA EMA) and around a round (HFT freezing, EWC Fisher). Options are keyword arguments with
the spec's defaults; ``options()`` returns them for the manifest.

    name        class           defaults
    sequential  Method          -
    replay      Replay          ratio 0.25, capacity 1000 (reservoir)
    ewc         EWC             lam 0.1, fisher_samples 64
    ilora       ILoRA           a 0.25, lam 1.0, replay ratio 0.25
    hft         HFT             p 0.5
    gere        GeRe            ~1K general texts, margin weight 1.0 (or 'dynamic')
    rewarm      RewarmReplay    warmup 0.1, min_factor 0.1, replay ratio 0.25

More (MER, subspace-constrained LoRA, spaced review, low-rank EWC, GRPO) live in
:mod:`memkit.consolidate.methods_extra`, registered here by name.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

import torch

from memkit.consolidate import formulas as F
from memkit.consolidate.examples import TrainExample, collate
from memkit.consolidate.model import lora_params, lora_units, snapshot
from memkit.consolidate.tokenizer import TokenizerLike
from memkit.consolidate.trainer import StepContext, causal_lm_loss, forward
from memkit.errors import ConfigError
from memkit.registry import registry


class Method:
    """Plain sequential LoRA: train the running adapter on the new examples only."""

    name: ClassVar[str] = "sequential"
    needs_hidden_states: ClassVar[bool] = False
    #: weight of the SFT (next-token) loss; 0 = the method's own loss only (GRPO)
    sft_weight: float = 1.0

    def options(self) -> dict[str, Any]:
        return {}

    # -- hooks, in the order the trainer calls them
    def begin_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                    rng: random.Random) -> None:
        """Before the optimiser is built (so freezing here takes effect)."""

    def training_set(self, new: list[TrainExample], rng: random.Random) -> list[TrainExample]:
        return list(new)

    def lr_factor(self, step: int, total: int) -> float:
        return 1.0

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        return None

    def after_step(self, model: Any) -> None:
        """After each optimiser step."""

    def end_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                  rng: random.Random) -> None:
        """After the last step of a round."""

    def serving_weights(self) -> dict[str, torch.Tensor] | None:
        """LoRA weights to answer with, when they differ from the trained ones (I-LoRA)."""
        return None

    # -- persistence: tensors go to safetensors, the rest to JSON
    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def state_json(self) -> dict[str, Any]:
        return {}

    def load_state(self, tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> None:
        """Restore what ``state_tensors``/``state_json`` saved."""


class Replay(Method):
    """LoRA on the new examples mixed with a reservoir-sampled buffer of earlier ones.

    ``ratio`` is the replayed share of each round's training set. An example whose ``key``
    (its question) reappears in a newer round is dropped from the buffer: the stale answer to
    an updated fact is never replayed.
    """

    name = "replay"

    def __init__(self, ratio: float = 0.25, capacity: int = 1000) -> None:
        F.replay_count(1, ratio)  # validates the ratio
        if capacity < 1:
            raise ConfigError(f"replay capacity must be >= 1, got {capacity}")
        self.ratio = ratio
        self.capacity = capacity
        self.buffer: list[TrainExample] = []
        self.seen = 0
        self.last_replayed = 0

    def options(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "capacity": self.capacity}

    def training_set(self, new: list[TrainExample], rng: random.Random) -> list[TrainExample]:
        keys = {ex.key for ex in new}
        self.buffer = [b for b in self.buffer if b.key not in keys]
        k = min(F.replay_count(len(new), self.ratio), len(self.buffer))
        replayed = [b.replayed() for b in rng.sample(self.buffer, k)]
        self.last_replayed = k
        return list(new) + replayed

    def end_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                  rng: random.Random) -> None:
        super().end_round(model, tok, new, rng)
        for ex in new:
            self.seen = F.reservoir_offer(self.buffer, ex, self.seen, self.capacity, rng)

    def state_json(self) -> dict[str, Any]:
        return {"buffer": [b.as_dict() for b in self.buffer], "seen": self.seen}

    def load_state(self, tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> None:
        self.buffer = [TrainExample.from_dict(d) for d in data.get("buffer", [])]
        self.seen = int(data.get("seen", 0))


class EWC(Method):
    """Elastic weight consolidation on the LoRA parameters with a diagonal (empirical) Fisher.

    After each round the Fisher of that round's examples is added to the running one
    (``F <- gamma * F + F_round``) and the current weights become the anchor.
    """

    name = "ewc"

    def __init__(self, lam: float = 0.1, fisher_samples: int = 64, gamma: float = 1.0) -> None:
        self.lam = lam
        self.fisher_samples = fisher_samples
        self.gamma = gamma
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchors: dict[str, torch.Tensor] = {}

    def options(self) -> dict[str, Any]:
        return {"lam": self.lam, "fisher_samples": self.fisher_samples, "gamma": self.gamma}

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        if not self.anchors:
            return None
        return F.ewc_penalty(lora_params(ctx.model), self.anchors, self.fisher, self.lam)

    def end_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                  rng: random.Random) -> None:
        params = lora_params(model)
        sample = rng.sample(new, min(self.fisher_samples, len(new)))
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        flags = {n: p.requires_grad for n, p in params.items()}
        for p in params.values():
            p.requires_grad_(True)
        for ex in sample:
            model.zero_grad(set_to_none=True)
            batch = collate([ex], tok)
            causal_lm_loss(forward(model, batch).logits, batch.labels).backward()
            for n, p in params.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach() ** 2
        model.zero_grad(set_to_none=True)
        for n, p in params.items():
            p.requires_grad_(flags[n])
        for n in fisher:
            fisher[n] /= max(1, len(sample))
            old = self.fisher.get(n)
            self.fisher[n] = fisher[n] if old is None else self.gamma * old + fisher[n]
        self.anchors = snapshot(params)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"fisher::{n}": t for n, t in self.fisher.items()}
        out.update({f"anchor::{n}": t for n, t in self.anchors.items()})
        return out

    def load_state(self, tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> None:
        self.fisher = {k[8:]: v for k, v in tensors.items() if k.startswith("fisher::")}
        self.anchors = {k[8:]: v for k, v in tensors.items() if k.startswith("anchor::")}


class ILoRA(Replay):
    """I-LoRA: a fast adapter trained on new + replayed examples, a slow EMA adapter
    (``slow <- a * slow + (1 - a) * fast`` after every step) that serves answers, and an MSE
    consistency loss pulling the fast model's last hidden states on replayed examples towards
    the slow model's."""

    name = "ilora"
    needs_hidden_states = True

    def __init__(self, a: float = 0.25, lam: float = 1.0, ratio: float = 0.25,
                 capacity: int = 1000) -> None:
        super().__init__(ratio=ratio, capacity=capacity)
        self.a = a
        self.lam = lam
        self.slow: dict[str, torch.Tensor] = {}

    def options(self) -> dict[str, Any]:
        return {"a": self.a, "lam": self.lam, **super().options()}

    def begin_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                    rng: random.Random) -> None:
        if not self.slow:
            self.slow = snapshot(lora_params(model))

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        rows = ctx.batch.is_replay.nonzero().flatten()
        if rows.numel() == 0 or not self.slow:
            return None
        sub = ctx.batch.select(rows)
        fast_h = ctx.outputs.hidden_states[-1][rows]
        with torch.no_grad():
            kwargs = {"input_ids": sub.input_ids, "attention_mask": sub.attention_mask,
                      "output_hidden_states": True}
            slow_out = torch.func.functional_call(ctx.model, self.slow, args=(), kwargs=kwargs,
                                                  strict=False)
        return self.lam * F.consistency_mse(fast_h, slow_out.hidden_states[-1],
                                            sub.attention_mask)

    def after_step(self, model: Any) -> None:
        with torch.no_grad():
            for n, p in lora_params(model).items():
                self.slow[n] = F.ema_update(self.slow[n], p.detach(), self.a)

    def serving_weights(self) -> dict[str, torch.Tensor] | None:
        return dict(self.slow) if self.slow else None

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"slow::{n}": t for n, t in self.slow.items()}

    def load_state(self, tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> None:
        super().load_state(tensors, data)
        self.slow = {k[6:]: v for k, v in tensors.items() if k.startswith("slow::")}


class HFT(Method):
    """Half fine-tuning: each round freeze a random ``p`` share of the adapted matrices
    (a LoRA unit = the A and B of one base matrix) and train the rest."""

    name = "hft"

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"HFT p must be in [0, 1], got {p}")
        self.p = p
        self.frozen_units: list[str] = []

    def options(self) -> dict[str, Any]:
        return {"p": self.p}

    def begin_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                    rng: random.Random) -> None:
        units = lora_units(model)
        self.frozen_units = F.hft_frozen_units(sorted(units), self.p, rng)
        params = lora_params(model)
        for unit, names in units.items():
            for n in names:
                params[n].requires_grad_(unit not in self.frozen_units)

    def end_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                  rng: random.Random) -> None:
        for p in lora_params(model).values():
            p.requires_grad_(True)


class GeRe(Method):
    """General-sample replay: each step also trains on a batch of fixed general texts and
    keeps their last-layer activations inside the bands the frozen base model defines
    (threshold-based margin loss; band = mean +- std per hidden unit, from the base model).

    ``margin_weight='dynamic'`` (the reference code's ``dy``) rescales the margin term to the
    size of the cross entropy every step; on the tiny benchmark model that swamps the task loss
    (new-task accuracy ~0.2), so the default is a fixed weight of 1.0.
    """

    name = "gere"
    needs_hidden_states = False

    def __init__(self, general_texts: list[str] | None = None, batch_size: int = 8,
                 margin_weight: float | str = 1.0, max_texts: int = 1000) -> None:
        if not general_texts:
            raise ConfigError("GeRe needs general_texts (a fixed set of ~1K general samples)")
        if isinstance(margin_weight, str) and margin_weight != "dynamic":
            raise ConfigError("margin_weight must be a number or 'dynamic'")
        self.texts = list(general_texts)[:max_texts]
        self.batch_size = batch_size
        self.margin_weight = margin_weight
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self.last_margin = 0.0

    def options(self) -> dict[str, Any]:
        return {"n_texts": len(self.texts), "batch_size": self.batch_size,
                "margin_weight": self.margin_weight}

    def begin_round(self, model: Any, tok: TokenizerLike, new: list[TrainExample],
                    rng: random.Random) -> None:
        if self.mean is not None:
            return
        total = sq = None
        count = 0
        with torch.no_grad(), model.disable_adapter():
            for start in range(0, len(self.texts), 64):
                chunk = [TrainExample("", t, t) for t in self.texts[start:start + 64]]
                batch = collate(chunk, tok)
                h = forward(model, batch, hidden=True).hidden_states[-1].float()
                h = h[batch.attention_mask.bool()]
                total = h.sum(0) if total is None else total + h.sum(0)
                sq = (h ** 2).sum(0) if sq is None else sq + (h ** 2).sum(0)
                count += h.shape[0]
        assert total is not None and sq is not None
        self.mean = total / count
        self.std = (sq / count - self.mean ** 2).clamp_min(0).sqrt()

    def extra_loss(self, ctx: StepContext) -> torch.Tensor | None:
        assert self.mean is not None and self.std is not None
        picked = ctx.rng.sample(self.texts, min(self.batch_size, len(self.texts)))
        batch = collate([TrainExample("", t, t) for t in picked], ctx.tokenizer, ctx.max_len)
        out = forward(ctx.model, batch, hidden=True)
        ce = causal_lm_loss(out.logits, batch.labels)
        with torch.no_grad(), ctx.model.disable_adapter():
            frozen = forward(ctx.model, batch, hidden=True).hidden_states[-1]
        margin = F.tm_margin_loss(out.hidden_states[-1], frozen, self.mean, self.std,
                                  batch.attention_mask)
        self.last_margin = float(margin.detach())
        if self.margin_weight == "dynamic":
            w = float((ctx.task_loss.detach() + ce.detach()) / (margin.detach() + 1e-8))
            w = min(w, 1e4)
        else:
            w = float(self.margin_weight)
        return ce + w * margin

    def state_tensors(self) -> dict[str, torch.Tensor]:
        if self.mean is None or self.std is None:
            return {}
        return {"mean": self.mean, "std": self.std}

    def load_state(self, tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> None:
        if "mean" in tensors:
            self.mean, self.std = tensors["mean"], tensors["std"]


class RewarmReplay(Replay):
    """Replay with an LR that re-warms linearly each round, then decays on a cosine."""

    name = "rewarm"

    def __init__(self, warmup: float = 0.1, min_factor: float = 0.1, ratio: float = 0.25,
                 capacity: int = 1000) -> None:
        super().__init__(ratio=ratio, capacity=capacity)
        self.warmup = warmup
        self.min_factor = min_factor

    def options(self) -> dict[str, Any]:
        return {"warmup": self.warmup, "min_factor": self.min_factor, **super().options()}

    def lr_factor(self, step: int, total: int) -> float:
        return F.rewarm_cosine_factor(step, total, self.warmup, self.min_factor)


METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (Method, Replay, EWC, ILoRA, HFT, GeRe, RewarmReplay)
}
#: consolidation methods by name: memkit's own (above) and plugins' (``memkit.consolidation_
#: methods`` entry points), the same registry style as backends and rerankers
#: methods of memkit.consolidate.methods_extra (imported on first use)
EXTRA_METHODS = {"mer": "MER", "subspace": "SubspaceLoRA", "spaced": "SpacedReplay",
                 "ewc-lowrank": "LowRankEWC", "grpo": "GRPO"}
CONSOLIDATION_METHODS = registry("consolidation_methods", {
    **{name: f"memkit.consolidate.methods:{cls.__name__}" for name, cls in METHODS.items()},
    **{name: f"memkit.consolidate.methods_extra:{cls}" for name, cls in EXTRA_METHODS.items()}})


def make_method(spec: str | Method, **options: Any) -> Method:
    """A method instance from its registered name (with options) or an instance as is."""
    if isinstance(spec, Method):
        if options:
            raise ConfigError("options are only accepted with a method name")
        return spec
    cls = CONSOLIDATION_METHODS.resolve(spec) if isinstance(spec, str) else None
    if cls is None:
        raise ConfigError(f"unknown consolidation method {spec!r}; "
                          f"known: {CONSOLIDATION_METHODS.names()}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"bad options for method {spec!r}: {exc}") from exc
