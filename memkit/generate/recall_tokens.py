"""The two RecaLLM tokens: add them to a tokenizer, grow a model's embeddings, look them up.

>>> START_RECALL, END_RECALL
('<|start_recall|>', '<|end_recall|>')

Typical use (transformers)::

    ids = add_recall_tokens(tokenizer, model)          # new rows = mean of the old rows
    model.save_pretrained(d); tokenizer.save_pretrained(d)
    start_id, end_id = recall_token_ids(AutoTokenizer.from_pretrained(d))
"""

from __future__ import annotations

from typing import Any

from memkit._deps import require
from memkit.errors import InvalidInput

START_RECALL = "<|start_recall|>"
END_RECALL = "<|end_recall|>"
RECALL_TOKENS = (START_RECALL, END_RECALL)


def has_recall_tokens(tokenizer: Any) -> bool:
    """True when both recall tokens are single tokens of ``tokenizer``'s vocabulary."""
    vocab = tokenizer.get_vocab()
    return all(tok in vocab for tok in RECALL_TOKENS)


def recall_token_ids(tokenizer: Any) -> tuple[int, int]:
    """``(start_id, end_id)`` of the recall tokens; :class:`InvalidInput` if they are missing."""
    vocab = tokenizer.get_vocab()
    missing = [tok for tok in RECALL_TOKENS if tok not in vocab]
    if missing:
        raise InvalidInput(
            f"the tokenizer has no recall token(s) {missing}: call "
            "memkit.generate.add_recall_tokens(tokenizer, model) and fine-tune (see "
            "memkit.generate.recall_train), or use open_span=True for an untrained model"
        )
    return int(vocab[START_RECALL]), int(vocab[END_RECALL])


def add_recall_tokens(tokenizer: Any, model: Any | None = None) -> tuple[int, int]:
    """Add the recall tokens (as special tokens) and resize ``model``'s embeddings.

    Idempotent. New embedding rows (input, and output when untied) are set to the mean of the
    existing rows, so the new tokens start "average" instead of random (the usual practice for
    added tokens; RecaLLM stage 1 then trains just these rows). Returns ``(start_id, end_id)``.
    """
    transformers = require("transformers", "llm", "recall tokens")
    new = [
        transformers.AddedToken(tok, special=True, normalized=False)
        for tok in RECALL_TOKENS
        if tok not in tokenizer.get_vocab()
    ]
    if new:
        tokenizer.add_tokens(new, special_tokens=True)
    ids = recall_token_ids(tokenizer)
    if model is not None:
        resize_with_mean(model, max(len(tokenizer), max(ids) + 1))
    return ids


def resize_with_mean(model: Any, num_tokens: int) -> None:
    """Grow ``model``'s vocabulary to ``num_tokens``, new rows = mean of the old ones."""
    torch = require("torch", "llm", "recall tokens")
    old = model.get_input_embeddings().weight.shape[0]
    if num_tokens <= old:
        return
    model.resize_token_embeddings(num_tokens, mean_resizing=False)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[old:] = emb[:old].mean(dim=0, keepdim=True)
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != emb.data_ptr():
            out.weight[old:] = out.weight[:old].mean(dim=0, keepdim=True)
            bias = getattr(out, "bias", None)
            if bias is not None:
                bias[old:] = bias[:old].mean()
