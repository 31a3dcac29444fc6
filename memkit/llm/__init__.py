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
    if spec == "gemma3-270m":
        return LlamaCppLLM(gemma3_270m_path(), **kwargs)
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ConfigError(_unknown(spec))
    if kind == "openai":
        base_url, at, model = rest.rpartition("@")
        if not at or not base_url or not model:
            raise ConfigError(f"openai spec needs <base_url>@<model>, got {spec!r}")
        return OpenAICompatible(base_url, model, **kwargs)
    if kind == "gguf":
        return LlamaCppLLM(rest, **kwargs)
    if kind == "hf":
        return TransformersLLM(rest, **kwargs)
    if kind == "vllm":
        return VLLMLLM(rest, **kwargs)
    raise ConfigError(_unknown(spec))


def _unknown(spec: object) -> str:
    forms = "\n  ".join(SPEC_FORMS)
    return f"unknown LLM spec {spec!r}; accepted forms:\n  {forms}"
