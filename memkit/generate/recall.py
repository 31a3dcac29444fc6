"""RecaLLM constrained verbatim recall: the framework-free core (ALGORITHMS.md §4).

Inside a recall span whose generated prefix is ``p`` (length ``n``) the allowed next tokens are
``{ctx[j + n] : ctx[j:j + n] == p} ∪ closers``; with an empty prefix, any context token; after
``max_span_tokens`` span tokens, only the closers. The context is every token of the sequence
before the span (prompt + tokens generated earlier, earlier spans included).

The state is a :class:`ContextIndex` (token → positions, grown incrementally) and, inside a span,
the array of *alive* match ends: positions ``j + n`` such that ``ctx[j:j + n] == p``. A step keeps
the alive ends whose next context token is the chosen token and advances them by one, so a step
costs O(alive), never a rescan of the context.

>>> cfg = RecallConfig(start_id=100, end_id=101)
>>> st = RecallState(cfg, vocab_size=128)
>>> st.observe([5, 6, 7, 5, 6, 8, 100])       # prompt ends by opening a span
>>> st.in_span, np.flatnonzero(st.allowed().mask).tolist()   # any context token, or end
(True, [5, 6, 7, 8, 101])
>>> st.observe([5]); sorted(st.allowed().ids.tolist())
[6, 101]
>>> st.observe([6]); sorted(st.allowed().ids.tolist())
[7, 8, 101]
>>> st.observe([8, 101]); st.spans[0].token_ids, st.spans[0].context_starts
([5, 6, 8], [3])

Adapters for transformers, llama-cpp-python and vLLM wrap one :class:`RecallState` per sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memkit.errors import InvalidInput

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_MAX_SPAN_TOKENS = 128

#: Why a span ended (``RecalledSpan.closed_by``).
CLOSED_BY = (
    "end_token",  # the model emitted the end-of-recall token
    "delimiter",  # application mode: a delimiter / eos token closed the span
    "no_continuation",  # application mode: no context match can be continued
    "length_cap",  # max_span_tokens reached (application mode closes; trained mode forces end)
    "unfinished",  # generation stopped (max_new_tokens, eos outside our control) inside the span
    "violation",  # a token outside the allowed set was appended (another processor forced it)
)


@dataclass(frozen=True)
class RecallConfig:
    """What the constraint needs to know about the tokens.

    ``start_id`` / ``end_id``: the recall tokens (``None`` for a model without them: the
    application then opens the span itself, :meth:`RecallState.open_span`). ``closer_ids``:
    extra tokens that close a span when chosen (application mode: delimiters, eos); they are
    allowed once the prefix is non-empty and never become part of a span. ``excluded_ids``:
    tokens never indexed as context and never allowed inside a span (pad, bos, the recall tokens
    are always excluded). ``stop_after_span``: the adapters end generation when a span closes.
    """

    start_id: int | None = None
    end_id: int | None = None
    closer_ids: frozenset[int] = frozenset()
    excluded_ids: frozenset[int] = frozenset()
    max_span_tokens: int = DEFAULT_MAX_SPAN_TOKENS
    stop_after_span: bool = False

    def __post_init__(self) -> None:
        if self.max_span_tokens < 1:
            raise InvalidInput(f"max_span_tokens must be >= 1, got {self.max_span_tokens}")
        if self.end_id is None and not self.closer_ids:
            raise InvalidInput(
                "a recall span needs a way to close: give end_id (trained model) or closer_ids "
                "(application mode: delimiter / eos token ids)"
            )

    @property
    def close_ids(self) -> frozenset[int]:
        """Every token that closes a span: the end token and the closers."""
        ids = set(self.closer_ids)
        if self.end_id is not None:
            ids.add(self.end_id)
        return frozenset(ids)

    @property
    def never_context(self) -> frozenset[int]:
        """Token ids that are never copyable context."""
        ids = set(self.excluded_ids) | set(self.closer_ids)
        ids.update(i for i in (self.start_id, self.end_id) if i is not None)
        return frozenset(ids)


@dataclass
class RecalledSpan:
    """One recall span: its tokens and where it was copied from.

    ``context_starts`` are the token positions ``j`` in the sequence where ``ctx[j:j+n]`` equals
    the span (every match, ascending; a span is verbatim iff this is non-empty or the span is
    empty). ``sequence_start`` is the position of the span's first token in the sequence.
    """

    token_ids: list[int]
    context_starts: list[int]
    sequence_start: int
    closed_by: str

    @property
    def source_start(self) -> int | None:
        """The leftmost context position the span was copied from (``None`` if empty/none)."""
        return self.context_starts[0] if self.context_starts else None


@dataclass(frozen=True)
class Allowed:
    """The allowed next tokens: ``None`` (no constraint), an id array, or a vocab mask.

    With a mask, ``penalty`` is the same mask as an additive float32 array (0 / -inf).
    """

    ids: IntArray | None = None
    mask: BoolArray | None = None
    penalty: npt.NDArray[np.float32] | None = None

    @property
    def unconstrained(self) -> bool:
        return self.ids is None and self.mask is None


UNCONSTRAINED = Allowed()


class ContextIndex:
    """An append-only token sequence with token → positions and a vocab presence mask.

    Built in O(L) with numpy (a stable argsort); appends cost O(1). Excluded tokens keep their
    position (offsets stay sequence offsets) but are never indexed nor marked present.
    """

    def __init__(
        self, vocab_size: int, excluded: Iterable[int] = (), always: Iterable[int] = ()
    ) -> None:
        if vocab_size < 1:
            raise InvalidInput(f"vocab_size must be >= 1, got {vocab_size}")
        self.vocab_size = vocab_size
        self._excluded = np.zeros(vocab_size, dtype=bool)
        for t in excluded:
            if 0 <= t < vocab_size:
                self._excluded[t] = True
        self._buf: IntArray = np.empty(1024, dtype=np.int64)
        self._len = 0
        # bulk-indexed segments (sorted tokens, their positions) searched with searchsorted:
        # building one is an argsort, with no Python loop over distinct tokens
        self._segments: list[tuple[IntArray, IntArray]] = []
        self._extra: dict[int, list[int]] = {}
        # the empty-prefix mask: copyable tokens plus ``always`` (the end token), kept current
        # by every append so a span-opening step never rebuilds it
        self.present = np.zeros(vocab_size, dtype=bool)
        for t in always:
            if 0 <= t < vocab_size:
                self.present[t] = True
        # the same mask as an additive float32 penalty (0 allowed, -inf blocked): adding it is
        # one vectorised pass, several times faster than a boolean masked fill
        self.penalty = np.where(self.present, 0.0, -np.inf).astype(np.float32)
        self.n_copyable = 0  # distinct copyable tokens seen

    def __len__(self) -> int:
        return self._len

    @property
    def tokens(self) -> IntArray:
        """A read-only view of the sequence."""
        view = self._buf[: self._len]
        view.flags.writeable = False
        return view

    def is_excluded(self, token: int) -> bool:
        return not (0 <= token < self.vocab_size) or bool(self._excluded[token])

    def extend(self, tokens: Sequence[int] | IntArray) -> None:
        """Append tokens; a bulk append of many tokens uses the numpy build path."""
        arr = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if arr.size == 0:
            return
        self._reserve(arr.size)
        start = self._len
        self._buf[start : start + arr.size] = arr
        self._len += arr.size
        if arr.size > 32:
            self._index_bulk(arr, start)
        else:
            for k, t in enumerate(arr.tolist()):
                if not self.is_excluded(t):
                    self._extra.setdefault(t, []).append(start + k)
                    if not self.present[t]:
                        self.n_copyable += 1
                        self.present[t] = True
                        self.penalty[t] = 0.0

    def positions(self, token: int) -> IntArray:
        """Every position of ``token`` in the sequence, ascending."""
        parts = []
        for toks, pos in self._segments:
            lo, hi = np.searchsorted(toks, [token, token + 1])
            if hi > lo:
                parts.append(pos[lo:hi])
        extra = self._extra.get(token)
        if extra is not None:
            parts.append(np.asarray(extra, dtype=np.int64))
        if not parts:
            return np.empty(0, dtype=np.int64)
        if len(parts) == 1:
            return parts[0]
        return np.sort(np.concatenate(parts))

    def _reserve(self, n: int) -> None:
        need = self._len + n
        if need > self._buf.size:
            new = np.empty(max(need, 2 * self._buf.size), dtype=np.int64)
            new[: self._len] = self._buf[: self._len]
            self._buf = new

    def _index_bulk(self, arr: IntArray, start: int) -> None:
        valid = (arr >= 0) & (arr < self.vocab_size)
        valid[valid] = ~self._excluded[arr[valid]]
        pos = np.nonzero(valid)[0]
        toks = arr[pos]
        order = np.argsort(toks, kind="stable")
        toks, pos = toks[order], pos[order] + start
        uniq = toks[np.r_[True, toks[1:] != toks[:-1]]] if toks.size else toks  # sorted already
        self.n_copyable += int((~self.present[uniq]).sum())
        self.present[uniq] = True
        self.penalty[uniq] = 0.0
        self._segments.append((toks, pos))


class RecallState:
    """The recall state machine of one sequence.

    Feed it every token of the sequence in order with :meth:`observe` (the prompt first, then
    each generated token); ask :meth:`allowed` for the next step's constraint. It never raises
    during generation: a token outside the allowed set closes the span as ``"violation"``.
    """

    def __init__(self, config: RecallConfig, vocab_size: int) -> None:
        self.config = config
        always = [config.end_id] if config.end_id is not None else []
        self.ctx = ContextIndex(vocab_size, config.never_context, always)
        self._close = np.array(sorted(t for t in config.close_ids if 0 <= t < vocab_size))
        self._close_set = config.close_ids
        self.spans: list[RecalledSpan] = []
        self.in_span = False
        self.finished = False  # stop_after_span and a span has closed
        self._span: list[int] = []
        self._span_start = 0
        self._alive: IntArray = np.empty(0, dtype=np.int64)
        self._broken = False  # an unconstrained span (append_free) stopped being a copy

    # -- feeding ---------------------------------------------------------------------------
    def __len__(self) -> int:
        """Tokens observed so far (context + the open span)."""
        return len(self.ctx) + len(self._span)

    def observe(self, tokens: Sequence[int] | IntArray) -> None:
        """Advance over the next tokens of the sequence (prompt or generated)."""
        toks = np.asarray(tokens, dtype=np.int64).reshape(-1)
        i = 0
        while i < toks.size:
            if not self.in_span:
                # bulk-append everything up to (and including) the next start token
                j = i
                if self.config.start_id is not None:
                    hits = np.nonzero(toks[i:] == self.config.start_id)[0]
                    j = i + int(hits[0]) if hits.size else toks.size - 1
                else:
                    j = toks.size - 1
                self._append_context(toks[i : j + 1])
                if self.config.start_id is not None and int(toks[j]) == self.config.start_id:
                    self.open_span()
                i = j + 1
            else:
                self._step(int(toks[i]))
                i += 1

    def open_span(self) -> None:
        """Open a span at the current position (application mode: at an answer slot)."""
        if self.in_span:
            return
        self.in_span = True
        self._span = []
        self._span_start = len(self.ctx)
        self._alive = np.empty(0, dtype=np.int64)
        self._broken = False

    def finish(self) -> None:
        """Generation has ended: record an open span as ``"unfinished"``."""
        if self.in_span:
            self._close_span("unfinished")

    # -- the constraint --------------------------------------------------------------------
    def allowed(self) -> Allowed:
        """The allowed next tokens (see :class:`Allowed`)."""
        if not self.in_span:
            return UNCONSTRAINED
        n = len(self._span)
        if n == 0:
            return Allowed(mask=self.ctx.present, penalty=self.ctx.penalty)
        if n >= self.config.max_span_tokens:
            return Allowed(ids=self._close)
        cont = self._continuations()
        if cont.size == 0:
            return Allowed(ids=self._close)
        return Allowed(ids=np.union1d(cont, self._close))

    def _continuations(self) -> IntArray:
        ctx = self.ctx.tokens
        ends = self._alive[self._alive < ctx.size]
        nxt = ctx[ends]
        if nxt.size:
            keep = (nxt >= 0) & (nxt < self.ctx.vocab_size)
            nxt = nxt[keep]
            nxt = nxt[~self.ctx._excluded[nxt]]
        return np.unique(nxt)

    # -- transitions -----------------------------------------------------------------------
    def _append_context(self, toks: IntArray) -> None:
        self.ctx.extend(toks)

    def _step(self, token: int) -> None:
        n = len(self._span)
        if token in self._close_set:
            if n == 0 and token != self.config.end_id:
                self._close_span("violation", closer=token)
            else:
                self._close_span(
                    "end_token" if token == self.config.end_id else "delimiter", closer=token
                )
            return
        if n >= self.config.max_span_tokens:
            self._span.append(token)
            self._close_span("violation")
            return
        if n == 0:
            alive = self.ctx.positions(token) if not self.ctx.is_excluded(token) else None
        else:
            ctx = self.ctx.tokens
            ends = self._alive[self._alive < ctx.size]
            alive = ends[ctx[ends] == token] if not self.ctx.is_excluded(token) else None
        self._span.append(token)
        if alive is None or alive.size == 0:
            self._close_span("violation")
            return
        self._alive = alive + 1

    def append_free(self, token: int) -> None:
        """Add ``token`` to the open span without the constraint (for an unconstrained
        baseline): the span keeps its match positions while it is still a copy, and ends up
        with none (not verbatim) once it is not."""
        if not self.in_span:
            self.observe([token])
            return
        n = len(self._span)
        if not self._broken and not self.ctx.is_excluded(token):
            if n == 0:
                alive = self.ctx.positions(token)
            else:
                ends = self._alive[self._alive < len(self.ctx)]
                alive = ends[self.ctx.tokens[ends] == token]
            self._alive = alive + 1
            self._broken = alive.size == 0
        else:
            self._broken = True
        self._span.append(token)

    def _close_span(self, why: str, closer: int | None = None) -> None:
        n = len(self._span)
        ok = n and why != "violation" and not self._broken
        starts = (self._alive - n).tolist() if ok else []
        self.spans.append(RecalledSpan(list(self._span), starts, self._span_start, why))
        self.in_span = False
        # the span (and its closer) become context for later spans
        tail = list(self._span) + ([closer] if closer is not None else [])
        self._append_context(np.asarray(tail, dtype=np.int64))
        self._span = []
        self._alive = np.empty(0, dtype=np.int64)
        self._broken = False
        if self.config.stop_after_span:
            self.finished = True

    def auto_close_if_stuck(self) -> bool:
        """Application mode: close a span that no context match can continue.

        Returns True when it closed one. Called by the adapters before :meth:`allowed` when the
        config has no end token, so the span ends at the first token that cannot continue a
        match (``"no_continuation"``) or at the length cap (``"length_cap"``).
        """
        if not self.in_span or self.config.end_id is not None:
            return False
        if not self._span:
            if self.ctx.n_copyable == 0:  # nothing to copy: an empty span
                self._close_span("no_continuation")
                return True
            return False
        if len(self._span) >= self.config.max_span_tokens:
            self._close_span("length_cap")
            return True
        if self._continuations().size == 0:
            self._close_span("no_continuation")
            return True
        return False

    @property
    def open_span_tokens(self) -> list[int]:
        """The tokens of the span being generated (empty outside a span)."""
        return list(self._span)


def is_subsequence_at(context: Sequence[int], span: Sequence[int], start: int) -> bool:
    """True when ``context[start:start + len(span)] == span`` (a reference check for tests)."""
    return list(context[start : start + len(span)]) == list(span)


def find_all(context: Sequence[int], span: Sequence[int]) -> list[int]:
    """Every start position of ``span`` in ``context`` by brute force (reference for tests)."""
    n = len(span)
    return [j for j in range(len(context) - n + 1) if list(context[j : j + n]) == list(span)]


@dataclass
class BatchRecallState:
    """One :class:`RecallState` per sequence of a batch, created lazily from the first call."""

    config: RecallConfig
    vocab_size: int
    states: list[RecallState] = field(default_factory=list)

    def sync(self, rows: Sequence[Sequence[int]] | npt.NDArray[np.int64]) -> None:
        """Feed each row's not-yet-seen tokens (the whole prompt on the first call)."""
        if not self.states:
            self.states = [RecallState(self.config, self.vocab_size) for _ in range(len(rows))]
        if len(rows) != len(self.states):
            raise InvalidInput(
                f"batch size changed from {len(self.states)} to {len(rows)}; use a fresh "
                "processor per generate() call"
            )
        for st, row in zip(self.states, rows, strict=True):
            if len(row) > len(st):
                st.observe(row[len(st) :])


Tokens = Sequence[int] | npt.NDArray[np.integer]


class SequenceRecall:
    """One sequence's constraint, fed only the tokens it has not seen: the shared front of the
    per-sequence adapters (llama.cpp, vLLM). Use one instance per generation."""

    def __init__(
        self,
        config: RecallConfig,
        vocab_size: int,
        *,
        open_span_at_prompt_end: bool = False,
        eos_token_id: int | None = None,
    ) -> None:
        self.config = config
        self.vocab_size = vocab_size
        self.open_span_at_prompt_end = open_span_at_prompt_end
        self.eos_token_id = eos_token_id
        self.state: RecallState | None = None
        self.prompt_len = 0

    def _sync_parts(self, prompt: Tokens, output: Tokens) -> RecallState:
        """Observe ``prompt`` on the first call (opening a span after it if asked), then
        whatever part of ``output`` is new."""
        if self.state is None:
            self.state = RecallState(self.config, self.vocab_size)
            self.state.observe(np.asarray(prompt, dtype=np.int64))
            self.prompt_len = len(prompt)
            if self.open_span_at_prompt_end:
                self.state.open_span()
        seen = len(self.state) - self.prompt_len
        if len(output) > seen:
            self.state.observe(np.asarray(output[seen:], dtype=np.int64))
        return self.state

    def _advance(self, prompt: Tokens, output: Tokens) -> RecallState:
        """Sync, then close a span that cannot continue when the model has no end token."""
        st = self._sync_parts(prompt, output)
        if self.config.end_id is None:
            st.auto_close_if_stuck()
        return st


def mask_scores(scores: npt.NDArray[np.floating], allowed: Allowed) -> npt.NDArray[np.floating]:
    """Return ``scores`` (1-D, one row) with every disallowed entry set to ``-inf`` (in place).

    >>> mask_scores(np.zeros(4, dtype=np.float32), Allowed(ids=np.array([1, 3]))).tolist()
    [-inf, 0.0, -inf, 0.0]
    """
    if allowed.unconstrained:
        return scores
    if allowed.penalty is not None and allowed.penalty.size == scores.size:
        scores += allowed.penalty
        return scores
    if allowed.mask is not None:
        m = allowed.mask
        v = min(m.size, scores.size)
        scores[:v][~m[:v]] = -np.inf
        scores[v:] = -np.inf
        return scores
    assert allowed.ids is not None
    ids = allowed.ids[allowed.ids < scores.size]
    kept = scores[ids].copy()
    scores.fill(-np.inf)
    scores[ids] = kept
    return scores
