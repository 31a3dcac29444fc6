"""Memory items -> training examples -> padded tensor batches.

An item whose ``metadata`` holds ``question`` and ``answer`` becomes a question->answer pair
(loss on the answer only); any other item becomes next-token text (loss on every token).

>>> from types import SimpleNamespace as NS
>>> ex = items_to_examples([NS(id=7, text="Zorvik is red.", created_at=0.0,
...                             metadata={"question": "what is the color of zorvik ?",
...                                       "answer": "red"})])
>>> ex[0].prompt, ex[0].target, ex[0].key
('what is the color of zorvik ?', 'red', 'what is the color of zorvik ?')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch

from memkit.consolidate.tokenizer import TokenizerLike

IGNORE = -100


class ItemLike(Protocol):
    """What consolidation reads from a memory item (``memkit.types.MemoryItem`` fits)."""

    @property
    def id(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def created_at(self) -> float: ...

    @property
    def metadata(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TrainExample:
    """One training example. ``prompt`` empty means plain next-token text in ``target``.

    ``key`` identifies *what the example is about* (the question for a fact); a newer example
    with the same key supersedes older ones in replay buffers.
    """

    prompt: str
    target: str
    key: str
    item_id: int | None = None
    replay: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainExample:
        return cls(**data)

    def replayed(self) -> TrainExample:
        return TrainExample(self.prompt, self.target, self.key, self.item_id, True)


def item_to_example(item: ItemLike) -> TrainExample:
    meta = item.metadata or {}
    question, answer = meta.get("question"), meta.get("answer")
    if isinstance(question, str) and isinstance(answer, str) and question and answer:
        return TrainExample(question, answer, question, int(item.id))
    return TrainExample("", item.text, item.text, int(item.id))


def items_to_examples(items: Iterable[ItemLike]) -> list[TrainExample]:
    return [item_to_example(it) for it in items]


@dataclass
class Batch:
    """Right-padded tensors for a causal LM; ``labels`` is ``IGNORE`` outside the targets."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    answer_mask: torch.Tensor  # label positions that belong to the answer (not eos)
    is_replay: torch.Tensor

    def select(self, rows: torch.Tensor) -> Batch:
        return Batch(self.input_ids[rows], self.attention_mask[rows], self.labels[rows],
                     self.answer_mask[rows], self.is_replay[rows])


def encode_example(ex: TrainExample, tok: TokenizerLike, max_len: int
                   ) -> tuple[list[int], list[int], list[bool]]:
    """Token ids, labels and answer mask for one example (truncated to ``max_len``)."""
    head = [tok.bos_token_id] if tok.bos_token_id is not None else []
    prompt_ids = head + (tok.encode(ex.prompt) if ex.prompt else [])
    body = tok.encode((" " + ex.target) if ex.prompt else ex.target)
    ids = prompt_ids + body + [tok.eos_token_id]
    labels = [IGNORE] * len(prompt_ids) + body + [tok.eos_token_id]
    answer = [False] * len(prompt_ids) + [True] * len(body) + [False]
    if not ex.prompt and head:
        labels[0] = IGNORE
    return ids[:max_len], labels[:max_len], answer[:max_len]


def collate(examples: Sequence[TrainExample], tok: TokenizerLike, max_len: int = 128) -> Batch:
    rows = [encode_example(ex, tok, max_len) for ex in examples]
    width = max(len(r[0]) for r in rows)
    n = len(rows)
    input_ids = torch.full((n, width), tok.pad_token_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    answer = torch.zeros((n, width), dtype=torch.bool)
    for i, (ids, lab, ans) in enumerate(rows):
        k = len(ids)
        input_ids[i, :k] = torch.tensor(ids)
        attention[i, :k] = 1
        labels[i, :k] = torch.tensor(lab)
        answer[i, :k] = torch.tensor(ans)
    is_replay = torch.tensor([ex.replay for ex in examples], dtype=torch.bool)
    return Batch(input_ids, attention, labels, answer, is_replay)
