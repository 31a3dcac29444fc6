"""The transformers processor and generate_with_recall on a tiny random model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LogitsProcessor, LogitsProcessorList

from memkit.errors import InvalidInput
from memkit.generate.recall import RecallConfig, find_all
from memkit.generate.recall_hf import RecallLogitsProcessor, generate_with_recall
from memkit.generate.recall_result import RecallInterrupted
from memkit.generate.recall_tokens import recall_token_ids


class Adversary(LogitsProcessor):  # type: ignore[misc]
    """Pushes a random token far up every step, and the start token often."""

    def __init__(self, seed: int, start_id: int | None, p_start: float = 0.3) -> None:
        self.rng = np.random.default_rng(seed)
        self.start_id, self.p_start = start_id, p_start

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        for b in range(scores.shape[0]):
            scores[b, int(self.rng.integers(scores.shape[1]))] += 1e4
            if self.start_id is not None and self.rng.random() < self.p_start:
                scores[b, self.start_id] += 1e5
        return scores


class Push(LogitsProcessor):  # type: ignore[misc]
    """Adds fixed boosts to fixed tokens every step."""

    def __init__(self, boosts: dict[int, float]) -> None:
        self.boosts = boosts

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        for t, v in self.boosts.items():
            scores[:, t] += v
        return scores


class Boom(LogitsProcessor):  # type: ignore[misc]
    def __init__(self, after: int) -> None:
        self.calls, self.after = 0, after

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("device lost")
        return scores


def _spans_verbatim(proc: RecallLogitsProcessor, rows: list[list[int]], excluded: set[int]) -> int:
    n = 0
    for st_, row in zip(proc.states, rows, strict=True):
        st_.observe(row[len(st_) :])
        st_.finish()
        for sp in st_.spans:
            before = [t if t not in excluded else -1 for t in row[: sp.sequence_start]]
            if sp.token_ids:
                assert sp.context_starts == find_all(before, sp.token_ids)
                assert sp.context_starts
                n += 1
    return n


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_batched_processor_property_under_adversarial_scores(seed: int) -> None:
    """Drive the processor directly (no model): 3 rows, own states, left padding."""
    v, start, end, pad = 40, 38, 39, 0
    rng = np.random.default_rng(seed)
    rows = [rng.integers(1, 8, size=int(rng.integers(3, 15))).tolist() for _ in range(3)]
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    cfg = RecallConfig(start_id=start, end_id=end, excluded_ids=frozenset({pad}), max_span_tokens=4)
    proc = RecallLogitsProcessor(cfg)
    adv = Adversary(seed, start)
    for _ in range(40):
        scores = adv(ids, torch.randn(3, v))
        scores = proc(ids, scores)
        for b, st_ in enumerate(proc.states):
            if st_.in_span:
                assert torch.isfinite(scores[b, end])  # the end token is always allowed
        ids = torch.cat([ids, scores.argmax(dim=1, keepdim=True)], dim=1)
    assert _spans_verbatim(proc, ids.tolist(), {pad, start, end}) > 0


def test_batched_generate_integration(tiny: tuple[Any, Any]) -> None:
    tok, model = tiny
    start, end = recall_token_ids(tok)
    prompts = ["k1 = v2 v3 v4 ; k2 = v5 v6 ; ? k1 =", "k9 = v9 v8 v9 v7 ; ? k9 ="]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True).to(model.device)
    cfg = RecallConfig(
        start_id=start, end_id=end, excluded_ids=frozenset({0, 1, 2}), max_span_tokens=5
    )
    proc = RecallLogitsProcessor(cfg)
    out = model.generate(
        **enc,
        max_new_tokens=16,
        do_sample=False,
        pad_token_id=0,
        logits_processor=LogitsProcessorList([Adversary(7, start, p_start=0.5), proc]),
    )
    assert len(proc.states) == 2  # one state per row
    assert _spans_verbatim(proc, out.tolist(), {0, 1, 2, start, end}) > 0
    for st_ in proc.states:
        assert all(len(sp.token_ids) <= 5 for sp in st_.spans)


def test_processor_masks_exactly_the_allowed_set(tiny: tuple[Any, Any]) -> None:
    tok, _ = tiny
    start, end = recall_token_ids(tok)
    cfg = RecallConfig(start_id=start, end_id=end)
    proc = RecallLogitsProcessor(cfg)
    a, b, c = tok.convert_tokens_to_ids(["v1", "v2", "v3"])
    ids = torch.tensor([[a, b, a, c, start, a], [c, c, c, c, c, c]])
    scores = proc(ids, torch.zeros(2, len(tok)))
    assert set(torch.nonzero(scores[0] == 0).flatten().tolist()) == {b, c, end}
    assert bool((scores[1] == 0).all())  # row 2 is not in a span: untouched
    ids = torch.cat([ids, torch.tensor([[c], [start]])], dim=1)
    scores = proc(ids, torch.zeros(2, len(tok)))
    assert set(torch.nonzero(scores[0] == 0).flatten().tolist()) == {end}
    assert set(torch.nonzero(scores[1] == 0).flatten().tolist()) == {c, end}


def test_trained_mode_api_returns_spans_with_prompt_offsets(tiny: tuple[Any, Any]) -> None:
    tok, model = tiny
    start, _ = recall_token_ids(tok)
    prompt = "k1 = v2 v3 v4 ; k2 = v5 v6 ; ? k1 ="
    res = generate_with_recall(
        model,
        tok,
        prompt,
        max_new_tokens=20,
        max_span_tokens=4,
        logits_processor=[Adversary(3, start, p_start=0.5)],
    )
    assert res.spans, "the adversary opens spans"
    for sp in res.spans:
        assert sp.closed_by in ("end_token", "unfinished")
        if sp.token_ids and sp.source == "prompt":
            assert sp.verbatim
            assert prompt[sp.char_start : sp.char_end].split() == sp.text.split()
    assert "<|start_recall|>" in res.raw_text and "<|start_recall|>" not in res.text


def test_open_span_mode_on_a_model_without_recall_tokens(tiny_plain: tuple[Any, Any]) -> None:
    tok, model = tiny_plain
    prompt = "k1 = v2 v3 v4 ; k2 = v5 v6 ; ? k1 ="
    for seed in range(5):
        res = generate_with_recall(
            model,
            tok,
            prompt,
            open_span=True,
            max_new_tokens=10,
            delimiters=(";",),
            logits_processor=[Adversary(seed, None)],
        )
        sp = res.spans[0]
        assert sp.verbatim and sp.source == "prompt" and sp.text
        assert sp.closed_by in ("delimiter", "no_continuation", "length_cap")
        assert ";" not in sp.text
        assert prompt[sp.char_start : sp.char_end] == sp.text
        assert len(res.spans) == 1 and res.stop_reason == "stop"  # stops after the span


def test_open_span_length_cap(tiny_plain: tuple[Any, Any]) -> None:
    tok, model = tiny_plain
    prompt = " ".join(["v1"] * 30)  # every prefix continues: only the cap can close it
    res = generate_with_recall(model, tok, prompt, open_span=True, max_span_tokens=3, delimiters=())
    assert res.spans[0].closed_by == "length_cap" and len(res.spans[0].token_ids) == 3


def test_span_that_never_closes_is_returned_unfinished(tiny: tuple[Any, Any]) -> None:
    tok, model = tiny
    start, _ = recall_token_ids(tok)
    prompt = " ".join(["v1"] * 30)
    push = Push({start: 1e6, tok.convert_tokens_to_ids("v1"): 1e5})
    res = generate_with_recall(model, tok, prompt, max_new_tokens=4, logits_processor=[push])
    assert res.stop_reason == "length"
    assert res.spans[-1].closed_by == "unfinished" and res.spans[-1].verbatim
    assert res.spans[-1].text.split() == ["v1"] * 3


def test_bad_inputs_are_clear_errors(tiny: tuple[Any, Any], tiny_plain: tuple[Any, Any]) -> None:
    tok, model = tiny
    with pytest.raises(InvalidInput, match="empty context"):
        generate_with_recall(model, tok, "   ")
    with pytest.raises(InvalidInput, match="context window"):
        generate_with_recall(model, tok, " ".join(["v1"] * 300))  # window is 256
    ptok, pmodel = tiny_plain
    with pytest.raises(InvalidInput, match="open_span=True"):
        generate_with_recall(pmodel, ptok, "k1 = v1")
    # window - prompt leaves 6 tokens: max_new_tokens is lowered, not an error
    res = generate_with_recall(model, tok, " ".join(["v1"] * 250), max_new_tokens=50)
    assert len(res.token_ids) <= 6


def test_failure_inside_generation_keeps_partial_output(tiny: tuple[Any, Any]) -> None:
    tok, model = tiny
    start, _ = recall_token_ids(tok)
    with pytest.raises(RecallInterrupted) as info:
        generate_with_recall(
            model,
            tok,
            "k1 = v2 v3 ; ? k1 =",
            max_new_tokens=20,
            logits_processor=[Adversary(1, start, p_start=1.0), Boom(4)],
        )
    partial = info.value.partial
    assert partial is not None and len(partial.token_ids) == 4  # 4 steps completed
    assert partial.spans and partial.spans[0].verbatim
