"""RecaLLM training recipe: stage 1 trains only the recall-token embeddings, stage 2 everything.

On synthetic data where the answer must be quoted from the context: a list of ``key = value``
records and a question about one key; the target is ``<|start_recall|> value <|end_recall|>``.
The loss covers the target tokens only. Plain PyTorch (AdamW), so it runs on CPU for a tiny
random-initialised model and on a GPU for a real checkpoint (``benchmarks/recall_train_demo.py``).

The paper's third stage (GRPO on :func:`recall_reward`) belongs with the RL trainer; the seam is
:func:`recall_reward` (the reward formula, pure) and :func:`span_scores` (format / answer /
recall scores of one generated output), which a TRL ``GRPOTrainer`` reward function can call.

>>> round(recall_reward(True, 1.0, 1.0), 6), round(recall_reward(True, 1.0, 0.0), 6)
(1.0, 0.4)
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memkit._deps import require
from memkit.errors import InvalidInput
from memkit.generate.recall_tokens import END_RECALL, START_RECALL, recall_token_ids

VALUE_KINDS = ("words", "digits", "uuid")


@dataclass(frozen=True)
class CopyExample:
    """One synthetic example: ``prompt`` + ``target``; ``answer`` is the value to quote."""

    prompt: str
    answer: str

    @property
    def target(self) -> str:
        return f" {START_RECALL} {self.answer} {END_RECALL}"


def _value(rng: np.random.Generator, kind: str, n_values: int, value_len: int) -> str:
    if kind == "words":
        return " ".join(f"v{int(i)}" for i in rng.integers(0, n_values, size=value_len))
    if kind == "digits":
        return "".join(str(int(d)) for d in rng.integers(0, 10, size=10))
    if kind == "uuid":
        hexd = "".join(rng.choice(list(string.hexdigits[:16]), size=32).tolist())
        return f"{hexd[:8]}-{hexd[8:12]}-{hexd[12:16]}-{hexd[16:20]}-{hexd[20:]}"
    raise InvalidInput(f"value kind must be one of {VALUE_KINDS}, got {kind!r}")


def make_copy_examples(
    n: int,
    *,
    seed: int = 0,
    n_pairs: int = 4,
    n_keys: int = 50,
    n_values: int = 50,
    value_len: int = 3,
    kind: str = "words",
) -> list[CopyExample]:
    """``n`` key→value copy examples: ``k3 = v1 v9 ; k7 = … ; ? k7 =`` → ``v… v… v…``."""
    if n_pairs > n_keys:
        raise InvalidInput(f"n_pairs ({n_pairs}) cannot exceed n_keys ({n_keys})")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        keys = rng.choice(n_keys, size=n_pairs, replace=False)
        vals = [_value(rng, kind, n_values, value_len) for _ in keys]
        q = int(rng.integers(n_pairs))
        recs = " ; ".join(f"k{int(k)} = {v}" for k, v in zip(keys, vals, strict=True))
        out.append(CopyExample(f"{recs} ; ? k{int(keys[q])} =", vals[q]))
    return out


def build_copy_tokenizer(n_keys: int = 50, n_values: int = 50) -> Any:
    """A word-level tokenizer for the ``words`` copy task (no download; recall tokens absent)."""
    tokenizers = require("tokenizers", "llm", "recall training demo")
    transformers = require("transformers", "llm", "recall training demo")
    words = ["<pad>", "<s>", "</s>", "<unk>", "=", ";", "?"]
    words += [f"k{i}" for i in range(n_keys)] + [f"v{i}" for i in range(n_values)]
    tok = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>")
    )
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok.decoder = tokenizers.decoders.WordPiece(prefix="##")
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def tiny_llama(
    vocab_size: int,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    window: int = 256,
    seed: int = 0,
) -> Any:
    """A random-initialised small Llama (CPU-sized) for tests and the demo."""
    torch = require("torch", "llm", "recall training demo")
    transformers = require("transformers", "llm", "recall training demo")
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=window,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return transformers.LlamaForCausalLM(cfg)


@dataclass(frozen=True)
class StageConfig:
    """One training stage: ``which`` is ``"embeddings"`` (stage 1) or ``"full"`` (stage 2)."""

    which: str
    steps: int
    lr: float
    batch_size: int = 16


def _batches(
    tokenizer: Any, examples: Sequence[CopyExample], batch_size: int, seed: int
) -> Iterator[tuple[Any, Any, Any]]:
    torch = require("torch", "llm", "recall training")
    rng = np.random.default_rng(seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos = tokenizer.eos_token_id
    while True:
        pick = rng.choice(len(examples), size=min(batch_size, len(examples)), replace=False)
        rows, labels = [], []
        for i in pick.tolist():
            ex = examples[i]
            p = tokenizer(ex.prompt)["input_ids"]
            t = tokenizer(ex.target, add_special_tokens=False)["input_ids"]
            t = t + ([eos] if eos is not None else [])
            rows.append(p + t)
            labels.append([-100] * len(p) + t)
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        lab = torch.full((len(rows), width), -100, dtype=torch.long)
        att = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (row, lb) in enumerate(zip(rows, labels, strict=True)):
            ids[r, : len(row)] = torch.tensor(row)
            lab[r, : len(lb)] = torch.tensor(lb)
            att[r, : len(row)] = 1
        yield ids, att, lab


def train_stage(
    model: Any,
    tokenizer: Any,
    examples: Sequence[CopyExample],
    stage: StageConfig,
    *,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Run one stage; returns the loss per step.

    Stage ``"embeddings"`` freezes every parameter but the embedding matrices and zeroes the
    gradient of every row except the two recall tokens, so only their embeddings move.
    """
    torch = require("torch", "llm", "recall training")
    tqdm = require("tqdm", "llm", "recall training").tqdm
    if stage.which not in ("embeddings", "full"):
        raise InvalidInput(f"stage must be 'embeddings' or 'full', got {stage.which!r}")
    device = next(model.parameters()).device
    ids = list(recall_token_ids(tokenizer))
    hooks = []
    if stage.which == "embeddings":
        for p in model.parameters():
            p.requires_grad_(False)
        mats = [model.get_input_embeddings().weight, model.get_output_embeddings().weight]
        keep = torch.zeros(mats[0].shape[0], 1, device=device)
        keep[ids] = 1.0
        for m in {id(m): m for m in mats}.values():
            m.requires_grad_(True)
            hooks.append(m.register_hook(lambda g, k=keep: g * k))
        params = [p for p in model.parameters() if p.requires_grad]
        decay = 0.0
    else:
        for p in model.parameters():
            p.requires_grad_(True)
        params = list(model.parameters())
        decay = 0.01
    opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=decay)
    model.train()
    losses = []
    batches = _batches(tokenizer, examples, stage.batch_size, seed)
    bar = tqdm(range(stage.steps), desc=f"recall {stage.which}", disable=not progress)
    try:
        for _ in bar:
            x, att, lab = next(batches)
            out = model(
                input_ids=x.to(device), attention_mask=att.to(device), labels=lab.to(device)
            )
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(float(out.loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    finally:
        for h in hooks:
            h.remove()
        for p in model.parameters():
            p.requires_grad_(True)
        model.eval()
    return losses


def span_scores(raw_text: str, answer: str, context: str) -> tuple[bool, float, float]:
    """``(format_ok, answer, recall)`` for one output, the inputs of :func:`recall_reward`.

    format: exactly one well-formed ``<|start_recall|> … <|end_recall|>`` span. answer: the span
    (stripped) equals ``answer``. recall: the span is a substring of ``context``.
    """
    s, e = raw_text.find(START_RECALL), raw_text.find(END_RECALL)
    ok = s != -1 and e > s and raw_text.count(START_RECALL) == 1
    span = raw_text[s + len(START_RECALL) : e].strip() if ok else ""
    return ok, float(ok and span == answer.strip()), float(ok and bool(span) and span in context)


def recall_reward(format_ok: bool, answer: float, recall: float) -> float:
    """RecaLLM's reward: 0.2·format + 0.4·(0.5·answer + 0.5·recall) + 0.4·√(answer·recall)."""
    return (
        0.2 * float(format_ok)
        + 0.4 * (0.5 * answer + 0.5 * recall)
        + 0.4 * math.sqrt(max(answer, 0.0) * max(recall, 0.0))
    )


def copy_exact_match(
    model: Any,
    tokenizer: Any,
    examples: Sequence[CopyExample],
    *,
    constrained: bool,
    at_slot: bool = False,
    max_new_tokens: int = 16,
) -> float:
    """Exact match of the quoted value, with or without the recall constraint.

    Unconstrained: greedy ``generate``; the answer is the text between the recall markers.
    Constrained: :func:`~memkit.generate.recall_hf.generate_with_recall`; the answer is the
    first span. ``at_slot=True`` (constrained only): the application opens the span by ending
    the prompt with ``<|start_recall|>`` instead of waiting for the model to emit it.
    """
    torch = require("torch", "llm", "recall evaluation")
    from memkit.generate.recall_hf import generate_with_recall

    hits = 0
    for ex in examples:
        if constrained:
            prompt = f"{ex.prompt} {START_RECALL}" if at_slot else ex.prompt
            res = generate_with_recall(model, tokenizer, prompt, max_new_tokens=max_new_tokens)
            got = res.spans[0].text.strip() if res.spans else None
        else:
            enc = tokenizer(ex.prompt, return_tensors="pt")
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            raw = tokenizer.decode(out[0, enc["input_ids"].shape[1] :].tolist())
            ok, ans, _ = span_scores(raw, ex.answer, ex.prompt)
            got = ex.answer if ans else None
        hits += int(got == ex.answer)
    return hits / max(len(examples), 1)
