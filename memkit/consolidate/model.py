"""Base models and LoRA adapters: build a tiny causal LM, load a real one, attach/read LoRA.

Nothing here downloads: real models load from a local directory or a local GGUF file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from memkit._deps import quiet_peft, require
from memkit.consolidate.tokenizer import TOKENIZER_FILE, HFTokenizer, TokenizerLike, WordTokenizer

LORA_MARK = "lora_"


@dataclass(frozen=True)
class TinyLMConfig:
    """A random-initialised Llama-style LM small enough to pre-train on 2 CPU cores."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    max_positions: int = 64

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapter shape; ``target_modules='all-linear'`` adapts all linear layers but the head."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "all-linear"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if isinstance(self.target_modules, tuple):
            data["target_modules"] = list(self.target_modules)
        return data


def build_tiny_lm(vocab_size: int, config: TinyLMConfig | None = None, seed: int = 0) -> Any:
    """A ``LlamaForCausalLM`` with random weights drawn from ``seed``."""
    transformers = require("transformers", "train", "tiny consolidation model")
    cfg = config or TinyLMConfig()
    llama_cfg = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_positions,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transformers.LlamaForCausalLM(llama_cfg)


def save_base(model: Any, tokenizer: TokenizerLike, directory: Path) -> None:
    """Save a base model (and a :class:`WordTokenizer`) so :func:`load_base` can read it."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    if isinstance(tokenizer, WordTokenizer):
        tokenizer.save(directory)
    elif isinstance(tokenizer, HFTokenizer):
        tokenizer.inner.save_pretrained(directory)


def load_base(path: str | Path) -> tuple[Any, TokenizerLike]:
    """Load a causal LM and its tokenizer from a local directory, a ``.gguf`` file or the
    packaged ``"gemma3-270m"`` (:func:`memkit.llm.local_lm.load_causal_lm`).

    A directory written by :func:`save_base` with a word tokenizer loads that tokenizer; a
    ``.gguf`` file is de-quantised by transformers (``gguf_file=``; needs the ``gguf`` package).
    """
    from memkit.llm.local_lm import load_causal_lm, resolve_model_spec

    p = resolve_model_spec(path)
    if p.is_dir() and (p / TOKENIZER_FILE).exists():
        transformers = require("transformers", "train", "consolidation base model")
        model = transformers.AutoModelForCausalLM.from_pretrained(p, local_files_only=True)
        return model, WordTokenizer.load(p)
    model, hf_tok = load_causal_lm(p, feature="consolidation base model")
    return model, HFTokenizer(hf_tok)


def attach_lora(model: Any, settings: LoraSettings, seed: int = 0) -> Any:
    """Wrap ``model`` in a trainable ``PeftModel`` with a fresh LoRA adapter (seeded init)."""
    peft = require("peft", "train", "LoRA consolidation")
    targets = settings.target_modules
    cfg = peft.LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(targets) if isinstance(targets, tuple) else targets,
        task_type="CAUSAL_LM",
    )
    with quiet_peft(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return peft.get_peft_model(model, cfg)


def load_adapter(model: Any, adapter_dir: Path, trainable: bool = False) -> Any:
    """Attach a saved adapter to a base ``model`` (returns a ``PeftModel``)."""
    peft = require("peft", "train", "LoRA consolidation")
    with quiet_peft():
        return peft.PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


def save_adapter(peft_model: Any, adapter_dir: Path) -> None:
    with quiet_peft():
        peft_model.save_pretrained(str(adapter_dir))


def lora_params(model: Any) -> dict[str, torch.nn.Parameter]:
    """The LoRA parameters of a ``PeftModel`` by name (trainable or not)."""
    return {n: p for n, p in model.named_parameters() if LORA_MARK in n}


def lora_units(model: Any) -> dict[str, list[str]]:
    """Group LoRA parameters by the base matrix they adapt (one unit = its A and B).

    >>> # 'x.q_proj.lora_A.default.weight' and 'x.q_proj.lora_B.default.weight' -> 'x.q_proj'
    """
    units: dict[str, list[str]] = {}
    for name in lora_params(model):
        unit = name.split("." + LORA_MARK)[0]
        units.setdefault(unit, []).append(name)
    return units


def snapshot(params: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


@contextmanager
def swapped_weights(model: Any, weights: dict[str, torch.Tensor]) -> Iterator[Any]:
    """Temporarily copy ``weights`` into the model's parameters of the same names."""
    params = dict(model.named_parameters())
    saved = {n: params[n].detach().clone() for n in weights}
    with torch.no_grad():
        for n, w in weights.items():
            params[n].copy_(w)
    try:
        yield model
    finally:
        with torch.no_grad():
            for n, w in saved.items():
                params[n].copy_(w)
