"""Unicode-aware text helpers shared by the graph backends (HippoRAG, Panini).

Phrase normalisation keeps letters and digits of every script (the HippoRAG reference maps
each non-ASCII letter to a space, which erases Greek, Cyrillic, CJK and accented names):

>>> normalise_phrase("  Émile  ZOLA! ")
'émile zola'
>>> normalise_phrase("Москва,  Россия")
'москва россия'
>>> normalise_phrase("東京都")
'東京都'
>>> normalise_phrase("U.S.A.")
'usa'
>>> normalise_phrase("rock-'n'-roll")
'rock n roll'
>>> alnum_count("a-b")
2
>>> split_sentences("Dr. Smith went to Washington. He met Mr. Jones! Was it 3.5 p.m.? Yes.")
['Dr. Smith went to Washington.', 'He met Mr. Jones!', 'Was it 3.5 p.m.?', 'Yes.']
>>> split_sentences("東京は日本の首都です。大阪は大きい。")
['東京は日本の首都です。', '大阪は大きい。']
"""

from __future__ import annotations

import re
import unicodedata

# Abbreviations that end with a period but do not end a sentence (lower-cased, no period).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft vs etc inc ltd co corp no vol fig gen col lt sgt capt "
    "rev hon gov sen rep pres jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e al "
    "approx est dept univ ave blvd rd".split()
)
_SENT_END = re.compile(r"([.!?。！？]+)([\"'”’)\]]*)(\s+|$)")
_CJK_END = frozenset("。！？")


def _is_word_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in ("L", "N") or cat == "Mn" or cat == "Mc"


def normalise_phrase(text: str) -> str:
    """Canonical form of a phrase: NFKC, case-folded, punctuation and symbols removed.

    Periods and apostrophes inside a word are dropped without a space (``U.S.`` -> ``us``,
    ``O'Brien`` -> ``obrien``); every other non-letter/digit character becomes a space, and
    whitespace is collapsed. Letters and digits of every script are kept.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    out: list[str] = []
    n = len(text)
    for i, ch in enumerate(text):
        if _is_word_char(ch):
            out.append(ch)
        elif ch in ".'’" and 0 < i < n - 1 and _is_word_char(text[i - 1]) \
                and _is_word_char(text[i + 1]):
            continue  # joins: U.S.A, O'Brien
        else:
            out.append(" ")
    return " ".join("".join(out).split())


def alnum_count(text: str) -> int:
    """Number of letters and digits (any script) in ``text``."""
    return sum(1 for ch in text if _is_word_char(ch))


def split_sentences(text: str) -> list[str]:
    """Split text into sentences with a dependency-free rule set.

    A sentence ends at ``.``, ``!``, ``?`` (or CJK ``。！？``) followed by whitespace (or, for
    CJK marks, directly), unless the period ends a known abbreviation, a single initial
    (``J. R. R. Tolkien``) or the next word starts lower-case.
    """
    text = text.strip()
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch in _CJK_END:
            end = pos + 1
            while end < len(text) and text[end] in _CJK_END:
                end += 1
            piece = text[start:end].strip()
            if piece:
                sentences.append(piece)
            start = pos = end
            continue
        m = _SENT_END.match(text, pos) if ch in ".!?" else None
        if m is None:
            pos += 1
            continue
        end = m.end(2)
        nxt = text[m.end():m.end() + 1]
        if m.group(1) == "." and not _ends_sentence(text[start:pos], nxt):
            pos = m.end()
            continue
        if m.group(3) == "" and m.end() < len(text):
            pos = m.end()
            continue
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = pos = m.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _ends_sentence(before: str, nxt: str) -> bool:
    words = before.split()
    last = words[-1] if words else ""
    token = last.casefold().rstrip(".")
    if token in _ABBREVIATIONS:
        return False
    if len(token) == 1 and token.isalpha():  # an initial: "J. Smith"
        return False
    if "." in token and all(len(part) <= 2 for part in token.split(".")):  # "p.m", "e.g"
        return bool(nxt) and nxt.isupper() and len(token) > 3
    if nxt and not (nxt.isupper() or nxt.isdigit() or nxt in "\"'“‘(["):
        return False
    return True


def split_title(text: str, max_title_chars: int = 120) -> tuple[str | None, str]:
    """Split a leading title line off a document: ``"Title\\nBody..."`` -> (title, body).

    The first line counts as a title when the text has more lines, the line is short and does
    not end like a sentence; otherwise (None, text).

    >>> split_title("Port Blair\\nPort Blair is the capital.")
    ('Port Blair', 'Port Blair is the capital.')
    >>> split_title("Just one sentence.")
    (None, 'Just one sentence.')
    """
    head, sep, body = text.partition("\n")
    head = head.strip()
    if not sep or not body.strip() or not head or len(head) > max_title_chars \
            or head[-1] in ".!?。:;":
        return None, text.strip()
    return head, body.strip()
