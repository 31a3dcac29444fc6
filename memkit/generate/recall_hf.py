"""RecaLLM for transformers: a batched ``LogitsProcessor`` and ``generate_with_recall``.

The reference implementation of ALGORITHMS.md §4. Each row of the batch has its own
:class:`~memkit.generate.recall.RecallState`; a step feeds each row its new token (O(1)),
advances the alive matches (O(alive)) and masks the row's scores (O(vocab)).

Trained model (has ``<|start_recall|>`` / ``<|end_recall|>``)::

    res = generate_with_recall(model, tokenizer, prompt)
    res.spans[0].text, res.spans[0].char_start     # the quote and where it is in the prompt

Untrained model: open a span at the answer slot (the end of the prompt); it closes at a
delimiter, when no context match can be continued, or at the length cap::

    res = generate_with_recall(model, tokenizer, "...The code is:", open_span=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memkit._deps import require
from memkit.errors import InvalidInput
from memkit.generate.recall import DEFAULT_MAX_SPAN_TOKENS, BatchRecallState, RecallConfig
from memkit.generate.recall_result import (
    RecallInterrupted,
    RecallResult,
    build_result,
    check_prompt,
    check_window,
    make_config,
)
from memkit.generate.recall_tokens import has_recall_tokens, recall_token_ids

torch: Any = require("torch", "llm", "recall (transformers)")
transformers: Any = require("transformers", "llm", "recall (transformers)")

__all__ = [
    "RecallLogitsProcessor",
    "RecallStoppingCriteria",
    "generate_with_recall",
    "hf_delimiter_ids",
]


def hf_delimiter_ids(tokenizer: Any, delimiters: Sequence[str]) -> set[int]:
    """Token ids whose text contains a delimiter: one batched decode of the vocabulary.

    ``generate_with_recall(open_span=True)`` does this on every call unless given
    ``closer_ids``; compute it once with this helper when generating many answers.
    """
    if not delimiters:
        return set()
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return {i for i, p in enumerate(pieces) if any(d in p for d in delimiters)}


class RecallLogitsProcessor(transformers.LogitsProcessor):  # type: ignore[misc]
    """Mask each row's scores to the recall constraint; stateful, one state per row.

    Use one instance per ``generate()`` call, with greedy decoding or sampling: beam search
    reorders rows between steps, which a per-row state cannot follow (not supported).
    ``open_span_at_prompt_end``: every row opens a
    span right after its prompt (application mode). ``eos_token_id``: forced once a row's span
    has closed when ``config.stop_after_span``.
    """

    def __init__(
        self,
        config: RecallConfig,
        *,
        open_span_at_prompt_end: bool = False,
        eos_token_id: int | None = None,
    ) -> None:
        self.config = config
        self.open_span_at_prompt_end = open_span_at_prompt_end
        self.eos_token_id = eos_token_id
        self.batch: BatchRecallState | None = None
        self._ninf = float("-inf")

    @property
    def states(self) -> list[Any]:
        return self.batch.states if self.batch is not None else []

    def sync(self, input_ids: Any, vocab_size: int | None = None) -> None:
        """Feed every row the tokens it has not seen (the whole prompt on the first call)."""
        if self.batch is None:
            if vocab_size is None:
                raise InvalidInput("the first sync needs the vocabulary size (scores width)")
            self.batch = BatchRecallState(self.config, vocab_size)
            self.batch.sync(input_ids.tolist())
            if self.open_span_at_prompt_end:
                for st in self.batch.states:
                    st.open_span()
            return
        width = input_ids.shape[1]
        for b, st in enumerate(self.batch.states):
            if width > len(st):
                st.observe(input_ids[b, len(st) :].tolist())

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.sync(input_ids, scores.shape[-1])
        assert self.batch is not None
        for b, st in enumerate(self.batch.states):
            if self.config.end_id is None:
                st.auto_close_if_stuck()
            row = scores[b]
            if st.finished:
                if self.eos_token_id is not None:
                    keep = row[self.eos_token_id].item()
                    row.fill_(self._ninf)
                    row[self.eos_token_id] = keep
                continue
            allowed = st.allowed()
            if allowed.mask is not None:  # empty prefix: the per-context mask, kept current
                pen = torch.from_numpy(st.ctx.penalty)  # zero-copy view, 0 / -inf
                on_cpu32 = row.device.type == "cpu" and row.dtype == torch.float32
                row.add_(pen if on_cpu32 else pen.to(row.device, row.dtype))
            elif allowed.ids is not None:
                idx = torch.from_numpy(allowed.ids).to(row.device)
                kept = row.index_select(0, idx)
                row.fill_(self._ninf)
                row.index_copy_(0, idx, kept)
        return scores


class RecallStoppingCriteria(transformers.StoppingCriteria):  # type: ignore[misc]
    """Stop a row once its span has closed (``config.stop_after_span``)."""

    def __init__(self, processor: RecallLogitsProcessor) -> None:
        self.processor = processor

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        done = [False] * input_ids.shape[0]
        if self.processor.batch is not None:
            self.processor.sync(input_ids)
            done = [st.finished for st in self.processor.states]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _model_window(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        val = getattr(cfg, name, None)
        if isinstance(val, int) and val > 0:
            return val
    return None


def generate_with_recall(
    model: Any,
    tokenizer: Any,
    prompt: str,
    *,
    open_span: bool = False,
    max_new_tokens: int = 128,
    max_span_tokens: int = DEFAULT_MAX_SPAN_TOKENS,
    delimiters: Sequence[str] = ("\n",),
    closer_ids: Sequence[int] | None = None,
    stop_after_span: bool | None = None,
    logits_processor: Sequence[Any] = (),
    **generate_kwargs: Any,
) -> RecallResult:
    """Generate from ``prompt`` with every recall span constrained to a verbatim copy.

    ``open_span=False`` needs a tokenizer with the recall tokens (else :class:`InvalidInput`);
    spans are whatever the model puts between them. ``open_span=True`` opens one span at the
    end of the prompt; it closes on a token of ``closer_ids`` (default: tokens containing one
    of ``delimiters``, and eos), when nothing continues a match, or after ``max_span_tokens``;
    generation then stops unless ``stop_after_span=False``. Greedy unless ``generate_kwargs``
    say otherwise. A prompt longer than the model's window raises :class:`InvalidInput`;
    ``max_new_tokens`` is lowered to what the window leaves. A failure inside ``generate``
    raises :class:`RecallInterrupted` carrying the partial result. ``logits_processor``:
    your own processors; they run first and the recall mask last, so it always holds.
    """
    check_prompt(prompt)
    recall_ids = recall_token_ids(tokenizer) if has_recall_tokens(tokenizer) else None
    eos = tokenizer.eos_token_id
    vocab = int(model.get_output_embeddings().weight.shape[0])
    closers: set[int] = set()
    if open_span:
        if closer_ids is not None:
            closers = set(closer_ids)
        else:
            closers = hf_delimiter_ids(tokenizer, delimiters)
        closers |= {eos} if eos is not None else set()
    config = make_config(
        recall_ids=recall_ids,
        open_span=open_span,
        closer_ids=closers,
        excluded_ids={tokenizer.pad_token_id, tokenizer.bos_token_id, eos},
        max_span_tokens=max_span_tokens,
        stop_after_span=stop_after_span,
    )
    enc, offsets = _encode(tokenizer, prompt)
    n_prompt = int(enc.shape[1])
    max_new = check_window(n_prompt, max_new_tokens, _model_window(model))
    proc = RecallLogitsProcessor(config, open_span_at_prompt_end=open_span, eos_token_id=eos)
    kwargs = {"do_sample": False, "pad_token_id": tokenizer.pad_token_id or eos}
    kwargs.update(generate_kwargs)
    device = getattr(model, "device", "cpu")
    stop_reason = "stop"
    try:
        out = model.generate(
            enc.to(device),
            attention_mask=torch.ones_like(enc).to(device),
            max_new_tokens=max_new,
            logits_processor=transformers.LogitsProcessorList([*logits_processor, proc]),
            stopping_criteria=transformers.StoppingCriteriaList([RecallStoppingCriteria(proc)]),
            **kwargs,
        )
        seq = out[0].tolist()
    except Exception as exc:  # keep what was generated before the failure
        partial = _finish(proc, enc, vocab, n_prompt, None, prompt, tokenizer, offsets, "error")
        raise RecallInterrupted(f"generation failed: {exc}", partial) from exc
    if len(seq) - n_prompt >= max_new:
        stop_reason = "length"
    return _finish(proc, enc, vocab, n_prompt, seq, prompt, tokenizer, offsets, stop_reason)


def _encode(tokenizer: Any, prompt: str) -> tuple[Any, list[tuple[int, int]] | None]:
    try:
        enc = tokenizer(prompt, return_offsets_mapping=True, return_tensors="pt")
        offsets = [tuple(map(int, o)) for o in enc["offset_mapping"][0].tolist()]
    except (NotImplementedError, ValueError, TypeError, KeyError):
        enc = tokenizer(prompt, return_tensors="pt")
        offsets = None
    return enc["input_ids"], offsets  # type: ignore[return-value]


def _finish(
    proc: RecallLogitsProcessor,
    enc: Any,
    vocab: int,
    n_prompt: int,
    seq: list[int] | None,
    prompt: str,
    tokenizer: Any,
    offsets: list[tuple[int, int]] | None,
    stop_reason: str,
) -> RecallResult:
    if proc.batch is None:  # generation never reached the first step
        proc.sync(enc, vocab)
    st = proc.states[0]
    if seq is not None and len(seq) > len(st):
        st.observe(seq[len(st) :])
    st.finish()
    full = st.ctx.tokens.tolist()
    generated = (seq if seq is not None else full)[n_prompt:]
    return build_result(
        state=st,
        prompt=prompt,
        n_prompt=n_prompt,
        generated=generated,
        pad_offset=0,
        decode=lambda ids, skip: tokenizer.decode(list(ids), skip_special_tokens=skip),
        token_offsets=offsets,
        stop_reason=stop_reason,
    )
