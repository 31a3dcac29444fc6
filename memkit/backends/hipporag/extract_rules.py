"""The dependency-free LLM-free extractor: deterministic rules over each sentence.

Entities of a passage:

* its title (a short first line, :func:`memkit.nlp.split_title`);
* capitalised spans: runs of capitalised words, joined through short connectors
  (``of``, ``the``, ``de``, ``von``, ``&`` ...), leaving out a lone sentence-initial function
  word ("The", "In", "It");
* numbers and dates: years, "12 March 1990", "March 1990";
* phrases already in the graph: any n-gram (up to 6 words) of the sentence whose normalised
  form is a known phrase node (this links lower-case and non-Latin mentions).

Relations per sentence: its first entity is the subject (a sentence opening with a pronoun
takes the passage title as subject), and every later entity is an object, the words between
them (up to 8) the predicate. Crude, but it gives phrase nodes their relation edges with no
parser at all.

>>> ex = RuleExtractor().extract(["Port Blair\\nPort Blair is the capital of the Andaman "
...                                "Islands. It was founded in 1789."])[0]
>>> ex.entities
['Port Blair', 'Andaman Islands', '1789']
>>> ex.triples  # doctest: +NORMALIZE_WHITESPACE
[('Port Blair', 'is the capital of the', 'Andaman Islands'),
 ('Port Blair', 'was founded in', '1789')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from memkit.backends.hipporag.extraction import (
    Extraction,
    KnownPhrases,
    clean_entities,
    clean_triples,
)
from memkit.nlp import normalise_phrase, split_sentences, split_title

_WORD = re.compile(r"\w+(?:[.'’&-]\w+)*\.?|&", re.UNICODE)
_CONNECTORS = frozenset("of the de da del della di du la le les von van der den y & "
                        "al bin ibn el".split())
_FUNCTION = frozenset(
    "the a an in on at by for from to of and or but if when while after before during since "
    "it its he she they we i you his her their our this that these those there here as with "
    "however although though also then thus later other some many most several one two "
    "what which who whom whose where why how".split()
)
_PRONOUN_START = frozenset("it he she they its his her their this these".split())
_MONTHS = ("january february march april may june july august september october november "
           "december").split()
_DATE = re.compile(
    r"\b(?:\d{1,2}\s+)?(?:" + "|".join(m.capitalize() for m in _MONTHS) +
    r")(?:\s+\d{1,2},?)?\s+\d{3,4}\b|\b(?:1[0-9]{3}|20[0-9]{2})s?\b"
)


@dataclass
class _Span:
    start: int
    end: int
    text: str


def _capitalised_spans(sentence: str) -> list[_Span]:
    words = list(_WORD.finditer(sentence))
    spans: list[_Span] = []
    i = 0
    while i < len(words):
        w = words[i].group()
        if not w[0].isupper():
            i += 1
            continue
        j = i
        last_cap = i
        while j + 1 < len(words):
            nxt = words[j + 1].group()
            gap = sentence[words[j].end():words[j + 1].start()]
            if gap.strip() not in ("", "-"):
                break
            if nxt[0].isupper():
                j += 1
                last_cap = j
            elif nxt.casefold() in _CONNECTORS and j - last_cap < 2:
                j += 1
            else:
                break
        j = last_cap
        # a lone function word ("The", "It") or a leading one ("The Beatles" -> "Beatles"
        # is wrong, so keep leading "The" only inside longer spans)
        first = i
        while first < j and words[first].group().casefold() in _FUNCTION and \
                words[first].group().casefold() not in ("the",):
            first += 1
        if first == j and words[first].group().casefold().rstrip(".") in _FUNCTION:
            i = j + 1
            continue
        if words[first].group().casefold() == "the" and first < j:
            first += 1
        text = sentence[words[first].start():words[j].end()].rstrip(".")
        spans.append(_Span(words[first].start(), words[j].end(), text))
        i = j + 1
    return spans


def _known_spans(sentence: str, known: KnownPhrases, max_words: int = 6) -> list[_Span]:
    words = list(_WORD.finditer(sentence))
    out: list[_Span] = []
    for i in range(len(words)):
        for n in range(min(max_words, len(words) - i), 0, -1):
            start, end = words[i].start(), words[i + n - 1].end()
            text = sentence[start:end]
            norm = normalise_phrase(text)
            if norm and norm not in _FUNCTION and known(norm):
                out.append(_Span(start, end, text.rstrip(".")))
                break
    return out


def _merge(spans: list[_Span]) -> list[_Span]:
    """Longest spans first, drop spans overlapping a kept one; return in text order."""
    kept: list[_Span] = []
    for s in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: s.start)


class RuleExtractor:
    """Deterministic entities and relations; no model, no optional dependency."""

    name = "rules"

    def __init__(self, max_predicate_words: int = 8) -> None:
        self.max_predicate_words = max_predicate_words

    def extract(self, texts: Sequence[str], known: KnownPhrases | None = None
                ) -> list[Extraction]:
        return [self.extract_one(t, known) for t in texts]

    def extract_one(self, text: str, known: KnownPhrases | None = None) -> Extraction:
        title, body = split_title(text)
        entities: list[str] = [title] if title else []
        triples: list[tuple[str, str, str]] = []
        for sentence in split_sentences(body):
            spans = _capitalised_spans(sentence)
            spans += [_Span(m.start(), m.end(), m.group()) for m in _DATE.finditer(sentence)]
            if known is not None:
                spans += _known_spans(sentence, known)
            spans = _merge(spans)
            entities.extend(s.text for s in spans)
            triples.extend(self._relations(sentence, spans, title))
        return Extraction(clean_entities(entities), clean_triples(triples))

    def _relations(self, sentence: str, spans: list[_Span], title: str | None
                   ) -> list[tuple[str, str, str]]:
        if not spans:
            return []
        first_word = sentence.split(maxsplit=1)[0].casefold() if sentence.strip() else ""
        if title and first_word in _PRONOUN_START and spans[0].start > 0:
            subject, subject_end, objects = title, len(first_word), spans
        else:
            subject, subject_end, objects = spans[0].text, spans[0].end, spans[1:]
        out = []
        for obj in objects:
            between = sentence[subject_end:obj.start].split()
            if not between or len(between) > self.max_predicate_words:
                continue
            pred = " ".join(between).strip(",;:")
            if pred:
                out.append((subject, pred, obj.text))
        return out
