"""Tokenizers the consolidation trainer accepts: a tiny word-level one and an HF adapter.

The trainer needs only ``encode(text) -> ids`` (no special tokens), ``decode(ids)`` and the ids
of the pad / bos / eos tokens. :class:`WordTokenizer` is built from a corpus for the tiny
CPU models; :class:`HFTokenizer` wraps any ``transformers`` tokenizer.

>>> tok = WordTokenizer.build(["the color of zorvik is red ."])
>>> tok.decode(tok.encode("the color of zorvik is blue ."))
'the color of zorvik is <unk> .'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from memkit.errors import InvalidInput

_WORD = re.compile(r"\w+|[^\w\s]")
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
TOKENIZER_FILE = "memkit_tokenizer.json"


class TokenizerLike(Protocol):
    """What the consolidation trainer needs from a tokenizer."""

    pad_token_id: int
    bos_token_id: int | None
    eos_token_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


class WordTokenizer:
    """Lower-cased word/punctuation tokenizer over a fixed vocabulary (unknown -> ``<unk>``)."""

    pad_token_id = 0
    unk_token_id = 1
    bos_token_id: int | None = 2
    eos_token_id = 3

    def __init__(self, vocab: list[str]) -> None:
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise InvalidInput(f"vocabulary must start with the special tokens {SPECIALS}")
        if len(set(vocab)) != len(vocab):
            raise InvalidInput("vocabulary has duplicate tokens")
        self.vocab = list(vocab)
        self._ids = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def build(cls, texts: Iterable[str]) -> WordTokenizer:
        """Vocabulary of every word in ``texts``, in order of first appearance."""
        seen: dict[str, None] = {}
        for text in texts:
            for w in _WORD.findall(text.lower()):
                seen.setdefault(w, None)
        return cls(list(SPECIALS) + [w for w in seen if w not in SPECIALS])

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(w, self.unk_token_id) for w in _WORD.findall(text.lower())]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.vocab[i] for i in ids if i != self.pad_token_id)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TOKENIZER_FILE).write_text(json.dumps({"vocab": self.vocab}), "utf-8")

    @classmethod
    def load(cls, directory: Path) -> WordTokenizer:
        data = json.loads((directory / TOKENIZER_FILE).read_text("utf-8"))
        return cls(list(data["vocab"]))


class HFTokenizer:
    """Adapter from a ``transformers`` tokenizer to :class:`TokenizerLike`."""

    def __init__(self, tokenizer: Any) -> None:
        self.inner = tokenizer
        if tokenizer.eos_token_id is None:
            raise InvalidInput("the tokenizer has no eos token; consolidation needs one")
        self.eos_token_id = int(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad) if pad is not None else self.eos_token_id
        bos = tokenizer.bos_token_id
        self.bos_token_id = int(bos) if bos is not None else None

    def encode(self, text: str) -> list[int]:
        return list(self.inner(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Iterable[int]) -> str:
        return str(self.inner.decode(list(ids), skip_special_tokens=True))
