"""What a recall generation returns, shared by the transformers and llama.cpp front ends."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from memkit.errors import InvalidInput, LLMError
from memkit.generate.recall import RecallConfig, RecalledSpan, RecallState


@dataclass(frozen=True)
class RecallSpanText:
    """One recalled span, decoded and located.

    ``source`` is ``"prompt"`` when the span was copied from the prompt (then ``char_start`` /
    ``char_end`` index the prompt string: ``prompt[char_start:char_end]`` is the quote, up to
    the tokenizer's whitespace rendering), ``"generated"`` when copied from earlier output, and
    ``None`` for an empty span or a ``"violation"``. ``token_start`` is the context token
    position, ``n_matches`` how many places in the context hold the same token sequence.
    """

    text: str
    token_ids: tuple[int, ...]
    closed_by: str
    source: str | None
    token_start: int | None
    char_start: int | None
    char_end: int | None
    n_matches: int

    @property
    def verbatim(self) -> bool:
        """True when the span is a contiguous token subsequence of its context."""
        return self.n_matches > 0


@dataclass(frozen=True)
class RecallResult:
    """The output of one recall generation.

    ``text`` is the generated text without special tokens, ``raw_text`` keeps the recall
    markers, ``token_ids`` the generated ids, ``spans`` the recalled spans in order.
    """

    text: str
    raw_text: str
    token_ids: tuple[int, ...]
    spans: tuple[RecallSpanText, ...] = field(default_factory=tuple)
    stop_reason: str = "stop"


class RecallInterrupted(LLMError):
    """Generation failed part-way; ``partial`` holds the result up to the failure."""

    def __init__(self, message: str, partial: RecallResult | None) -> None:
        self.partial = partial
        super().__init__(message)


def check_prompt(prompt: object) -> str:
    """Reject what cannot be a recall context."""
    if not isinstance(prompt, str):
        raise InvalidInput(f"prompt must be a str, got {type(prompt).__name__}")
    if not prompt.strip():
        raise InvalidInput("empty context: recall copies from the prompt, which is empty")
    return prompt


def check_window(n_prompt: int, max_new_tokens: int, window: int | None) -> int:
    """Fit ``max_new_tokens`` into the model's window; error if the prompt alone overflows.

    Documented behaviour: a prompt that fits leaves ``window - n_prompt`` tokens to generate
    (``max_new_tokens`` is lowered to that); a prompt of ``window`` tokens or more is refused,
    because truncating it would silently drop the text the model is asked to quote.
    """
    if max_new_tokens < 1:
        raise InvalidInput(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if window is None:
        return max_new_tokens
    if n_prompt >= window:
        raise InvalidInput(
            f"the prompt is {n_prompt} tokens, the model's context window is {window}: shorten "
            "the context (retrieve less) — recall cannot quote text the model cannot see"
        )
    return min(max_new_tokens, window - n_prompt)


def make_config(
    *,
    recall_ids: tuple[int, int] | None,
    open_span: bool,
    closer_ids: Iterable[int],
    excluded_ids: Iterable[int],
    max_span_tokens: int,
    stop_after_span: bool | None,
) -> RecallConfig:
    """The constraint config for the two modes (trained tokens / application-opened span)."""
    if not open_span and recall_ids is None:
        raise InvalidInput(
            "the tokenizer has no recall tokens: add them and fine-tune "
            "(memkit.generate.add_recall_tokens), or pass open_span=True to open a span at the "
            "end of the prompt for a model that was not trained with recall tokens"
        )
    start, end = recall_ids if recall_ids is not None else (None, None)
    return RecallConfig(
        start_id=start,
        end_id=end,
        closer_ids=frozenset(closer_ids) if open_span else frozenset(),
        excluded_ids=frozenset(i for i in excluded_ids if i is not None),
        max_span_tokens=max_span_tokens,
        stop_after_span=open_span if stop_after_span is None else stop_after_span,
    )


def delimiter_ids(
    decode_one: Callable[[int], str], vocab_size: int, delimiters: Sequence[str]
) -> set[int]:
    """Token ids whose text contains one of ``delimiters`` (a scan of the vocabulary)."""
    if not delimiters:
        return set()
    out = set()
    for i in range(vocab_size):
        try:
            piece = decode_one(i)
        except Exception:  # noqa: BLE001 - some ids (unused, control) do not decode
            continue
        if any(d in piece for d in delimiters):
            out.add(i)
    return out


def locate(
    prompt: str,
    approx_start: int,
    text: str,
) -> tuple[int, int] | None:
    """Char offsets of ``text`` in ``prompt`` nearest to ``approx_start`` (None if absent)."""
    probe = text.strip() or text
    if not probe:
        return None
    best: int | None = None
    j = prompt.find(probe)
    while j != -1:
        if best is None or abs(j - approx_start) < abs(best - approx_start):
            best = j
        j = prompt.find(probe, j + 1)
    return None if best is None else (best, best + len(probe))


def build_result(
    *,
    state: RecallState,
    prompt: str,
    n_prompt: int,
    generated: Sequence[int],
    pad_offset: int,
    decode: Callable[[Sequence[int], bool], str],
    token_offsets: Sequence[tuple[int, int]] | None,
    stop_reason: str,
) -> RecallResult:
    """Assemble a :class:`RecallResult` from a finished :class:`RecallState`.

    ``decode(ids, skip_special)`` decodes; ``token_offsets`` (char span per prompt token, from
    a fast tokenizer) give exact prompt offsets, else they are found by decoding the prefix.
    ``pad_offset`` is the number of left-pad tokens before the prompt in this row.
    """
    spans = tuple(
        _span_text(sp, state, prompt, n_prompt, pad_offset, decode, token_offsets)
        for sp in state.spans
    )
    gen = [int(t) for t in generated]
    return RecallResult(
        text=decode(gen, True),
        raw_text=decode(gen, False),
        token_ids=tuple(gen),
        spans=spans,
        stop_reason=stop_reason,
    )


def _span_text(
    sp: RecalledSpan,
    state: RecallState,
    prompt: str,
    n_prompt: int,
    pad_offset: int,
    decode: Callable[[Sequence[int], bool], str],
    token_offsets: Sequence[tuple[int, int]] | None,
) -> RecallSpanText:
    text = decode(sp.token_ids, False)
    n = len(sp.token_ids)
    j = sp.source_start
    source = char_start = char_end = None
    if j is not None and n:
        j -= pad_offset
        if j + n <= n_prompt:
            source = "prompt"
            if token_offsets is not None and len(token_offsets) >= j + n:
                char_start, char_end = token_offsets[j][0], token_offsets[j + n - 1][1]
            else:
                prefix = state.ctx.tokens[pad_offset : pad_offset + j].tolist()
                found = locate(prompt, len(decode(prefix, True)), text)
                if found is not None:
                    char_start, char_end = found
        else:
            source = "generated"
    return RecallSpanText(
        text=text,
        token_ids=tuple(sp.token_ids),
        closed_by=sp.closed_by,
        source=source,
        token_start=j,
        char_start=char_start,
        char_end=char_end,
        n_matches=len(sp.context_starts),
    )
