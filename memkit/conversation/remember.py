"""``Memory.remember``: a conversation becomes turn items, fact items and, where a new fact
contradicts an old one, an invalidation -- all in one transaction.

Items written:

* one per turn: text ``"<speaker>: <content>"``, scope = the call's scope with ``session``,
  ``event_from`` = the turn's time, metadata ``{"kind": "turn", "role", "speaker",
  "session", "turn"}``;
* one per new fact (``facts="rules"``, ``"llm"``, or ``"auto"``: the LLM when the memory has
  one): text = the fact, scope = the call's scope (facts are about the user, across
  sessions), ``event_from`` = its source turn's time, ``event_until`` when it was learnt
  after a later contradicting fact, metadata ``{"kind": "fact", "triples", "source_turns",
  "session"}``. A fact that already holds in the scope is not written again.

Contradictions (``contradictions="auto"``: ``"llm"`` when facts come from the LLM, else
``"rules"``; or ``"off"``): under ``"rules"`` a fact contradicts a known one with the same
subject and single-valued relation and another object; under ``"llm"`` the LLM judges, for
each new fact, which known facts about the same subject it makes untrue
(:class:`Judgement`). The contradicted fact is not deleted: it gets an end in event time
(see :mod:`memkit.conversation.ledger`), with an audit row naming both; ``Memory.revert``
undoes it (one chain at a time: a source turn ended with its fact is reverted separately).
Every decision is in :attr:`RememberReport.decisions`.

Limits: under ``"llm"`` the judge sees the facts known before the call (facts of the same
call are placed by the timeline rule only); the ledger tables are not in ``memkit export``
(an imported memory keeps its items and event times, not the fact index).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pydantic

from memkit.conversation import ledger
from memkit.conversation.facts import Fact, llm_facts, rule_facts
from memkit.conversation.turns import Turn, check_label, parse_turns
from memkit.errors import ConfigError, InvalidInput
from memkit.store.sqlite import NewItem, Store, scope_key
from memkit.temporal.times import TimeParser, iso
from memkit.types import Scope

if TYPE_CHECKING:
    from memkit.memory import Memory

FACT_MODES = ("auto", "rules", "llm", "off")
CONTRADICTION_MODES = ("auto", "rules", "llm", "off")


@dataclass
class RememberReport:
    """What ``remember`` did: turn ids (in message order; a repeated identical turn in the
    same scope maps to the existing item), new fact ids, facts already known, and each
    decision with its reason."""

    turns: list[int] = field(default_factory=list)
    facts: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    invalidated: list[int] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"turns": self.turns, "facts": self.facts, "duplicates": self.duplicates,
                "invalidated": self.invalidated, "decisions": self.decisions}


class Judgement(pydantic.BaseModel):
    """The LLM judge's reply: the ids of the known facts the new fact makes untrue."""

    model_config = pydantic.ConfigDict(extra="forbid")
    contradicted: list[int] = pydantic.Field(max_length=100)


JUDGE_PROMPT = """A memory holds these facts about {subject}:
{known}

New fact ({when}): {new}

Which of the listed facts does the new fact make no longer true (a changed address, job, \
partner, status...)? Facts that can both be true are not contradicted. Answer with JSON: \
{{"contradicted": [ids]}}."""


def _scopes(scope: Any, session: Any) -> tuple[Scope, Scope]:
    base = Scope.coerce(scope)
    if session is None:
        return base, base
    label = check_label(session, "session")
    if base.session is not None and base.session != label:
        raise InvalidInput(f"session {label!r} differs from the scope's session "
                           f"{base.session!r}")
    return base, Scope(namespace=base.namespace, user=base.user, agent=base.agent,
                       session=label)


def _modes(mem: Memory, facts: Any, contradictions: Any) -> tuple[str, str]:
    if facts not in FACT_MODES:
        raise InvalidInput(f"facts must be one of {FACT_MODES}, got {facts!r}")
    if contradictions not in CONTRADICTION_MODES:
        raise InvalidInput(f"contradictions must be one of {CONTRADICTION_MODES}, got "
                           f"{contradictions!r}")
    if facts == "auto":
        facts = "llm" if mem.llm is not None else "rules"
    if "llm" in (facts, contradictions) and mem.llm is None:
        raise ConfigError("LLM fact extraction or judging needs an LLM: "
                          "Memory.open(..., llm=...), or facts='rules'")
    if contradictions == "auto":
        contradictions = "llm" if facts == "llm" else "rules"
    return facts, contradictions


def _turn_item(turn: Turn, scope: Scope, session: str | None) -> NewItem:
    return NewItem(text=turn.text, scope=scope, source=f"chat:{session}" if session else "chat",
                   metadata={"kind": "turn", "role": turn.role, "speaker": turn.speaker,
                             "session": session, "turn": turn.index, "at": iso(turn.at)},
                   event_from=turn.at)


def remember(mem: Memory, messages: Any, scope: Any = None, *, session: Any = None,
             at: Any = None, facts: str = "auto", contradictions: str = "auto") -> RememberReport:
    """See the module docstring. Raises InvalidInput (storing nothing) on any bad message."""
    fact_mode, judge_mode = _modes(mem, facts, contradictions)
    base, turn_scope = _scopes(scope, session)
    parse_time = TimeParser()
    default_at = time.time() if at is None else parse_time(at, "at")
    turns = parse_turns(messages, at=default_at, max_chars=mem.config.max_item_chars,
                        parse_time=parse_time)
    found: list[Fact] = []
    if fact_mode == "rules":
        found = rule_facts(turns)
    elif fact_mode == "llm":
        found = llm_facts(mem.llm, turns)
    found = [f for f in found if len(f.text) <= mem.config.max_item_chars]
    key = scope_key(base)
    ledger.ensure_tables(mem.store)
    judged = _judge(mem, found, key) if judge_mode == "llm" else {}
    report = RememberReport()
    sid = turn_scope.session
    with mem._recording() as store:
        written = store.insert_items([_turn_item(t, turn_scope, sid) for t in turns])
        report.turns = [iid for iid, _ in written]
        for n, fact in enumerate(found):
            _place_fact(store, fact, n, base, key, sid, report, judge_mode, judged)
    return report


def _judge(mem: Memory, found: Sequence[Fact], key: str) -> dict[int, set[int]]:
    """For each new fact (by position): the root ids of known facts the LLM says it makes
    untrue. Only facts known before this call are judged (one LLM call per new fact that has
    known facts about its subject)."""
    prompts, owners, allowed = [], [], []
    for n, fact in enumerate(found):
        subject = fact.triples[0][0]
        known = [k for k in ledger.known_facts(mem.store, key, subject)
                 if k.item.event_until is None]
        if not known:
            continue
        listing = "\n".join(f"[{k.item.root_id}] {k.item.text}" for k in known)
        prompts.append(JUDGE_PROMPT.format(subject=subject, known=listing, new=fact.text,
                                           when=iso(fact.at)))
        owners.append(n)
        allowed.append({k.item.root_id for k in known})
    out: dict[int, set[int]] = {}
    if prompts:
        assert mem.llm is not None
        for n, ok, reply in zip(owners, allowed, mem.llm.complete_json_many(prompts, Judgement),
                                strict=True):
            out[n] = {i for i in reply.contradicted if i in ok}
    return out


def _fact_texts(fact: Fact) -> Iterator[str]:
    """The fact's text dated by day; then by the second, then numbered, for the rare fact
    whose dated text is already taken by an ended episode of the same fact."""
    stamp = iso(fact.at) or ""
    yield f"{fact.text} (as of {stamp[:10]})"
    yield f"{fact.text} (as of {stamp})"
    n = 2
    while True:
        yield f"{fact.text} (as of {stamp}, #{n})"
        n += 1


def _place_fact(store: Store, fact: Fact, n: int, scope: Scope, key: str, session: str | None,
                report: RememberReport, judge_mode: str, judged: dict[int, set[int]]) -> None:
    turn_ids = [report.turns[i] for i in fact.turns]
    until: float | None = None
    ends: list[Any] = []
    why = ""
    for subj, rel, obj in fact.triples:
        known = ledger.known_facts(store, key, subj)
        same_key = [k for k in known if k.relation == ledger.norm(rel)]
        rivals: list[ledger.Known] = []
        if judge_mode == "llm":
            chosen = judged.get(n, set())
            rivals = [k for k in known if k.item.root_id in chosen]
            why = "the LLM judge said the new fact makes it untrue"
        elif judge_mode == "rules" and rel in fact.single_valued:
            rivals = same_key
            why = f"same subject '{subj}' and single-valued relation '{rel}', new object " \
                  f"'{obj}'"
        place = ledger.plan(fact.at, obj, same_key, rivals)
        if place.duplicate_of is not None:
            dup = place.duplicate_of
            report.duplicates.append(dup.id)
            report.decisions.append({"action": "duplicate", "fact": fact.text, "item": dup.id,
                                     "why": place.why})
            ledger.record_fact(store, dup, key, (), fact.single_valued, turn_ids, fact.at)
            return
        if place.until is not None:
            until = place.until if until is None else min(until, place.until)
        ends.extend(place.ends)
    meta = {"kind": "fact", "triples": [list(t) for t in fact.triples],
            "source_turns": turn_ids, "session": session, "at": iso(fact.at)}
    for text in _fact_texts(fact):
        new = NewItem(text=text, scope=scope, source="chat:fact", metadata=meta,
                      event_from=fact.at, event_until=until)
        (iid, created), = store.insert_items([new])
        item = store.get(iid)
        if created or item.holds_at(fact.at):
            break  # new, or the same text already holds then: a duplicate
    if not created:
        report.duplicates.append(iid)
        report.decisions.append({"action": "duplicate", "fact": fact.text, "item": iid,
                                 "why": "the same text is already current in this scope"})
        return
    ledger.record_fact(store, item, key, fact.triples, fact.single_valued, turn_ids,
                       fact.at)
    report.facts.append(iid)
    report.decisions.append({"action": "added", "fact": fact.text, "item": iid,
                             "event_until": until,
                             "why": "bounded by a later known fact" if until else "new"})
    placement = ledger.Placement(ends=tuple({k.item.id: k for k in ends}.values()))
    for done in ledger.apply_ends(store, placement, fact.at, iid, why, key):
        if done["action"] == "invalidated":
            report.invalidated.append(done["item"])
        else:
            report.facts.append(done["item"])
        report.decisions.append(done)
