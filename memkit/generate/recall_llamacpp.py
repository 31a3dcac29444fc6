"""RecaLLM for llama-cpp-python: a logits processor and a generation helper for GGUF models.

Needs the ``[gguf]`` extra. The processor plugs into any llama-cpp-python sampling call::

    proc = LlamaCppRecallProcessor(config)
    llm.create_completion(prompt, logits_processor=LogitsProcessorList([proc]), temperature=0)

``generate_with_recall_llamacpp(llm, prompt, open_span=True)`` is the counterpart of
:func:`memkit.generate.recall_hf.generate_with_recall` (same modes, same :class:`RecallResult`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from memkit._deps import require
from memkit.generate.recall import (
    DEFAULT_MAX_SPAN_TOKENS,
    RecallState,
    SequenceRecall,
    Tokens,
    mask_scores,
)
from memkit.generate.recall_result import (
    RecallInterrupted,
    RecallResult,
    build_result,
    check_prompt,
    check_window,
    delimiter_ids,
    make_config,
)
from memkit.generate.recall_tokens import END_RECALL, START_RECALL

__all__ = [
    "LlamaCppRecallProcessor",
    "generate_with_recall_llamacpp",
    "llamacpp_delimiter_ids",
    "llamacpp_recall_token_ids",
]


class LlamaCppRecallProcessor(SequenceRecall):
    """A llama-cpp-python logits processor: ``(input_ids, scores) -> scores``.

    One sequence (llama.cpp decodes one at a time); use one instance per generation. It sees
    the whole sequence (prompt + generated) each step and feeds the new tokens to its
    :class:`~memkit.generate.recall.RecallState`.
    """

    def _split(self, input_ids: Tokens) -> tuple[Tokens, Tokens]:
        """(prompt, generated) of the whole sequence llama.cpp passes each step."""
        n0 = len(input_ids) if self.state is None else self.prompt_len
        return input_ids[:n0], input_ids[n0:]

    def sync(self, input_ids: Tokens) -> RecallState:
        """Feed the tokens not seen yet (the prompt on the first call)."""
        return self._sync_parts(*self._split(input_ids))

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        st = self._advance(*self._split(input_ids))
        if st.finished:
            if self.eos_token_id is not None:
                keep = scores[self.eos_token_id]
                scores[:] = -np.inf
                scores[self.eos_token_id] = keep
            return scores
        return mask_scores(scores, st.allowed())


def llamacpp_recall_token_ids(llm: Any) -> tuple[int, int] | None:
    """The recall token ids of a GGUF model's vocabulary, or ``None`` if it has none."""
    ids = []
    for tok in (START_RECALL, END_RECALL):
        got = llm.tokenize(tok.encode(), add_bos=False, special=True)
        if len(got) != 1:
            return None
        ids.append(int(got[0]))
    return ids[0], ids[1]


def llamacpp_delimiter_ids(llm: Any, delimiters: Sequence[str]) -> set[int]:
    """Token ids whose text contains a delimiter (scans the vocabulary; cache the result)."""
    return delimiter_ids(
        lambda i: llm.detokenize([i]).decode("utf-8", "ignore"), llm.n_vocab(), delimiters
    )


def generate_with_recall_llamacpp(
    llm: Any,
    prompt: str,
    *,
    open_span: bool = False,
    max_new_tokens: int = 128,
    max_span_tokens: int = DEFAULT_MAX_SPAN_TOKENS,
    delimiters: Sequence[str] = ("\n",),
    closer_ids: Sequence[int] | None = None,
    stop_after_span: bool | None = None,
    constrained: bool = True,
    logits_processor: Sequence[Any] = (),
    **generate_kwargs: Any,
) -> RecallResult:
    """Generate with ``llm`` (a ``llama_cpp.Llama``); spans are verbatim copies of the context.

    Same modes and errors as the transformers version. Greedy unless ``generate_kwargs`` set
    ``temp``. ``constrained=False`` runs the identical loop without the mask (a baseline: the
    span is then whatever the model wrote where the span would be, marked ``verbatim`` only if
    it happens to occur in the context).
    """
    llama_cpp = require("llama_cpp", "gguf", "recall (llama.cpp)")
    check_prompt(prompt)
    recall_ids = llamacpp_recall_token_ids(llm)
    eos, bos = int(llm.token_eos()), int(llm.token_bos())
    closers: set[int] = set()
    if open_span:
        closers = (
            set(closer_ids) if closer_ids is not None else llamacpp_delimiter_ids(llm, delimiters)
        )
        closers.add(eos)
    config = make_config(
        recall_ids=recall_ids,
        open_span=open_span,
        closer_ids=closers,
        excluded_ids={bos, eos},
        max_span_tokens=max_span_tokens,
        stop_after_span=stop_after_span,
    )
    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    n_prompt = len(tokens)
    max_new = check_window(n_prompt, max_new_tokens, int(llm.n_ctx()))
    proc = LlamaCppRecallProcessor(
        config, int(llm.n_vocab()), open_span_at_prompt_end=open_span, eos_token_id=eos
    )
    procs = [*logits_processor, proc] if constrained else list(logits_processor)
    kwargs: dict[str, Any] = {"temp": 0.0}
    kwargs.update(generate_kwargs)
    out: list[int] = []
    stop_reason = "length"
    state = proc.sync(tokens)

    def result(reason: str) -> RecallResult:
        state.finish()
        return build_result(
            state=state,
            prompt=prompt,
            n_prompt=n_prompt,
            generated=out,
            pad_offset=0,
            decode=lambda ids, skip: llm.detokenize(list(ids), special=not skip).decode(
                "utf-8", "replace"
            ),
            token_offsets=None,
            stop_reason=reason,
        )

    try:
        lp = llama_cpp.LogitsProcessorList(procs) if procs else None
        for tok in llm.generate(tokens, logits_processor=lp, **kwargs):
            tok = int(tok)
            if not constrained and state.in_span and config.end_id is None and tok in closers:
                state.observe([tok])  # baseline: a delimiter ends the free-text "span"
            elif not constrained and state.in_span:
                _observe_unconstrained(state, tok)
            else:
                state.observe([tok])
            out.append(tok)
            if tok == eos or state.finished:
                stop_reason = "stop"
                break
            if len(out) >= max_new:
                break
    except Exception as exc:  # keep what was generated before the failure
        raise RecallInterrupted(f"generation failed: {exc}", result("error")) from exc
    return result(stop_reason)


def _observe_unconstrained(state: RecallState, tok: int) -> None:
    """Baseline bookkeeping: record the token in the open span even if it is not a copy.

    The state would close the span as a ``"violation"`` at the first non-copy; for the
    unconstrained baseline we want the whole free-text answer as the span, so we append to the
    span directly and mark it non-verbatim (no match positions) once it stops being a copy.
    """
    if state.in_span and len(state.open_span_tokens) < state.config.max_span_tokens:
        state.append_free(tok)
    else:
        state.observe([tok])
