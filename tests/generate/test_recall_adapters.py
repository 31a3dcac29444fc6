"""The llama.cpp and vLLM adapters share the core; check both against the same known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memkit.generate.recall import RecallConfig, find_all
from memkit.generate.recall_llamacpp import LlamaCppRecallProcessor
from memkit.generate.recall_vllm import (
    RecallRequestProcessor,
    _request_from_args,
    recall_extra_args,
)

START, END, V = 60, 61, 64


def test_llamacpp_processor_masks_numpy_scores_in_place() -> None:
    proc = LlamaCppRecallProcessor(RecallConfig(start_id=START, end_id=END), V)
    ids = np.array([1, 2, 3, 1, 2, 4, START, 1], dtype=np.intc)
    scores = np.zeros(V, dtype=np.float32)
    out = proc(ids, scores)
    assert set(np.flatnonzero(np.isfinite(out)).tolist()) == {2, END}
    # a strided view (what llama-cpp-python passes) is masked in place too
    rec = np.zeros(V, dtype=[("id", np.intc), ("logit", np.single), ("p", np.single)])
    proc(np.append(ids, 2).astype(np.intc), rec["logit"])
    assert set(np.flatnonzero(np.isfinite(rec["logit"])).tolist()) == {3, 4, END}


def test_llamacpp_processor_open_span_forces_eos_after_close() -> None:
    cfg = RecallConfig(closer_ids=frozenset({50, 2}), stop_after_span=True)
    proc = LlamaCppRecallProcessor(cfg, V, open_span_at_prompt_end=True, eos_token_id=2)
    ids = [7, 8, 9]
    s = proc(np.array(ids), np.zeros(V, np.float32))
    assert set(np.flatnonzero(np.isfinite(s)).tolist()) == {7, 8, 9}
    s = proc(np.array([*ids, 9]), np.zeros(V, np.float32))  # 9 is last: nothing continues
    assert proc.state is not None and proc.state.spans[0].closed_by == "no_continuation"
    assert set(np.flatnonzero(np.isfinite(s)).tolist()) == {2}  # eos forced


@settings(max_examples=40, deadline=None)
@given(ctx=st.lists(st.integers(0, 9), min_size=1, max_size=60), seed=st.integers(0, 2**31))
def test_vllm_request_processor_spans_are_verbatim(ctx: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    args = recall_extra_args(START, END, max_span_tokens=6)
    proc = _request_from_args(args, V)
    out: list[int] = []
    for _ in range(60):
        logits = torch.from_numpy(rng.normal(size=V).astype(np.float32))
        logits[int(rng.integers(V))] += 1e4
        if rng.random() < 0.2:
            logits[START] += 1e5
        logits = proc(ctx, out, logits)
        if proc.state is not None and proc.state.in_span:
            assert torch.isfinite(logits[END])
        out.append(int(torch.argmax(logits)))
    assert proc.state is not None
    proc.state.observe(out[len(proc.state) - len(ctx) :])
    proc.state.finish()
    seq = ctx + out
    for sp in proc.state.spans:
        if sp.token_ids:
            before = [t if t not in (START, END) else -1 for t in seq[: sp.sequence_start]]
            assert sp.context_starts == find_all(before, sp.token_ids) != []


def test_vllm_request_processor_penalty_cache_follows_new_tokens() -> None:
    proc = RecallRequestProcessor(RecallConfig(start_id=START, end_id=END), V)
    s = proc([1, 2, START], [], torch.zeros(V))
    assert set(torch.nonzero(torch.isfinite(s)).flatten().tolist()) == {1, 2, END}
    s = proc([1, 2, START], [1, END, 5, START], torch.zeros(V))  # 5 is new context
    assert set(torch.nonzero(torch.isfinite(s)).flatten().tolist()) == {1, 2, 5, END}


def test_vllm_extra_args_are_validated() -> None:
    with pytest.raises(ValueError):
        recall_extra_args()  # no end token and no closers: a span could never close
    with pytest.raises(ValueError):
        _request_from_args({"end_id": 1, "max_span_tokens": 0}, V)
