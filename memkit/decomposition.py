"""Question decomposition into a DAG of sub-questions linked by ``<ENTITY_Qn>`` placeholders.

Shared by the backends that decompose a question (panini's beam search over the QA network,
hipporag's decomposed graph seeding): one prompt, one parser, one validator.

Three sources, each labelled in :attr:`Decomposition.mode`:

* ``"llm"`` - one validated-JSON call (:func:`decompose_llm`);
* ``"single"`` - pass-through: the question itself, one hop (no LLM configured, or a
  decomposition that could not be used; ``fallback`` then says why);
* ``"oracle"`` - a gold decomposition such as MuSiQue's ``question_decomposition``
  (:func:`from_musique`), for analysis only.

>>> d = validate(["Who directed Casablanca?", "Who was <ENTITY_Q1>'s spouse?"], "q")
>>> [(s.text, s.deps) for s in d.questions]
[('Who directed Casablanca?', ()), ("Who was <ENTITY_Q1>'s spouse?", (0,))]
>>> validate(["Who is <ENTITY_Q2>?", "x"], "Who is it?").fallback
'sub-question 1 refers to <ENTITY_Q2>, which is not an earlier sub-question'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from memkit.errors import LLMError

PLACEHOLDER = re.compile(r"<ENTITY_Q(\d+)>")


class SubQuestionModel(BaseModel):
    question: str
    requires_retrieval: bool = True


class DecompositionModel(BaseModel):
    """The JSON the decomposition LLM call must return."""

    questions: list[SubQuestionModel] = Field(default_factory=list)


@dataclass(frozen=True)
class SubQuestion:
    text: str
    requires_retrieval: bool = True
    deps: tuple[int, ...] = ()  # 0-based indices of the sub-questions it refers to


@dataclass
class Decomposition:
    question: str
    questions: list[SubQuestion]
    mode: str  # "llm" | "single" | "oracle" | "given"
    fallback: str | None = None  # why a decomposition was replaced by a single hop
    cost: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "fallback": self.fallback,
                "questions": [{"question": s.text, "requires_retrieval": s.requires_retrieval}
                              for s in self.questions]}


def single_hop(question: str, mode: str = "single", reason: str | None = None) -> Decomposition:
    """The pass-through decomposition: the question is its own only hop."""
    return Decomposition(question, [SubQuestion(question.strip())], mode, reason)


def validate(questions: Sequence[str | tuple[str, bool]], original: str,
             mode: str = "given") -> Decomposition:
    """Build a decomposition, checking every placeholder refers to an earlier sub-question;
    falls back to :func:`single_hop` (recording why) when it does not or when empty."""
    subs: list[SubQuestion] = []
    for n, q in enumerate(questions):
        text, retrieval = (q, True) if isinstance(q, str) else (q[0], bool(q[1]))
        text = " ".join(str(text).split())
        if not text:
            return single_hop(original, reason=f"sub-question {n + 1} is empty")
        deps = []
        for ref in PLACEHOLDER.findall(text):
            idx = int(ref) - 1
            if not 0 <= idx < n:
                return single_hop(original, reason=(
                    f"sub-question {n + 1} refers to <ENTITY_Q{ref}>, which is not an earlier "
                    "sub-question"))
            if idx not in deps:
                deps.append(idx)
        subs.append(SubQuestion(text, retrieval, tuple(deps)))
    if not subs:
        return single_hop(original, reason="no sub-questions")
    if not any(s.requires_retrieval for s in subs):
        return single_hop(original, reason="no sub-question requires retrieval")
    return Decomposition(original, subs, mode)


_PROMPT = """Split a question into the shortest chain of simple single-fact questions.
Each sub-question asks for exactly one fact. Refer to the answer of an earlier sub-question n
with the placeholder <ENTITY_Qn> (n counts from 1). A sub-question that only compares or
combines earlier answers does not need retrieval. Do not split a question that asks for a
single fact.

Example: "What is the birth year of the spouse of the director of Casablanca?"
{{"questions": [
  {{"question": "Who directed Casablanca?", "requires_retrieval": true}},
  {{"question": "Who is the spouse of <ENTITY_Q1>?", "requires_retrieval": true}},
  {{"question": "What is the birth year of <ENTITY_Q2>?", "requires_retrieval": true}}]}}

Example: "Which film came out first, Dune or Heat?"
{{"questions": [
  {{"question": "When did Dune come out?", "requires_retrieval": true}},
  {{"question": "When did Heat come out?", "requires_retrieval": true}},
  {{"question": "Which is earlier, <ENTITY_Q1> or <ENTITY_Q2>?", "requires_retrieval": false}}]}}

Reply with JSON only, in the same shape.
Question to decompose: "{question}"
"""


def decomposition_prompt(question: str) -> str:
    return _PROMPT.format(question=question.replace('"', "'"))


def decompose_llm(llm: Any, question: str) -> Decomposition:
    """One JSON call; an unusable reply (invalid JSON after the retry, bad placeholders)
    falls back to a single hop with the reason recorded. Transport errors propagate.
    ``cost`` holds this call's LLM calls and tokens, metered in this context (so concurrent
    reads on one LLM each see their own)."""
    from memkit.metering import metered

    with metered() as spent:
        try:
            parsed = llm.complete_json(decomposition_prompt(question), DecompositionModel,
                                       max_tokens=384)
        except LLMError as exc:
            from memkit.errors import LLMUnavailable

            if isinstance(exc, LLMUnavailable):
                raise
            parsed = None
            reason = f"decomposition output unusable: {str(exc)[:200]}"
    if parsed is None:
        d = single_hop(question, reason=reason)
    else:
        d = validate([(q.question, q.requires_retrieval) for q in parsed.questions], question,
                     mode="llm")
        if d.fallback is None:
            d.mode = "llm"
    d.cost = spent.llm_counts()
    return d


_MUSIQUE_REF = re.compile(r"#(\d+)")


def musique_subquestion(text: str) -> str:
    """MuSiQue hop text as a question: "#k" becomes <ENTITY_Qk>; "X >> relation" (a
    Wikidata-style hop) becomes "What is the relation of X?".

    >>> musique_subquestion("#1 >> capital")
    'What is the capital of <ENTITY_Q1>?'
    >>> musique_subquestion("Who founded #2?")
    'Who founded <ENTITY_Q2>?'
    """
    text = _MUSIQUE_REF.sub(lambda m: f"<ENTITY_Q{m.group(1)}>", text.strip())
    if ">>" in text:
        subject, _, relation = (p.strip() for p in text.partition(">>"))
        first = relation.split()[0] if relation.split() else ""
        if first.endswith("ed") or first in ("member", "part", "instance", "located"):
            return f"{subject} {relation} what?"
        return f"What is the {relation} of {subject}?"
    return text if text.endswith("?") else text + "?"


def from_musique(question: str, hops: Sequence[dict[str, Any]]) -> Decomposition:
    """An *oracle* decomposition from MuSiQue's gold ``question_decomposition`` (the gold
    answers are not used: placeholders are filled by the beams). Analysis only."""
    d = validate([musique_subquestion(h["question"]) for h in hops], question, mode="oracle")
    if d.fallback is not None:
        d.mode = "oracle"  # still labelled: the gold data was looked at
    return d
