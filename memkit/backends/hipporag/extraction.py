"""What an extractor returns for one passage, and the clean-up every extractor shares.

An :class:`Extraction` holds entity phrases and (subject, predicate, object) triples in
surface form; the graph normalises them (:func:`memkit.nlp.normalise_phrase`). ``error`` is set
when extraction failed (an LLM down or unparseable): the passage is then stored without graph
facts and retried on the next index pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from memkit.nlp import alnum_count, normalise_phrase

MAX_PHRASE_CHARS = 120
MAX_PREDICATE_CHARS = 80

#: is this normalised phrase already a node of the graph?
KnownPhrases = Callable[[str], bool]


@dataclass
class Extraction:
    entities: list[str] = field(default_factory=list)
    triples: list[tuple[str, str, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Extractor(Protocol):
    """Turns passages into extractions, one per text, never raising for one bad passage."""

    name: str

    def extract(self, texts: Sequence[str], known: KnownPhrases | None = None
                ) -> list[Extraction]: ...


def clean_phrase(text: object) -> str | None:
    """A usable phrase (surface form, trimmed) or None: must be a string with a letter or
    digit, at most MAX_PHRASE_CHARS characters once whitespace is collapsed."""
    if not isinstance(text, str):
        return None
    text = " ".join(text.split()).strip(" ,;:.\"'()[]{}")
    if not text or len(text) > MAX_PHRASE_CHARS or alnum_count(text) == 0:
        return None
    return text


def clean_triples(raw: Iterable[object], limit: int = 200) -> list[tuple[str, str, str]]:
    """Keep well-formed triples: exactly 3 strings, subject/object usable phrases, predicate
    non-empty and short; duplicates (after normalisation) dropped, order kept."""
    out: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for t in raw:
        if not isinstance(t, (list, tuple)) or len(t) != 3:
            continue
        s, p, o = clean_phrase(t[0]), t[1], clean_phrase(t[2])
        if s is None or o is None or not isinstance(p, str):
            continue
        p = " ".join(p.split())
        if not p or len(p) > MAX_PREDICATE_CHARS:
            continue
        key = (normalise_phrase(s), normalise_phrase(p), normalise_phrase(o))
        if not key[0] or not key[2] or key[0] == key[2] or key in seen:
            continue
        seen.add(key)
        out.append((s, p, o))
        if len(out) >= limit:
            break
    return out


def clean_entities(raw: Iterable[object], limit: int = 200) -> list[str]:
    """Usable, de-duplicated (by normalised form) entity phrases, order kept."""
    out, seen = [], set()
    for e in raw:
        c = clean_phrase(e)
        if c is None:
            continue
        key = normalise_phrase(c)
        if key and key not in seen:
            seen.add(key)
            out.append(c)
            if len(out) >= limit:
                break
    return out


def node_strings(ex: Extraction) -> list[str]:
    """The strings the graph embeds for one extraction: its normalised phrases (entities,
    subjects, objects), then its facts as ``"subject predicate object"``; no duplicates."""
    if not ex.ok:
        return []
    out: dict[str, None] = {}
    for surface in (*ex.entities, *(x for s, _, o in ex.triples for x in (s, o))):
        norm = normalise_phrase(surface)
        if norm:
            out[norm] = None
    for s, p, o in ex.triples:
        out[f"{s} {p} {o}"] = None
    return list(out)
