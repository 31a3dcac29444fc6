"""VLLMLLM plumbing against a stand-in ``vllm`` module (vLLM itself needs a GPU).

The stand-in records what VLLMLLM hands to the engine and answers like ``vllm.LLM.chat``
(a list of RequestOutput-shaped objects); this checks the mapping of parameters, batching and
token counts, not vLLM.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pydantic
import pytest

from memkit.llm import VLLMLLM, load_llm


@dataclass
class _Gen:
    text: str
    token_ids: list[int]
    finish_reason: str = "stop"


@dataclass
class _Out:
    prompt_token_ids: list[int]
    outputs: list[_Gen]


@dataclass
class _Sampling:
    kwargs: dict[str, Any]


@dataclass
class _Structured:
    json: Any


@dataclass
class _Engine:
    model: str
    engine_kwargs: dict[str, Any]
    chats: list[tuple[list[Any], _Sampling]] = field(default_factory=list)

    def chat(self, batch: list[Any], sampling: _Sampling, use_tqdm: bool = True) -> list[_Out]:
        self.chats.append((batch, sampling))
        outs = []
        for messages in batch:
            text = '{"city": "Paris"}' if "structured_outputs" in sampling.kwargs else "ok"
            text = f"{messages[-1]['content']}:{text}"
            outs.append(_Out([0] * 5, [_Gen(text, [1] * 3)]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = types.ModuleType("vllm")
    sampling = types.ModuleType("vllm.sampling_params")
    mod.LLM = lambda model, **kw: _Engine(model, kw)  # type: ignore[attr-defined]
    mod.SamplingParams = lambda **kw: _Sampling(kw)  # type: ignore[attr-defined]
    sampling.StructuredOutputsParams = _Structured  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    return mod


class City(pydantic.BaseModel):
    city: str


def test_batch_goes_to_the_engine_in_one_call(fake_vllm: types.ModuleType) -> None:
    llm = VLLMLLM("org/model", gpu_memory_utilization=0.5)
    assert llm.engine.engine_kwargs == {"gpu_memory_utilization": 0.5}
    out = llm.complete_many(["a", "b", "c"], max_tokens=7, stop=["\n"], temperature=0.3)
    assert [c.text for c in out] == ["a:ok", "b:ok", "c:ok"]
    assert len(llm.engine.chats) == 1
    batch, sampling = llm.engine.chats[0]
    assert batch[1] == [{"role": "user", "content": "b"}]
    assert sampling.kwargs == {"temperature": 0.3, "max_tokens": 7, "seed": 0, "stop": ["\n"]}
    assert (out[0].prompt_tokens, out[0].completion_tokens) == (5, 3)
    assert llm.usage.calls == 3 and llm.usage.completion_tokens == 9


def test_json_uses_structured_outputs(fake_vllm: types.ModuleType) -> None:
    llm = load_llm("vllm:org/model")
    assert isinstance(llm, VLLMLLM)
    out = llm.complete("x", json_schema=City)
    _, sampling = llm.engine.chats[0]
    assert sampling.kwargs["structured_outputs"].json == City.model_json_schema()
    assert out.text == 'x:{"city": "Paris"}'
    # the stand-in prefixes the prompt; complete_json recovers the object regardless
    assert llm.complete_json("q", City) == City(city="Paris")


def test_older_vllm_uses_guided_decoding(
    fake_vllm: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = types.ModuleType("vllm.sampling_params")
    old.GuidedDecodingParams = _Structured  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", old)
    llm = VLLMLLM("m")
    llm.complete("x", json_schema=City)
    _, sampling = llm.engine.chats[0]
    assert sampling.kwargs["guided_decoding"].json == City.model_json_schema()
