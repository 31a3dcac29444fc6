"""An in-process vLLM engine (extra ``[vllm]``; needs a GPU).

``complete_many`` hands the whole batch to ``vllm.LLM.chat`` at once (vLLM schedules it with
continuous batching). :meth:`complete_json` uses vLLM structured outputs with the pydantic
schema (``StructuredOutputsParams(json=...)`` on vLLM >= 0.10.2, ``GuidedDecodingParams``
before). Token counts are the engine's. For a vLLM *server*, use
:class:`~memkit.llm.openai_compat.OpenAICompatible` with ``response_format="json_schema"``.
"""

from __future__ import annotations

import threading
from typing import Any

import pydantic

from memkit._deps import require
from memkit.llm.base import BatchLLM, Completion, GenParams, Message, schema_json


class VLLMLLM(BatchLLM):
    """Generate with ``vllm.LLM(model, **engine_kwargs)`` (a local path or a cached model)."""

    def __init__(self, model: str, **engine_kwargs: Any) -> None:
        self._vllm = require("vllm", "vllm", "VLLMLLM")
        super().__init__(model)
        self.engine = self._vllm.LLM(model=model, **engine_kwargs)
        self._lock = threading.Lock()  # one generate call at a time on the engine

    def sampling_params(
        self, params: GenParams, schema: type[pydantic.BaseModel] | None = None
    ) -> Any:
        """The ``vllm.SamplingParams`` for ``params`` (and a JSON schema constraint)."""
        kwargs: dict[str, Any] = {
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "seed": params.seed,
        }
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if schema is not None:
            kwargs.update(self._structured(schema_json(schema)))
        return self._vllm.SamplingParams(**kwargs)

    @staticmethod
    def _structured(json_schema: dict[str, Any]) -> dict[str, Any]:
        sampling = require("vllm.sampling_params", "vllm", "VLLMLLM structured output")
        if hasattr(sampling, "StructuredOutputsParams"):  # vLLM >= 0.10.2
            return {"structured_outputs": sampling.StructuredOutputsParams(json=json_schema)}
        return {"guided_decoding": sampling.GuidedDecodingParams(json=json_schema)}

    def _complete_batch(
        self,
        batch: list[list[Message]],
        params: GenParams,
        schema: type[pydantic.BaseModel] | None,
    ) -> list[Completion]:
        sampling = self.sampling_params(params, schema)
        with self._lock:
            outputs = self.engine.chat(batch, sampling, use_tqdm=False)
        results = []
        for out in outputs:
            gen = out.outputs[0]
            results.append(
                Completion(
                    text=gen.text,
                    prompt_tokens=len(out.prompt_token_ids or []),
                    completion_tokens=len(gen.token_ids),
                    model=self.model,
                    finish_reason=gen.finish_reason,
                )
            )
        return results
