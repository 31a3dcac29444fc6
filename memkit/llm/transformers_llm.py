"""A local Hugging Face ``transformers`` causal LM (extra ``[llm]``).

Loads from a local directory only (``local_files_only=True``: nothing is downloaded), or takes
an already-built model and tokenizer. The prompt is the tokenizer's chat template when it has
one, else a plain rendering for base models (:func:`~memkit.llm.base.render_plain`, cut at
the next ``"\nuser:"`` / ``"\nsystem:"`` line). Greedy decoding at
``temperature == 0``; sampling otherwise, seeded inside ``torch.random.fork_rng`` so the
global RNG is left as it was. Token counts are exact (the tokenizer's).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from memkit._deps import require
from memkit.errors import NotFound
from memkit.llm.base import (
    LLM,
    PLAIN_STOPS,
    Completion,
    GenParams,
    Message,
    apply_stop,
    render_plain,
)

__all__ = ["TransformersLLM", "render_plain"]


class TransformersLLM(LLM):
    """Generate with a local ``AutoModelForCausalLM``.

    ``path_or_model`` is a local directory (``gguf_file`` names a GGUF file inside it, loaded
    through transformers' GGUF support, which needs the ``gguf`` package) or a model object,
    in which case ``tokenizer`` is required.
    """

    def __init__(
        self,
        path_or_model: str | Path | Any,
        tokenizer: Any = None,
        device: str = "cpu",
        gguf_file: str | None = None,
        *,
        model_name: str | None = None,
    ) -> None:
        transformers = require("transformers", "llm", "TransformersLLM")
        self._torch = require("torch", "llm", "TransformersLLM")
        if isinstance(path_or_model, (str, Path)):
            path = str(path_or_model)
            if not Path(path).exists():
                raise NotFound(f"local model directory not found: {path} (nothing is downloaded)")
            kwargs: dict[str, Any] = {"local_files_only": True}
            if gguf_file is not None:
                require("gguf", "llm", "TransformersLLM with a GGUF file")
                kwargs["gguf_file"] = gguf_file
            if tokenizer is None:
                tokenizer = transformers.AutoTokenizer.from_pretrained(path, **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs)
            name = model_name or (f"{path}/{gguf_file}" if gguf_file else path)
        else:
            if tokenizer is None:
                raise TypeError("TransformersLLM(model_object) needs tokenizer=")
            model = path_or_model
            name = model_name or str(getattr(model.config, "_name_or_path", "") or "transformers")
        super().__init__(name)
        self.tokenizer = tokenizer
        self.device = device
        self.hf_model = model.to(device)
        self.hf_model.eval()
        self._generation_config = transformers.GenerationConfig
        self._lock = threading.Lock()  # generate() is not safe to call concurrently

    def render(self, messages: list[Message]) -> str:
        """The exact prompt text fed to the model."""
        if getattr(self.tokenizer, "chat_template", None):
            return str(
                self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
            )
        return render_plain(messages)

    def _complete(self, messages: list[Message], params: GenParams) -> Completion:
        torch = self._torch
        prompt = self.render(messages)
        # chat templates already contain the BOS token; do not add special tokens twice
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=not has_template)
        input_ids = enc["input_ids"].to(self.device)
        attention = enc.get("attention_mask")
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        sample = params.temperature > 0
        config_kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "do_sample": sample,
            "pad_token_id": pad,
            "eos_token_id": eos,
        }
        if sample:
            config_kwargs["temperature"] = params.temperature
        config = self._generation_config(**config_kwargs)
        with self._lock, torch.inference_mode(), torch.random.fork_rng(devices=[]):
            if sample and params.seed is not None:
                torch.manual_seed(params.seed)
            out = self.hf_model.generate(
                input_ids=input_ids,
                attention_mask=None if attention is None else attention.to(self.device),
                generation_config=config,
            )
        new_ids = out[0, input_ids.shape[1] :]
        finish = "stop" if eos is not None and int(new_ids[-1]) == eos else "length"
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        stops = params.stop if has_template else (*params.stop, *PLAIN_STOPS)
        cut = apply_stop(text, stops)
        if cut != text:
            finish = "stop"
        return Completion(
            text=cut,
            prompt_tokens=int(input_ids.shape[1]),
            completion_tokens=int(new_ids.shape[0]),
            model=self.model,
            finish_reason=finish,
        )
