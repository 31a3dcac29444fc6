"""The LLM extractor: HippoRAG 2's two-step OpenIE (named entities, then triples), as JSON.

Prompts carry one worked example each (few-shot), so a small base/instruct model follows the
format. Every call goes through the injected LLM (the facade wraps it in the persistent cache,
so re-indexing costs nothing). Output is parsed leniently by the LLM boundary (truncated JSON
repaired, never evaluated); triples that are not three strings, overlong phrases and
duplicates are dropped here. A passage whose calls fail (server down, unparseable twice) gets
an :class:`Extraction` with ``error`` set, and the backend retries it on the next index pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pydantic

from memkit.backends.hipporag.extraction import (
    Extraction,
    KnownPhrases,
    clean_entities,
    clean_triples,
)
from memkit.errors import LLMError, LLMOutputError

MAX_PASSAGE_CHARS = 6000

_EXAMPLE_PASSAGE = (
    "Radio City\nRadio City is India's first private FM radio station and was started on 3 July "
    "2001. It plays Hindi, English and regional songs. Radio City recently forayed into new "
    "media in May 2008 with the launch of a music portal - PlanetRadiocity.com."
)
_EXAMPLE_ENTITIES = ["Radio City", "India", "3 July 2001", "Hindi", "English", "May 2008",
                     "PlanetRadiocity.com"]
_EXAMPLE_TRIPLES = [
    ["Radio City", "located in", "India"],
    ["Radio City", "is", "private FM radio station"],
    ["Radio City", "started on", "3 July 2001"],
    ["Radio City", "plays songs in", "Hindi"],
    ["Radio City", "plays songs in", "English"],
    ["Radio City", "forayed into", "new media"],
    ["Radio City", "launched", "PlanetRadiocity.com"],
    ["PlanetRadiocity.com", "launched in", "May 2008"],
    ["PlanetRadiocity.com", "is", "music portal"],
]

NER_SYSTEM = (
    "Your task is to extract named entities from the given paragraph. "
    'Respond with a JSON object {"named_entities": [...]} and nothing else.'
)
TRIPLE_SYSTEM = (
    "Your task is to construct an RDF (Resource Description Framework) graph from the given "
    "passage and named entity list. Respond with a JSON object "
    '{"triples": [[subject, predicate, object], ...]} and nothing else. Each triple should '
    "contain at least one, preferably two, of the named entities in the list. Resolve "
    "pronouns to their specific names."
)


class NERResult(pydantic.BaseModel):
    named_entities: list[str | int | float | None] = []


class TripleResult(pydantic.BaseModel):
    triples: list[list[str | int | float | None]] = []


def ner_prompt(passage: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": NER_SYSTEM},
        {"role": "user", "content": f"Paragraph:\n```\n{_EXAMPLE_PASSAGE}\n```"},
        {"role": "assistant",
         "content": json.dumps({"named_entities": _EXAMPLE_ENTITIES}, ensure_ascii=False)},
        {"role": "user", "content": f"Paragraph:\n```\n{passage[:MAX_PASSAGE_CHARS]}\n```"},
    ]


def triple_prompt(passage: str, entities: Sequence[str]) -> list[dict[str, str]]:
    def body(p: str, ents: Sequence[str]) -> str:
        named = json.dumps({"named_entities": list(ents)}, ensure_ascii=False)
        return f"Convert the paragraph into a JSON dict, it has a named entity list and a " \
               f"triple list.\nParagraph:\n```\n{p}\n```\n\n{named}"

    return [
        {"role": "system", "content": TRIPLE_SYSTEM},
        {"role": "user", "content": body(_EXAMPLE_PASSAGE, _EXAMPLE_ENTITIES)},
        {"role": "assistant",
         "content": json.dumps({"triples": _EXAMPLE_TRIPLES}, ensure_ascii=False)},
        {"role": "user", "content": body(passage[:MAX_PASSAGE_CHARS], entities)},
    ]


class OpenIEExtractor:
    """Two LLM calls per passage (temperature 0), batched across passages."""

    name = "llm"

    def __init__(self, llm: Any, *, max_tokens: int = 512) -> None:
        self.llm = llm
        self.max_tokens = max_tokens

    def extract(self, texts: Sequence[str], known: KnownPhrases | None = None
                ) -> list[Extraction]:
        if not texts:
            return []
        try:
            ner = self.llm.complete_json_many([ner_prompt(t) for t in texts], NERResult,
                                              errors="return", max_tokens=self.max_tokens)
        except LLMError as exc:  # transport failure: every passage is retried later
            return [Extraction(error=f"named entity call failed: {exc}") for _ in texts]
        entities: list[list[str] | None] = []
        for r in ner:
            entities.append(None if isinstance(r, LLMOutputError)
                            else clean_entities(r.named_entities))
        todo = [i for i, e in enumerate(entities) if e is not None]
        try:
            tri = self.llm.complete_json_many(
                [triple_prompt(texts[i], entities[i] or []) for i in todo], TripleResult,
                errors="return", max_tokens=self.max_tokens)
        except LLMError as exc:
            return [Extraction(error=f"triple call failed: {exc}") for _ in texts]
        out = [Extraction(error=f"named entity output unusable: {r}") if e is None
               else Extraction() for r, e in zip(ner, entities, strict=True)]
        for i, r in zip(todo, tri, strict=True):
            if isinstance(r, LLMOutputError):
                out[i] = Extraction(error=f"triple output unusable: {r}")
                continue
            triples = clean_triples(r.triples)
            # as in the paper, phrase nodes are the triples' subjects and objects
            ents = clean_entities([x for t in triples for x in (t[0], t[2])])
            out[i] = Extraction(ents, triples)
        return out
