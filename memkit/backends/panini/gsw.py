"""The workspace model: a document as a small network of entities and question-answer pairs.

A *generative semantic workspace* (GSW) holds, for one source item:

* entities: ``{id, name, roles: [{role, states}]}`` - atomic (people, places, dates, titles);
* verb phrases: ``{id, phrase, questions: [{text, answers}]}`` where each answer is an entity
  id, a literal (``"TEXT:..."``) or ``"None"``; a relation has two questions, one in each
  direction.

:class:`RawWorkspace` is what a writer (an LLM or the parser) hands in; :func:`normalize`
repairs what is safe to repair (answers given by name, unknown ids, unconnected entities) and
rejects the rest with a reason (:class:`WorkspaceRejected`).

>>> raw = RawWorkspace.model_validate({
...     "entities": [{"id": "e1", "name": "Alice", "roles": [{"role": "person", "states": []}]},
...                  {"id": "e2", "name": "Paris", "roles": [{"role": "city", "states": []}]}],
...     "verb_phrases": [{"id": "v1", "phrase": "lives in", "questions": [
...         {"text": "Where does Alice live?", "answers": ["e2"]},
...         {"text": "Who lives in Paris?", "answers": ["Alice"]}]}]})
>>> ws, repairs = normalize(raw)
>>> [(q.text, [a.entity for a in q.answers]) for q in ws.verb_phrases[0].questions]
[('Where does Alice live?', ['e2']), ('Who lives in Paris?', ['e1'])]
>>> repairs
["answer 'Alice' given by name, mapped to e1"]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import AliasChoices, BaseModel, Field, field_validator

from memkit.errors import MemkitError

_NONE_ANSWERS = {"", "none", "null", "n/a", "unknown"}
_ID_LIKE = re.compile(r"^[A-Za-z]{0,3}\d+$")


class WorkspaceRejected(MemkitError):
    """A workspace that cannot be repaired safely; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# ---- what writers hand in (lenient pydantic models, also the LLM's JSON schema) ----------
class RawRole(BaseModel):
    role: str
    states: list[str] = Field(default_factory=list)

    @field_validator("states", mode="before")
    @classmethod
    def _states(cls, v: Any) -> Any:
        if v is None:
            return []
        return [v] if isinstance(v, str) else v


class RawEntity(BaseModel):
    id: str
    name: str
    roles: list[RawRole] = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @field_validator("roles", mode="before")
    @classmethod
    def _roles(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            return [{"role": v, "states": []}]
        return [{"role": r, "states": []} if isinstance(r, str) else r for r in v]


class RawQuestion(BaseModel):
    text: str = Field(validation_alias=AliasChoices("text", "question"))
    answers: list[str] = Field(default_factory=list)

    @field_validator("answers", mode="before")
    @classmethod
    def _answers(cls, v: Any) -> Any:
        if v is None:
            return ["None"]
        if isinstance(v, (str, int)):
            v = [v]
        return [str(a) if isinstance(a, int) else a for a in v]


class RawVerbPhrase(BaseModel):
    id: str = ""
    phrase: str
    questions: list[RawQuestion] = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        return "" if v is None else str(v)


class RawWorkspace(BaseModel):
    """A document's workspace as a writer produces it (validated JSON from an LLM). Both
    lists are required, so a reply without them is retried with the error shown."""

    entities: list[RawEntity] = Field(
        validation_alias=AliasChoices("entities", "entity_nodes"))
    verb_phrases: list[RawVerbPhrase] = Field(
        validation_alias=AliasChoices("verb_phrases", "verb_phrase_nodes"))


# ---- the normalised model ----------------------------------------------------------------
@dataclass(frozen=True)
class Role:
    role: str
    states: tuple[str, ...] = ()


@dataclass
class Entity:
    """An entity of one document; ``key`` is its id inside the document's workspace."""

    key: str
    name: str
    roles: list[Role] = field(default_factory=list)

    def search_text(self) -> str:
        """What entity search matches: "name — roles: role: states | role"."""
        return entity_search_text(self.name, self.roles)

    def rolestate(self) -> str:
        return rolestate_text(self.roles)


@dataclass(frozen=True)
class Answer:
    """One answer: an entity of the same workspace (``entity`` = its key) or literal text."""

    entity: str | None = None
    text: str | None = None


@dataclass
class Question:
    text: str
    answers: list[Answer] = field(default_factory=list)  # empty = no answer ("None")


@dataclass
class VerbPhrase:
    key: str
    phrase: str
    questions: list[Question] = field(default_factory=list)


@dataclass
class Workspace:
    entities: list[Entity] = field(default_factory=list)
    verb_phrases: list[VerbPhrase] = field(default_factory=list)

    def entity(self, key: str) -> Entity:
        for e in self.entities:
            if e.key == key:
                return e
        raise KeyError(key)

    def qa_count(self) -> int:
        return sum(1 for vp in self.verb_phrases for q in vp.questions if q.answers)


def rolestate_text(roles: list[Role] | tuple[Role, ...]) -> str:
    """``"role: s1, s2 | role2"`` (empty when no roles)."""
    parts = []
    for r in roles:
        parts.append(f"{r.role}: {', '.join(r.states)}" if r.states else r.role)
    return " | ".join(parts)


def entity_search_text(name: str, roles: list[Role] | tuple[Role, ...]) -> str:
    rs = rolestate_text(roles)
    return f"{name} — roles: {rs}" if rs else name


def _clean(s: str) -> str:
    return " ".join(s.split())


def normalize(raw: RawWorkspace, title: str | None = None,
              max_unknown_fraction: float = 0.5) -> tuple[Workspace, list[str]]:
    """Validate and repair a writer's workspace; returns it and the repairs made.

    Repairs (recorded): answers given by name instead of id, unknown ids dropped, duplicated
    entity ids with the same name merged, nameless entities and empty questions dropped,
    entities in no QA pair dropped, phrases without questions dropped; a relation with other
    than two questions and a missing title alias are noted. Rejected (WorkspaceRejected):
    one id used for two different names, more than ``max_unknown_fraction`` of the answer
    references unresolvable, or no answered question left.
    """
    repairs: list[str] = []
    entities: dict[str, Entity] = {}
    for e in raw.entities:
        key, name = _clean(e.id), _clean(e.name)
        if not name:
            repairs.append(f"entity {key!r} has no name, dropped")
            continue
        if not key:
            key = f"_e{len(entities) + 1}"
            repairs.append(f"entity {name!r} had no id, given {key}")
        roles = [Role(_clean(r.role), tuple(_clean(s) for s in r.states if _clean(s)))
                 for r in e.roles if _clean(r.role)]
        if key in entities:
            if entities[key].name.casefold() != name.casefold():
                raise WorkspaceRejected(
                    f"entity id {key!r} names both {entities[key].name!r} and {name!r}")
            entities[key].roles.extend(r for r in roles if r not in entities[key].roles)
            repairs.append(f"entity id {key!r} repeated, merged")
            continue
        entities[key] = Entity(key, name, roles)
    by_name: dict[str, str] = {}
    for ent in entities.values():
        by_name.setdefault(ent.name.casefold(), ent.key)

    refs = unresolved = 0
    phrases: list[VerbPhrase] = []
    for n, vp in enumerate(raw.verb_phrases, start=1):
        key = _clean(vp.id) or f"_v{n}"
        questions: list[Question] = []
        for q in vp.questions:
            text = _clean(q.text)
            if not text:
                repairs.append(f"empty question in phrase {key!r} dropped")
                continue
            answers: list[Answer] = []
            for a in q.answers:
                a = _clean(a)
                if a.casefold() in _NONE_ANSWERS:
                    continue
                refs += 1
                if a.upper().startswith("TEXT:"):
                    lit = _clean(a[5:])
                    if lit:
                        answers.append(Answer(text=lit))
                elif a in entities:
                    answers.append(Answer(entity=a))
                elif a.casefold() in by_name:
                    answers.append(Answer(entity=by_name[a.casefold()]))
                    repairs.append(f"answer {a!r} given by name, mapped to {by_name[a.casefold()]}")
                elif _ID_LIKE.match(a):
                    unresolved += 1
                    repairs.append(f"unknown entity id {a!r} in {text!r} dropped")
                else:
                    answers.append(Answer(text=a))
                    repairs.append(f"answer {a!r} is no entity id, kept as literal text")
            if q.answers and not answers and any(
                    _clean(a).casefold() not in _NONE_ANSWERS for a in q.answers):
                repairs.append(f"question {text!r} lost all its answers")
            questions.append(Question(text, list(dict.fromkeys(answers))))
        if not questions:
            repairs.append(f"phrase {key!r} ({vp.phrase!r}) has no questions, dropped")
            continue
        if len(questions) != 2:
            repairs.append(f"phrase {key!r} has {len(questions)} question(s), expected 2")
        phrases.append(VerbPhrase(key, _clean(vp.phrase), questions))

    if refs and unresolved / refs > max_unknown_fraction:
        raise WorkspaceRejected(
            f"{unresolved} of {refs} answer references are unknown entity ids")
    used = {a.entity for vp in phrases for q in vp.questions for a in q.answers if a.entity}
    for key in list(entities):
        if key not in used:
            repairs.append(f"entity {key!r} ({entities[key].name!r}) is in no QA pair, dropped")
            del entities[key]
    ws = Workspace(list(entities.values()), phrases)
    if ws.qa_count() == 0:
        raise WorkspaceRejected("no answered question in the workspace")
    if title and not any(title.casefold() in e.name.casefold() for e in ws.entities):
        repairs.append(f"title {title!r} is not among the entities")
    return ws, repairs
