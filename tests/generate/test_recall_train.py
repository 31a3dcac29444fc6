"""The training recipe: stage 1 moves only the recall rows, stage 2 moves everything; reward."""

from __future__ import annotations

import math

import pytest
import torch

from memkit.errors import InvalidInput
from memkit.generate.recall_tokens import END_RECALL, START_RECALL, add_recall_tokens
from memkit.generate.recall_train import (
    StageConfig,
    build_copy_tokenizer,
    make_copy_examples,
    recall_reward,
    span_scores,
    tiny_llama,
    train_stage,
)


def test_copy_examples_are_deterministic_and_answerable() -> None:
    a = make_copy_examples(20, seed=3, n_pairs=3, kind="words")
    assert a == make_copy_examples(20, seed=3, n_pairs=3, kind="words")
    for ex in a:
        key = ex.prompt.rsplit("?", 1)[1].split()[0]
        assert f"{key} = {ex.answer} ;" in ex.prompt  # the answer is quoted from the context
        assert ex.target == f" {START_RECALL} {ex.answer} {END_RECALL}"
    uu = make_copy_examples(3, seed=1, kind="uuid")
    assert all(len(e.answer) == 36 and e.answer.count("-") == 4 for e in uu)
    with pytest.raises(InvalidInput):
        make_copy_examples(1, kind="emoji")


def test_stage1_moves_only_the_recall_rows_and_stage2_moves_all() -> None:
    tok = build_copy_tokenizer(5, 5)
    model = tiny_llama(len(tok), hidden=16, layers=1, heads=2)
    start, end = add_recall_tokens(tok, model)
    data = make_copy_examples(16, seed=0, n_pairs=2, n_keys=5, n_values=5, value_len=1)
    emb0 = model.get_input_embeddings().weight.detach().clone()
    out0 = model.get_output_embeddings().weight.detach().clone()
    layer0 = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    losses = train_stage(model, tok, data, StageConfig("embeddings", 3, 1e-2, 8), progress=False)
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    emb1 = model.get_input_embeddings().weight.detach()
    out1 = model.get_output_embeddings().weight.detach()
    moved = torch.nonzero((emb1 != emb0).any(dim=1)).flatten().tolist()
    assert set(moved) == {start, end}
    assert set(torch.nonzero((out1 != out0).any(dim=1)).flatten().tolist()) <= {start, end}
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight, layer0)
    assert all(p.requires_grad for p in model.parameters())  # restored after the stage
    train_stage(model, tok, data, StageConfig("full", 2, 1e-2, 8), progress=False)
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, layer0)
    with pytest.raises(InvalidInput):
        train_stage(model, tok, data, StageConfig("lora", 1, 1e-3), progress=False)


def test_reward_formula_hand_values() -> None:
    assert recall_reward(True, 1.0, 1.0) == pytest.approx(1.0)
    assert recall_reward(False, 0.0, 0.0) == 0.0
    assert recall_reward(True, 0.0, 1.0) == pytest.approx(0.2 + 0.4 * 0.5)
    # 0.2 + 0.4 * (0.5 * 0.25 + 0.5 * 1) + 0.4 * sqrt(0.25)
    assert recall_reward(True, 0.25, 1.0) == pytest.approx(0.2 + 0.25 + 0.2)


def test_span_scores() -> None:
    ctx = "k1 = v2 v3 ; ? k1 ="
    assert span_scores(f" {START_RECALL} v2 v3 {END_RECALL}", "v2 v3", ctx) == (True, 1.0, 1.0)
    assert span_scores(f" {START_RECALL} v3 {END_RECALL}", "v2 v3", ctx) == (True, 0.0, 1.0)
    assert span_scores(f" {START_RECALL} v9 {END_RECALL}", "v2 v3", ctx) == (True, 0.0, 0.0)
    assert span_scores(" v2 v3", "v2 v3", ctx) == (False, 0.0, 0.0)
