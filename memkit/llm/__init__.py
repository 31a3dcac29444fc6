"""The LLM boundary: one protocol, several backends, a call cache and JSON repair.

>>> from memkit.llm import ScriptedLLM, CachedLLM
>>> llm = CachedLLM(ScriptedLLM({"capital": '{"city": "Paris"}'}), ":memory:")
>>> import pydantic
>>> class City(pydantic.BaseModel):
...     city: str
>>> llm.complete_json("The capital of France?", City)
City(city='Paris')

Backends needing optional packages import them only when constructed, so this package
imports with the core dependencies alone.
"""

from __future__ import annotations

from typing import Any

from memkit.errors import ConfigError
from memkit.llm.base import (
    LLM,
    Completion,
    GenParams,
    Message,
    Prompt,
    Usage,
    estimate_tokens,
    render_plain,
)
from memkit.llm.cache import CachedLLM, cache_key
from memkit.llm.fake import ScriptedCall, ScriptedLLM
from memkit.llm.jsonrepair import parse_json_lenient
from memkit.llm.llamacpp import LlamaCppLLM, gemma3_270m_path
from memkit.llm.openai_compat import OpenAICompatible
from memkit.llm.transformers_llm import TransformersLLM
from memkit.llm.vllm_llm import VLLMLLM
from memkit.registry import registry as _registry

__all__ = [
    "LLM",
    "VLLMLLM",
    "CachedLLM",
    "Completion",
    "GenParams",
    "LlamaCppLLM",
    "Message",
    "OpenAICompatible",
    "Prompt",
    "LLM_KINDS",
    "SPEC_FORMS",
    "ScriptedCall",
    "ScriptedLLM",
    "TransformersLLM",
    "Usage",
    "cache_key",
    "estimate_tokens",
    "gemma3_270m_path",
    "load_llm",
    "parse_json_lenient",
    "render_plain",
]

SPEC_FORMS = (
    "openai:<base_url>@<model>   e.g. openai:http://127.0.0.1:8000/v1@qwen2.5-7b",
    "gguf:<path/to/model.gguf>   llama.cpp, extra [gguf]",
    "gemma3-270m                 the GGUF packaged on PyPI, extra [gguf]",
    "hf:<local/model/dir>        transformers, extra [llm]",
    "vllm:<model>                in-process vLLM, extra [vllm]",
)


def load_llm(spec: str, **kwargs: Any) -> LLM:
    """Build an LLM from a one-line spec; ``kwargs`` go to the backend's constructor.

    Accepted forms are listed in ``SPEC_FORMS``; anything else raises :class:`ConfigError`.
    A backend whose extra is missing raises :class:`~memkit.errors.MissingDependency`.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(_unknown(spec))
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    if sep and not rest:
        raise ConfigError(_unknown(spec))
    factory = LLM_KINDS.get(kind)
    if factory is None:
        raise ConfigError(_unknown(spec))
    return factory(rest, **kwargs)  # type: ignore[no-any-return]


def _gemma(rest: str, **kwargs: Any) -> LLM:
    if rest:
        raise ConfigError(f"gemma3-270m takes no argument, got {rest!r}")
    return LlamaCppLLM(gemma3_270m_path(), **kwargs)


def _openai(rest: str, **kwargs: Any) -> LLM:
    base_url, at, model = rest.rpartition("@")
    if not at or not base_url or not model:
        raise ConfigError(f"openai spec needs <base_url>@<model>, got {'openai:' + rest!r}")
    return OpenAICompatible(base_url, model, **kwargs)


def _needs_arg(cls: Any, kind: str) -> Any:
    def make(rest: str, **kwargs: Any) -> LLM:
        if not rest:
            raise ConfigError(_unknown(kind))
        return cls(rest, **kwargs)  # type: ignore[no-any-return]
    return make


#: LLM kinds by the part of the spec before ``:`` - memkit's own and plugins' (``memkit.llms``
#: entry points); a factory is called with the rest of the spec and the keyword arguments
LLM_KINDS = _registry("llms", {
    "openai": "memkit.llm:_openai",
    "gguf": "memkit.llm:_gguf",
    "hf": "memkit.llm:_hf",
    "vllm": "memkit.llm:_vllm",
    "gemma3-270m": "memkit.llm:_gemma",
})
_gguf = _needs_arg(LlamaCppLLM, "gguf")
_hf = _needs_arg(TransformersLLM, "hf")
_vllm = _needs_arg(VLLMLLM, "vllm")


def _unknown(spec: object) -> str:
    forms = "\n  ".join(SPEC_FORMS)
    return f"unknown LLM spec {spec!r}; accepted forms:\n  {forms}"
