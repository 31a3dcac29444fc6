"""The framework-free recall state machine: known answers and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memkit.errors import InvalidInput
from memkit.generate.recall import (
    Allowed,
    ContextIndex,
    RecallConfig,
    RecallState,
    find_all,
    mask_scores,
)

START, END, V = 60, 61, 64


def allowed_set(state: RecallState) -> set[int] | None:
    a = state.allowed()
    if a.unconstrained:
        return None
    if a.mask is not None:
        return set(np.flatnonzero(a.mask).tolist())
    assert a.ids is not None
    return set(a.ids.tolist())


def test_context_index_positions_match_bruteforce_after_mixed_appends() -> None:
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 10, size=300)
    idx = ContextIndex(10, excluded=[3])
    idx.extend(seq[:100])  # bulk path
    for t in seq[100:150]:  # one by one
        idx.extend([int(t)])
    idx.extend(seq[150:])  # bulk again, after appends
    for t in range(10):
        want = [] if t == 3 else np.flatnonzero(seq == t).tolist()
        assert idx.positions(t).tolist() == want
    assert idx.present.tolist() == [t != 3 and bool((seq == t).any()) for t in range(10)]
    assert idx.n_copyable == 9
    assert (np.isneginf(idx.penalty) == ~idx.present).all()


def test_hand_worked_allowed_sets() -> None:
    st_ = RecallState(RecallConfig(start_id=START, end_id=END), V)
    st_.observe([1, 2, 3, 1, 2, 4, 1, 5])
    assert allowed_set(st_) is None  # outside a span: no constraint
    st_.observe([START])
    assert allowed_set(st_) == {1, 2, 3, 4, 5, END}  # empty prefix: any context token + end
    st_.observe([1])
    assert allowed_set(st_) == {2, 5, END}
    st_.observe([2])
    assert allowed_set(st_) == {3, 4, END}
    st_.observe([4])
    assert allowed_set(st_) == {1, END}
    st_.observe([END])
    span = st_.spans[0]
    assert (span.token_ids, span.context_starts, span.closed_by) == ([1, 2, 4], [3], "end_token")
    assert span.sequence_start == 9
    # the closed span is context for a later span: [1, 2, 4] now occurs twice
    st_.observe([7, START, 1, 2, 4, END])
    assert st_.spans[1].context_starts == [3, 9]
    assert len(st_) == 19


def test_span_at_end_of_context_only_allows_end() -> None:
    st_ = RecallState(RecallConfig(start_id=START, end_id=END), V)
    st_.observe([9, 8, START, 8])  # 8 is the last context token before the start token
    assert allowed_set(st_) == {END}  # only the start token (never copyable) follows it


def test_length_cap_forces_end() -> None:
    cfg = RecallConfig(start_id=START, end_id=END, max_span_tokens=3)
    st_ = RecallState(cfg, V)
    st_.observe(list(range(10)) + [START, 2, 3, 4])
    assert allowed_set(st_) == {END}


def test_application_mode_closes_on_delimiter_stuck_and_cap() -> None:
    nl = 50
    cfg = RecallConfig(closer_ids=frozenset({nl}), max_span_tokens=4, stop_after_span=True)
    st_ = RecallState(cfg, V)
    st_.observe([1, 2, 3, nl, 4, 5])
    st_.open_span()
    assert allowed_set(st_) == {1, 2, 3, 4, 5}  # the delimiter cannot open a span
    st_.observe([2])
    assert allowed_set(st_) == {3, nl}
    st_.observe([3, nl])
    assert st_.spans[-1].closed_by == "delimiter" and st_.finished
    # stuck: 5 is the last token, nothing continues it
    st2 = RecallState(cfg, V)
    st2.observe([1, 4, 5])
    st2.open_span()
    st2.observe([4, 5])
    assert st2.auto_close_if_stuck()
    assert (st2.spans[0].token_ids, st2.spans[0].closed_by) == ([4, 5], "no_continuation")
    # length cap
    st3 = RecallState(cfg, V)
    st3.observe(list(range(10)))
    st3.open_span()
    st3.observe([1, 2, 3, 4])
    assert st3.auto_close_if_stuck() and st3.spans[0].closed_by == "length_cap"
    # empty context: the opened span closes empty instead of masking every logit
    st4 = RecallState(cfg, V)
    st4.open_span()
    assert st4.auto_close_if_stuck() and st4.spans[0].token_ids == []


def test_forced_disallowed_token_is_recorded_not_raised() -> None:
    st_ = RecallState(RecallConfig(start_id=START, end_id=END), V)
    st_.observe([1, 2, 3, START, 1, 3])  # 3 does not follow 1 in the context
    span = st_.spans[0]
    assert (span.closed_by, span.token_ids, span.context_starts) == ("violation", [1, 3], [])
    assert not st_.in_span


def test_unfinished_span_is_kept() -> None:
    st_ = RecallState(RecallConfig(start_id=START, end_id=END), V)
    st_.observe([1, 2, 3, START, 1, 2])
    st_.finish()
    assert (st_.spans[0].token_ids, st_.spans[0].closed_by) == ([1, 2], "unfinished")
    assert st_.spans[0].context_starts == [0]


def test_config_needs_a_way_to_close() -> None:
    with pytest.raises(InvalidInput):
        RecallConfig()
    with pytest.raises(InvalidInput):
        RecallConfig(end_id=1, max_span_tokens=0)


def test_mask_scores_with_mask_and_ids() -> None:
    s = mask_scores(np.arange(5, dtype=np.float32), Allowed(mask=np.array([1, 0, 1, 0], bool)))
    assert s.tolist() == [0.0, -np.inf, 2.0, -np.inf, -np.inf]


def _drive(ctx: list[int], seed: int, steps: int, cap: int) -> RecallState:
    """Generate with adversarial random logits: a random token pushed far up every step."""
    rng = np.random.default_rng(seed)
    st_ = RecallState(RecallConfig(start_id=START, end_id=END, max_span_tokens=cap), V)
    st_.observe(ctx)
    for _ in range(steps):
        scores = rng.normal(size=V).astype(np.float32)
        scores[rng.integers(V)] += 1e6  # adversary: push a random token up
        if rng.random() < 0.15:
            scores[START] += 1e7  # and open spans often
        if st_.in_span:
            assert END in (allowed_set(st_) or set())  # the end token is always allowed
        tok = int(np.argmax(mask_scores(scores, st_.allowed())))
        st_.observe([tok])
    st_.finish()
    return st_


@settings(max_examples=60, deadline=None)
@given(
    ctx=st.lists(st.integers(0, 9), min_size=1, max_size=80),
    seed=st.integers(0, 2**31),
    cap=st.integers(1, 12),
)
def test_property_every_span_is_a_verbatim_context_subsequence(
    ctx: list[int], seed: int, cap: int
) -> None:
    st_ = _drive(ctx, seed, steps=120, cap=cap)
    seq = st_.ctx.tokens.tolist()
    for span in st_.spans:
        assert span.closed_by in ("end_token", "unfinished")
        assert len(span.token_ids) <= cap
        before = seq[: span.sequence_start]  # prompt + tokens generated before the span
        copyable = [t if t not in (START, END) else -1 for t in before]
        if span.token_ids:
            assert span.context_starts == find_all(copyable, span.token_ids)
            assert span.context_starts, "span must occur in the context"
        assert seq[span.sequence_start : span.sequence_start + len(span.token_ids)] == (
            span.token_ids
        )


def test_public_namespace_resolves() -> None:
    import memkit.generate as g

    for name in g.__all__:
        if name.endswith("llamacpp") or name.startswith("LlamaCpp"):
            continue  # needs the [gguf] extra; covered in test_recall_llamacpp
        assert getattr(g, name) is not None
