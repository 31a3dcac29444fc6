"""RecaLLM for vLLM (the fast path; needs the ``[vllm]`` extra and an accelerator).

Two layers:

* :class:`RecallRequestProcessor`: a per-request callable
  ``(prompt_token_ids, output_token_ids, logits_row) -> logits_row`` over a torch row. It is the
  shape vLLM's per-request logits processors take (``SamplingParams.logits_processors`` in the
  V0 engine; wrapped by ``AdapterLogitsProcessor`` in V1). It does not import vLLM.
* :func:`vllm_recall_logits_processor`: builds the V1 batch-level class (a subclass of
  ``vllm.v1.sample.logits_processor.AdapterLogitsProcessor``) that creates one
  :class:`RecallRequestProcessor` per request whose ``SamplingParams.extra_args`` carry a
  ``"recall"`` dict (``RecallConfig`` fields + ``open_span``); other requests are untouched::

      LLM(model, logits_processors=[vllm_recall_logits_processor()])
      SamplingParams(temperature=0, extra_args={"recall": recall_extra_args(start, end)})

The vLLM logits-processor API is still marked unstable upstream; this targets the V1
``AdapterLogitsProcessor`` interface (vLLM ≥ 0.10).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memkit._deps import require
from memkit.errors import InvalidInput
from memkit.generate.recall import (
    DEFAULT_MAX_SPAN_TOKENS,
    RecallConfig,
    SequenceRecall,
)

__all__ = ["RecallRequestProcessor", "recall_extra_args", "vllm_recall_logits_processor"]


class RecallRequestProcessor(SequenceRecall):
    """The recall constraint for one request, on a torch logits row (any device)."""

    def __init__(self, config: RecallConfig, vocab_size: int, **kwargs: Any) -> None:
        super().__init__(config, vocab_size, **kwargs)
        self._penalty: Any = None  # device copy of the empty-prefix penalty
        self._penalty_version = -1

    def __call__(self, prompt: Sequence[int], output: Sequence[int], logits: Any) -> Any:
        torch = require("torch", "vllm", "recall (vLLM)")
        st = self._advance(prompt, output)
        ninf = float("-inf")
        if st.finished:
            if self.eos_token_id is not None:
                keep = logits[self.eos_token_id].clone()
                logits.fill_(ninf)
                logits[self.eos_token_id] = keep
            return logits
        allowed = st.allowed()
        if allowed.penalty is not None:
            if self._penalty is None or self._penalty_version != st.ctx.n_copyable:
                # the mask only changes when a new distinct token enters the context
                pen = torch.from_numpy(st.ctx.penalty)
                self._penalty = pen.to(device=logits.device, dtype=logits.dtype)
                self._penalty_version = st.ctx.n_copyable
            return logits.add_(self._penalty[: logits.shape[-1]])
        if allowed.ids is not None:
            idx = torch.from_numpy(allowed.ids).to(logits.device)
            kept = logits.index_select(0, idx)
            logits.fill_(ninf)
            logits.index_copy_(0, idx, kept)
        return logits


def recall_extra_args(
    start_id: int | None = None,
    end_id: int | None = None,
    *,
    closer_ids: Sequence[int] = (),
    excluded_ids: Sequence[int] = (),
    max_span_tokens: int = DEFAULT_MAX_SPAN_TOKENS,
    open_span: bool = False,
    eos_token_id: int | None = None,
) -> dict[str, Any]:
    """The ``SamplingParams.extra_args["recall"]`` dict for one request (validated)."""
    cfg = RecallConfig(
        start_id=start_id,
        end_id=end_id,
        closer_ids=frozenset(closer_ids),
        excluded_ids=frozenset(excluded_ids),
        max_span_tokens=max_span_tokens,
        stop_after_span=open_span,
    )
    return {
        "start_id": cfg.start_id,
        "end_id": cfg.end_id,
        "closer_ids": sorted(cfg.closer_ids),
        "excluded_ids": sorted(cfg.excluded_ids),
        "max_span_tokens": cfg.max_span_tokens,
        "open_span": open_span,
        "eos_token_id": eos_token_id,
    }


def _request_from_args(args: dict[str, Any], vocab_size: int) -> RecallRequestProcessor:
    try:
        cfg = RecallConfig(
            start_id=args.get("start_id"),
            end_id=args.get("end_id"),
            closer_ids=frozenset(args.get("closer_ids", ())),
            excluded_ids=frozenset(args.get("excluded_ids", ())),
            max_span_tokens=int(args.get("max_span_tokens", DEFAULT_MAX_SPAN_TOKENS)),
            stop_after_span=bool(args.get("open_span", False)),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"bad extra_args['recall']: {exc}") from exc
    return RecallRequestProcessor(
        cfg,
        vocab_size,
        open_span_at_prompt_end=bool(args.get("open_span", False)),
        eos_token_id=args.get("eos_token_id"),
    )


def vllm_recall_logits_processor() -> type:
    """The vLLM V1 logits-processor class (imports vLLM; raises MissingDependency if absent)."""
    lp = require("vllm.v1.sample.logits_processor", "vllm", "recall (vLLM)")

    class RecallAdapterLogitsProcessor(lp.AdapterLogitsProcessor):  # type: ignore[misc,name-defined]
        """One :class:`RecallRequestProcessor` per request with ``extra_args["recall"]``."""

        def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool) -> None:
            super().__init__(vllm_config, device, is_pin_memory)
            self.vocab_size = int(vllm_config.model_config.get_vocab_size())

        @classmethod
        def validate_params(cls, params: Any) -> None:
            args = (getattr(params, "extra_args", None) or {}).get("recall")
            if args is not None:
                _request_from_args(args, 1)  # raises InvalidInput (a ValueError) if bad

        def is_argmax_invariant(self) -> bool:
            return False

        def new_req_logits_processor(self, params: Any) -> Any:
            args = (getattr(params, "extra_args", None) or {}).get("recall")
            if args is None:
                return None
            return _request_from_args(args, self.vocab_size)

    return RecallAdapterLogitsProcessor
