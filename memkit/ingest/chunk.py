"""Token-aware chunking with overlap, on sentence boundaries where possible.

>>> chunks = chunk_text("One two three. Four five six. Seven eight nine.", max_tokens=6,
...                     overlap=3, count=lambda s: len(s.split()))
>>> [c.text for c in chunks]
['One two three. Four five six.', 'Four five six. Seven eight nine.']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from memkit.errors import InvalidInput

_SENTENCE = re.compile(r"[^.!?。！？\n]+(?:[.!?。！？]+[\"')\]]*|\n|$)", re.UNICODE)


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offsets in the source text
    end: int


def word_count(text: str) -> int:
    return len(text.split())


def _units(text: str) -> list[tuple[int, int]]:
    """Sentence spans (start, end) with surrounding whitespace trimmed."""
    spans = []
    for m in _SENTENCE.finditer(text):
        s, e = m.start(), m.end()
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
    return spans


def _split_long(text: str, s: int, e: int, max_tokens: int,
                count: Callable[[str], int]) -> list[tuple[int, int]]:
    """Split one over-long sentence on word boundaries."""
    words = [(m.start() + s, m.end() + s) for m in re.finditer(r"\S+", text[s:e])]
    out, cur = [], 0
    while cur < len(words):
        hi = cur + 1
        while hi < len(words) and count(text[words[cur][0]:words[hi][1]]) <= max_tokens:
            hi += 1
        out.append((words[cur][0], words[hi - 1][1]))
        cur = hi
    return out


def chunk_text(text: str, max_tokens: int = 200, overlap: int = 32,
               count: Callable[[str], int] = word_count) -> list[Chunk]:
    """Pack sentences into chunks of at most ``max_tokens`` (by ``count``); consecutive chunks
    share about ``overlap`` tokens of whole sentences."""
    if max_tokens <= 0 or overlap < 0 or overlap >= max_tokens:
        raise InvalidInput(f"need 0 <= overlap < max_tokens, got {overlap} and {max_tokens}")
    units: list[tuple[int, int]] = []
    for s, e in _units(text):
        if count(text[s:e]) > max_tokens:
            units.extend(_split_long(text, s, e, max_tokens, count))
        else:
            units.append((s, e))
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j = i
        while j + 1 < len(units) and count(text[units[i][0]:units[j + 1][1]]) <= max_tokens:
            j += 1
        chunks.append(Chunk(text[units[i][0]:units[j][1]], units[i][0], units[j][1]))
        if j + 1 >= len(units):
            break
        # next chunk starts early enough to repeat ~overlap tokens, but always advances
        k = j + 1
        while k - 1 > i and count(text[units[k - 1][0]:units[j][1]]) <= overlap:
            k -= 1
        i = k
    return chunks
