"""Supervised cold start of a MemSifter proxy (LoRA), and its session-level evaluation.

The reply a row teaches is its ``target`` (:func:`memkit.sifterlab.snippets.target_reply`:
an empty ``<think></think>``, then the gold candidates first). The loss is the cross-entropy
of the reply tokens (and EOS) given the prompt exactly as serving renders it
(``TransformersLLM.render``: the chat template, or ``role: content`` lines for a base model
without one), so the trained adapter is used unchanged by ``rerank="sifter",
rerank_model=PATH``. Only the reply positions go through the LM head (``logits_to_keep``):
for Gemma-3-270M the 262k-word head costs more than the 18 layers over an 800-token prompt.

Training is resumable: every ``checkpoint_every`` optimizer steps the adapter, optimizer,
step and loss log are written under ``out_dir/checkpoint`` (atomically renamed), and a rerun
with the same settings continues from there. :func:`evaluate_proxy` generates one greedy
reply per row and scores it over *all* of the question's sessions (the proxy's order of the
candidates, then the sessions it was not shown, by embedding score), beside the embedding
ranking on the same rows: NDCG@1, NDCG@10, recall@5, and the well-formed rate
(:func:`memkit.sifterlab.reward.format_gate`).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from memkit._deps import quiet_peft, require
from memkit.backends.sifter.parse import parse_ranking
from memkit.errors import ConfigError, InvalidInput
from memkit.sifterlab.reward import format_gate, ndcg_at_k, recall_at_k

__all__ = ["SFTSettings", "attach_proxy_lora", "encode_row", "evaluate_proxy", "score_replies",
           "train_sft"]

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class SFTSettings:
    """LoRA SFT settings; ``grad_accum`` rows per optimizer step, linear warm-up over
    ``warmup_steps`` then linear decay to 0 over the run."""

    lr: float = 2e-4
    epochs: float = 1.0
    grad_accum: int = 4
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    warmup_steps: int = 5
    max_grad_norm: float = 1.0
    checkpoint_every: int = 10
    seed: int = 0
    #: modules trained in full beside the adapter (peft ``modules_to_save``), e.g. ``("norm",)``
    #: for a random-initialised policy whose tiny frozen embeddings bound its logits
    modules_to_save: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.epochs <= 0:
            raise InvalidInput("SFTSettings: lr and epochs must be > 0")
        if self.grad_accum < 1 or self.lora_r < 1 or self.checkpoint_every < 1:
            raise InvalidInput("SFTSettings: grad_accum, lora_r, checkpoint_every must be >= 1")


def attach_proxy_lora(model: Any, settings: SFTSettings) -> Any:
    """``model`` wrapped in a fresh, seeded LoRA adapter on the attention and MLP matrices
    that exist in it."""
    peft = require("peft", "train", "sifter SFT")
    torch = require("torch", "train", "sifter SFT")
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in LORA_TARGETS if t in names]
    if not targets:
        raise ConfigError(f"no LoRA target among {LORA_TARGETS} in {type(model).__name__}")
    cfg = peft.LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha,
                          lora_dropout=settings.lora_dropout, target_modules=targets,
                          modules_to_save=list(settings.modules_to_save) or None,
                          task_type="CAUSAL_LM")
    with quiet_peft(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        return peft.get_peft_model(model, cfg)


def encode_row(llm: Any, row: dict[str, Any]) -> tuple[list[int], int]:
    """(prompt + reply + EOS token ids, number of reply tokens incl. EOS), tokenised as
    ``TransformersLLM`` feeds the prompt at serving time."""
    if not row.get("target"):
        raise InvalidInput(f"row {row.get('qid')!r} has no 'target' reply")
    tok = llm.tokenizer
    has_template = bool(getattr(tok, "chat_template", None))
    prompt = tok(llm.render(row["prompt"]), add_special_tokens=not has_template)["input_ids"]
    reply = tok(row["target"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return list(prompt) + list(reply), len(reply)


def _reply_loss(model: Any, ids: list[int], n_reply: int) -> Any:
    torch = require("torch", "train", "sifter SFT")
    x = torch.tensor([ids], device=next(model.parameters()).device)
    out = model(input_ids=x, logits_to_keep=n_reply + 1)
    logits = out.logits[0, :-1].float()  # position P-1+i predicts reply token i
    return torch.nn.functional.cross_entropy(logits, x[0, -n_reply:])


def _lr_at(step: int, total: int, s: SFTSettings) -> float:
    if step < s.warmup_steps:
        return s.lr * (step + 1) / (s.warmup_steps + 1)
    span = max(total - s.warmup_steps, 1)
    return s.lr * max(0.0, 1.0 - (step - s.warmup_steps) / span)


def _schedule(n_rows: int, s: SFTSettings) -> list[int]:
    rng = random.Random(s.seed)
    order: list[int] = []
    while len(order) < math.ceil(s.epochs * n_rows):
        perm = list(range(n_rows))
        rng.shuffle(perm)
        order.extend(perm)
    return order[: math.ceil(s.epochs * n_rows)]


def _save_checkpoint(ck: Path, model: Any, opt: Any, step: int, log: list[dict[str, Any]],
                     key: str) -> None:
    torch = require("torch", "train", "sifter SFT")
    tmp = ck.with_name(ck.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with quiet_peft():
        model.save_pretrained(str(tmp / "adapter"))
    torch.save({"optimizer": opt.state_dict(), "step": step}, tmp / "state.pt")
    (tmp / "log.json").write_text(json.dumps({"key": key, "log": log}))
    old = ck.with_name(ck.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ck.exists():
        ck.rename(old)
    tmp.rename(ck)
    shutil.rmtree(old, ignore_errors=True)


def _resume(ck: Path, model: Any, opt: Any, key: str) -> tuple[int, list[dict[str, Any]]]:
    if not (ck / "log.json").exists():
        return 0, []
    saved = json.loads((ck / "log.json").read_text())
    if saved.get("key") != key:
        raise ConfigError(f"{ck} was written with other settings or rows; use another out_dir "
                          f"or delete it")
    torch = require("torch", "train", "sifter SFT")
    peft = require("peft", "train", "sifter SFT")
    with quiet_peft():
        weights = peft.utils.load_peft_weights(str(ck / "adapter"))
        peft.set_peft_model_state_dict(model, weights)
    state = torch.load(ck / "state.pt", weights_only=False)
    opt.load_state_dict(state["optimizer"])
    return int(state["step"]), list(saved["log"])


def train_sft(llm: Any, rows: Sequence[dict[str, Any]], settings: SFTSettings,
              out_dir: str | Path, *, evaluate: Callable[[int], dict[str, Any]] | None = None,
              eval_every: int = 0, progress: bool = True) -> list[dict[str, Any]]:
    """Train ``llm.hf_model`` (a peft model, see :func:`attach_proxy_lora`) on ``rows``;
    returns the log (one entry per optimizer step: step, loss, lr, seconds; plus ``eval``
    entries from ``evaluate(step)`` at step 0, every ``eval_every`` steps and at the end)."""
    torch = require("torch", "train", "sifter SFT")
    if not rows:
        raise InvalidInput("train_sft needs at least one row")
    model = llm.hf_model
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameter: attach a LoRA adapter first")
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    order = _schedule(len(rows), settings)
    total = math.ceil(len(order) / settings.grad_accum)
    key = json.dumps({"settings": asdict(settings),
                      "rows": [r["qid"] for r in rows]}, sort_keys=True)
    ck = Path(out_dir) / "checkpoint"
    step, log = _resume(ck, model, opt, key)
    if evaluate is not None and step == 0:
        log.append({"step": 0, "eval": evaluate(0)})
    bar = tqdm(total=total, initial=step, desc="SFT steps", disable=not progress)
    while step < total:
        model.train()
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, total, settings)
        batch = order[step * settings.grad_accum:(step + 1) * settings.grad_accum]
        losses = []
        for i in batch:
            ids, n_reply = encode_row(llm, rows[i])
            loss = _reply_loss(model, ids, n_reply)
            (loss / len(batch)).backward()
            losses.append(float(loss.detach()))
        torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        log.append({"step": step, "loss": sum(losses) / len(losses),
                    "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0})
        bar.update(1)
        bar.set_postfix(loss=f"{log[-1]['loss']:.3f}")
        model.eval()
        if evaluate is not None and (step == total or (eval_every and step % eval_every == 0)):
            log.append({"step": step, "eval": evaluate(step)})
        if step % settings.checkpoint_every == 0 or step == total:
            _save_checkpoint(ck, model, opt, step, log, key)
    bar.close()
    model.eval()
    return log


def _session_order(row: dict[str, Any], candidate_order: Sequence[int]) -> list[int]:
    shown = [row["candidate_sessions"][j] for j in candidate_order]
    seen = set(shown)
    return shown + [s for s in row["all_ranking"] if s not in seen]


def _metrics(ranking: Sequence[int], gold: Sequence[int]) -> dict[str, float]:
    return {"ndcg@1": ndcg_at_k(ranking, gold, 1), "ndcg@10": ndcg_at_k(ranking, gold, 10),
            "recall@5": recall_at_k(ranking, gold, 5)}


def _mean(dicts: Sequence[dict[str, float]]) -> dict[str, float]:
    if not dicts:
        return {}
    return {k: round(sum(d[k] for d in dicts) / len(dicts), 4) for k in dicts[0]}


def evaluate_proxy(llm: Any, rows: Sequence[dict[str, Any]], *, max_tokens: int = 40,
                   progress: bool = True) -> dict[str, Any]:
    """Greedy replies of ``llm`` on ``rows`` scored at session level (module docstring)."""
    if not rows:
        raise InvalidInput("evaluate_proxy needs at least one row")
    t0 = time.perf_counter()
    texts = [llm.complete(row["prompt"], max_tokens=max_tokens, temperature=0.0).text
             for row in tqdm(rows, desc="proxy eval", disable=not progress)]
    return {**score_replies(rows, texts),
            "seconds_per_row": round((time.perf_counter() - t0) / len(rows), 3)}


def score_replies(rows: Sequence[dict[str, Any]], texts: Sequence[str]) -> dict[str, Any]:
    """Score one proxy reply per row: the candidates it ranks, then those it leaves out in
    the prefilter's order (as serving appends them), then the sessions it was not shown."""
    if len(rows) != len(texts):
        raise InvalidInput(f"{len(rows)} rows but {len(texts)} replies")
    proxy: list[dict[str, float]] = []
    pre: list[dict[str, float]] = []
    replies: list[dict[str, Any]] = []
    by_cat: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {}
    formed = 0
    for row, text in zip(rows, texts, strict=True):
        n = int(row["n_candidates"])
        parsed = parse_ranking(text, n)
        ok = format_gate(text, n, int(row["top_n"]))
        formed += ok
        order = parsed.ranked + [j for j in row["prefilter_ranking"] if j not in parsed.ranked]
        m_proxy = _metrics(_session_order(row, order), row["all_gold"])
        m_pre = _metrics(row["all_ranking"], row["all_gold"])
        proxy.append(m_proxy)
        pre.append(m_pre)
        by_cat.setdefault(str(row.get("category", -1)), []).append((m_proxy, m_pre))
        replies.append({"qid": row["qid"], "reply": text, "well_formed": ok,
                        "gold": row["gold"], "ranked": parsed.ranked})
    return {
        "n": len(rows), "well_formed_rate": round(formed / len(rows), 4),
        "proxy": _mean(proxy), "prefilter": _mean(pre),
        "by_category": {c: {"n": len(v), "proxy": _mean([a for a, _ in v]),
                            "prefilter": _mean([b for _, b in v])}
                        for c, v in sorted(by_cat.items())},
        "replies": replies,
    }
