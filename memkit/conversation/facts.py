"""Standalone facts from chat turns, with or without an LLM.

**LLM-free** (:func:`rule_facts`): each turn is split into sentences
(:func:`memkit.nlp.split_sentences`); first-person words are rewritten to the speaker ("I
moved to Lyon" said by Ann -> "Ann moved to Lyon"); the HippoRAG rule extractor
(:class:`~memkit.backends.hipporag.extract_rules.RuleExtractor`) finds the sentence's
(subject, predicate, object) triples; each predicate is put in canonical form by
:func:`canonical_relation`. A sentence with at least one triple becomes one fact.

**LLM** (:func:`llm_facts`): the numbered turns go to the LLM with a strict JSON schema
(:class:`ExtractedFacts`: pydantic, no extra fields); each fact names the turns it came from
and whether its relation is single-valued (one object at a time: where one lives, one's
employer, one's partner).

Canonical relations: the predicates of :data:`RELATION_FORMS` (after dropping auxiliaries and
adverbs: "has just moved to" -> "moved to") map to ``lives in``, ``works at`` and ``partner of``,
the single-valued relations the contradiction rule knows; any other predicate is kept, lower
case, as a multi-valued relation (never contradicted by the rule).

>>> turn = Turn(0, "user", "Ann", "I just moved to Lyon!", 0.0)
>>> [(f.text, f.triples) for f in rule_facts([turn])]
[('Ann lives in Lyon.', (('Ann', 'lives in', 'Lyon'),))]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic

from memkit.conversation.turns import Turn
from memkit.errors import LLMOutputError
from memkit.nlp import normalise_phrase, split_sentences

SINGLE_VALUED = ("lives in", "works at", "partner of")
RELATION_FORMS: dict[str, tuple[str, ...]] = {
    "lives in": ("live in", "lives in", "living in", "moved to", "move to", "moves to",
                 "moving to", "relocated to", "moved back to", "settled in", "resides in",
                 "based in", "live at", "lives at", "moved into"),
    "works at": ("work at", "works at", "work for", "works for", "working at", "working for",
                 "joined", "started working at", "started working for", "started at",
                 "job at", "employed at", "employed by", "hired by", "started job at",
                 "took job at"),
    "partner of": ("dating", "married", "married to", "engaged to", "partner",
                   "in relationship with", "seeing", "girlfriend", "boyfriend", "wife",
                   "husband", "together with", "going out with"),
}
_CANONICAL = {form: rel for rel, forms in RELATION_FORMS.items() for form in forms}
_FILLER = frozenset("is am are was were be been has have had just recently now currently "
                    "finally also still already got get gets getting a an the new".split())
RENDER = {"lives in": "{s} lives in {o}.", "works at": "{s} works at {o}.",
          "partner of": "{s}'s partner is {o}."}
# first person -> speaker; word-bounded, case-insensitive (the pronoun "I" only upper case)
_FIRST_PERSON = [
    (re.compile(r"\bI'm\b|\bI am\b"), "{s} is"), (re.compile(r"\bI've\b"), "{s} has"),
    (re.compile(r"\bI'll\b"), "{s} will"), (re.compile(r"\bI'd\b"), "{s} would"),
    (re.compile(r"\bI\b"), "{s}"), (re.compile(r"\b(?:my|My|mine|Mine)\b"), "{s}'s"),
    (re.compile(r"\b(?:me|myself)\b"), "{s}"),
]


@dataclass(frozen=True)
class Fact:
    """One standalone fact: its text, the turns it came from, its event time and the
    triples it asserts (subject, canonical relation, object), and which relations hold one
    object at a time."""

    text: str
    turns: tuple[int, ...]
    at: float
    triples: tuple[tuple[str, str, str], ...]
    single_valued: frozenset[str] = field(default_factory=lambda: frozenset(SINGLE_VALUED))


def canonical_relation(predicate: str) -> str:
    """``"has just moved to"`` -> ``"lives in"``; unknown predicates lower-cased as they are.

    >>> [canonical_relation(p) for p in ("is dating", "partner is", "likes")]
    ['partner of', 'partner of', 'likes']
    """
    words = [w for w in normalise_phrase(predicate).split() if w not in _FILLER]
    text = " ".join(words)
    for drop in (0, 1):  # also without a trailing article: "moved to the" -> "moved to"
        probe = " ".join(words[:len(words) - drop]) if drop else text
        if probe in _CANONICAL:
            return _CANONICAL[probe]
    return text or normalise_phrase(predicate)


def render(sentence: str, triples: Sequence[tuple[str, str, str]]) -> str:
    """A fact's text: each single-valued triple in one canonical sentence ("Ann lives in
    Lyon."), and the sentence itself when it says more than those.

    >>> render("Ann moved to Lyon with Tom.", [("Ann", "lives in", "Lyon"),
    ...                                        ("Ann", "moved to lyon with", "Tom")])
    'Ann lives in Lyon. Ann moved to Lyon with Tom.'
    """
    canonical = [RENDER[r].format(s=s, o=o) for s, r, o in triples if r in RENDER]
    if len(canonical) < len(triples) or not canonical:
        canonical.append(sentence)
    return " ".join(dict.fromkeys(canonical))


def first_person_to(speaker: str, sentence: str) -> str:
    """Rewrite first-person words to the speaker (only for named speakers and "user")."""
    name = "User" if speaker == "user" else speaker
    for pattern, repl in _FIRST_PERSON:
        sentence = pattern.sub(repl.format(s=name), sentence)
    return sentence


def _subject(text: str) -> str:
    return text[:-2] if text.endswith(("'s", "’s")) else text


def rule_facts(turns: Sequence[Turn], extractor: Any | None = None) -> list[Fact]:
    """LLM-free facts (see the module docstring); system and tool turns are skipped."""
    if extractor is None:
        from memkit.backends.hipporag.extract_rules import RuleExtractor

        extractor = RuleExtractor()
    out: list[Fact] = []
    for turn in turns:
        if turn.role not in ("user", "assistant"):
            continue
        for sentence in split_sentences(turn.content):
            rewritten = first_person_to(turn.speaker, sentence) if turn.role == "user" or \
                turn.name else sentence
            triples = []
            for subj, pred, obj in extractor.extract_one(rewritten).triples:
                rel = canonical_relation(pred)
                if rel and normalise_phrase(_subject(subj)) and normalise_phrase(obj):
                    triples.append((_subject(subj), rel, obj))
            if triples:
                out.append(Fact(render(rewritten, triples), (turn.index,), turn.at,
                                tuple(dict.fromkeys(triples))))
    return out


# ---- LLM mode -----------------------------------------------------------------------------
class ExtractedFact(pydantic.BaseModel):
    """One fact as the LLM must return it."""

    model_config = pydantic.ConfigDict(extra="forbid")
    text: str = pydantic.Field(min_length=1, max_length=2000,
                               description="the fact as one standalone sentence, names not "
                                           "pronouns")
    subject: str = pydantic.Field(min_length=1, max_length=200)
    relation: str = pydantic.Field(min_length=1, max_length=200)
    object: str = pydantic.Field(min_length=1, max_length=200)
    turns: list[int] = pydantic.Field(min_length=1, description="indices of the source turns")
    single_valued: bool = pydantic.Field(
        description="true when the subject has one object for this relation at a time "
                    "(where one lives, one's employer, one's partner)")


class ExtractedFacts(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    facts: list[ExtractedFact] = pydantic.Field(max_length=200)


EXTRACT_PROMPT = """Extract the lasting facts about people, places and things from this \
conversation: standalone sentences that will still make sense later (names instead of \
pronouns; "I" is the speaker). Skip greetings, questions and small talk. For each fact give \
its subject, relation and object, the indices of the turns it comes from, and whether the \
relation is single-valued. Answer with JSON: {{"facts": [{{"text", "subject", "relation", \
"object", "turns", "single_valued"}}]}}.

Conversation:
{turns}"""

CHUNK_TURNS = 40


def llm_facts(llm: Any, turns: Sequence[Turn]) -> list[Fact]:
    """Facts extracted by ``llm`` (one JSON call per :data:`CHUNK_TURNS` turns). A reply
    naming a turn outside its chunk raises :class:`LLMOutputError` (nothing is stored)."""
    chunks = [list(turns[i:i + CHUNK_TURNS]) for i in range(0, len(turns), CHUNK_TURNS)]
    prompts = [EXTRACT_PROMPT.format(turns="\n".join(
        f"[{t.index}] {t.speaker}: {t.content}" for t in chunk)) for chunk in chunks]
    replies = llm.complete_json_many(prompts, ExtractedFacts)
    by_index = {t.index: t for t in turns}
    out: list[Fact] = []
    for chunk, reply in zip(chunks, replies, strict=True):
        allowed = {t.index for t in chunk}
        for fact in reply.facts:
            bad = [i for i in fact.turns if i not in allowed]
            if bad:
                raise LLMOutputError(f"fact extraction named turn(s) {bad} outside "
                                     f"{sorted(allowed)[0]}..{sorted(allowed)[-1]}")
            at = max(by_index[i].at for i in fact.turns)
            rel = canonical_relation(fact.relation)
            single = frozenset({rel}) if fact.single_valued else frozenset()
            out.append(Fact(fact.text.strip(), tuple(sorted(set(fact.turns))), at,
                            ((fact.subject.strip(), rel, fact.object.strip()),), single))
    return out
