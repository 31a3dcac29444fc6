"""A trained MemSifter proxy on disk, and loading it for serving (extra ``[train]``).

A proxy directory holds ``proxy.json`` (the base model spec, the prompt settings it was
trained with, what it was trained on) and ``adapter/`` (a peft LoRA adapter). The base is
``"gemma3-270m"`` (the packaged GGUF, de-quantised by transformers), a ``.gguf`` file or a
local model directory; nothing is downloaded.

    mem.read("Where did Ann move?", k=5, rerank="sifter", rerank_model="runs/sft/proxy")

:func:`load_proxy` is memoised per (resolved path, modification time of ``proxy.json``): a
server loads the model once, not once per read.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memkit._deps import quiet_peft, require
from memkit.backends.sifter.prompt import SYSTEM, TASK, PromptConfig
from memkit.errors import InvalidInput, NotFound

__all__ = ["PROXY_FILE", "TrainedProxy", "load_base_model", "load_proxy", "write_proxy_dir"]

PROXY_FILE = "proxy.json"
ADAPTER_DIR = "adapter"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class TrainedProxy:
    """A loaded proxy: the LLM (base + adapter), the prompt it was trained with, its
    manifest (``proxy.json``)."""

    llm: Any
    config: PromptConfig
    manifest: dict[str, Any]
    unit_max_chars: int | None
    #: how it saw its candidates: "chronological" (the paper) or "score" (best first)
    order: str = "chronological"


def load_base_model(spec: str) -> tuple[Any, Any]:
    """(model, tokenizer) of a base spec, fp32 on CPU, in eval mode."""
    torch = require("torch", "train", "a trained sifter proxy")
    from memkit.llm.local_lm import load_causal_lm

    model, tok = load_causal_lm(spec, feature="a trained sifter proxy", dtype=torch.float32)
    model.eval()
    return model, tok


def write_proxy_dir(out_dir: str | Path, peft_model: Any, *, base: str, config: PromptConfig,
                    unit_max_chars: int | None = None, **meta: Any) -> Path:
    """Save ``peft_model``'s adapter and the manifest under ``out_dir`` (returned)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_peft():
        peft_model.save_pretrained(str(out / ADAPTER_DIR))
    manifest = {"base": base, "top_n": config.top_n, "system": config.system,
                "task": config.task, "unit_max_chars": unit_max_chars, **meta}
    tmp = out / (PROXY_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    tmp.replace(out / PROXY_FILE)
    return out


def _manifest(path: Path) -> dict[str, Any]:
    file = path / PROXY_FILE
    if not file.is_file():
        raise NotFound(f"{str(path)!r} is not a trained proxy directory (no {PROXY_FILE})")
    try:
        manifest = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("base"), str):
        raise InvalidInput(f"{file}: needs a 'base' model spec")
    if not (path / ADAPTER_DIR).is_dir():
        raise NotFound(f"{str(path)!r}: the adapter directory {ADAPTER_DIR}/ is missing")
    return manifest


def load_proxy(path: str | Path) -> TrainedProxy:
    """The proxy saved at ``path`` (memoised; see the module docstring)."""
    p = Path(path).expanduser().resolve()
    stamp = (p / PROXY_FILE).stat().st_mtime_ns if (p / PROXY_FILE).exists() else 0
    with _LOCK:
        return _load(str(p), stamp)


@functools.lru_cache(maxsize=4)
def _load(path: str, stamp: int) -> TrainedProxy:
    del stamp  # part of the cache key only
    p = Path(path)
    manifest = _manifest(p)
    peft = require("peft", "train", "a trained sifter proxy")
    from memkit.llm.transformers_llm import TransformersLLM

    model, tok = load_base_model(manifest["base"])
    with quiet_peft():
        model = peft.PeftModel.from_pretrained(model, str(p / ADAPTER_DIR), is_trainable=False)
    model.eval()
    llm = TransformersLLM(model, tokenizer=tok, model_name=f"sifter-proxy:{p.name}")
    unit_max = manifest.get("unit_max_chars")
    config = PromptConfig(system=manifest.get("system", SYSTEM), task=manifest.get("task", TASK),
                          top_n=int(manifest.get("top_n", 10)), unit_max_chars=unit_max)
    order = str((manifest.get("snippets") or {}).get("order", "chronological"))
    if order not in ("chronological", "score"):
        raise InvalidInput(f"{p / PROXY_FILE}: snippets.order {order!r} is not "
                           "'chronological' or 'score'")
    return TrainedProxy(llm=llm, config=config, manifest=manifest, unit_max_chars=unit_max,
                        order=order)
