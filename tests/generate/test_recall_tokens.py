"""Adding the recall tokens: ids, mean-initialised rows, save/load round trip."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from memkit.errors import InvalidInput
from memkit.generate.recall_tokens import (
    END_RECALL,
    START_RECALL,
    add_recall_tokens,
    has_recall_tokens,
    recall_token_ids,
)
from memkit.generate.recall_train import build_copy_tokenizer, tiny_llama


def test_add_tokens_resizes_with_mean_rows_and_is_idempotent() -> None:
    tok = build_copy_tokenizer(5, 5)
    model = tiny_llama(len(tok), hidden=16, layers=1, heads=2)
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    assert not has_recall_tokens(tok)
    start, end = add_recall_tokens(tok, model)
    assert (start, end) == (len(old_in), len(old_in) + 1)
    new_in = model.get_input_embeddings().weight.detach()
    new_out = model.get_output_embeddings().weight.detach()
    assert new_in.shape[0] == len(tok) == len(old_in) + 2
    assert torch.allclose(new_in[: len(old_in)], old_in)
    for row in (start, end):
        assert torch.allclose(new_in[row], old_in.mean(0), atol=1e-6)
        assert torch.allclose(new_out[row], old_out.mean(0), atol=1e-6)
    assert add_recall_tokens(tok, model) == (start, end)  # idempotent
    assert model.get_input_embeddings().weight.shape[0] == len(old_in) + 2
    # each marker is one token and survives encoding next to text
    ids = tok(f"k1 = {START_RECALL} v2 {END_RECALL}", add_special_tokens=False)["input_ids"]
    assert ids[2] == start and ids[-1] == end


def test_save_load_round_trip(tmp_path: Any) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = build_copy_tokenizer(5, 5)
    model = tiny_llama(len(tok), hidden=16, layers=1, heads=2)
    ids = add_recall_tokens(tok, model)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert recall_token_ids(tok2) == ids
    w1 = model.get_input_embeddings().weight
    w2 = model2.get_input_embeddings().weight
    assert torch.equal(w1, w2)
    text = f"k1 = {START_RECALL} v2 {END_RECALL}"
    assert tok2(text)["input_ids"] == tok(text)["input_ids"]
    assert tok2.decode(tok2(text)["input_ids"], skip_special_tokens=True).split() == [
        "k1",
        "=",
        "v2",
    ]


def test_missing_tokens_error_names_the_fix() -> None:
    with pytest.raises(InvalidInput, match="add_recall_tokens"):
        recall_token_ids(build_copy_tokenizer(3, 3))
