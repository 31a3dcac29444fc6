"""The LLM writer: one structured call per document returns its workspace as validated JSON.

The prompt states the paper's rules (atomic entities, exactly two questions per relation,
every entity in some QA pair, the title as an alias). A reply that is not valid JSON for
:class:`~memkit.backends.panini.gsw.RawWorkspace` is retried once with the error shown
(as :meth:`LLM.complete_json` does); what parses is then repaired or rejected by
:func:`~memkit.backends.panini.gsw.normalize`. Costs (calls, prompt and completion tokens)
are measured per document from the completions themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memkit.backends.panini.gsw import RawWorkspace
from memkit.errors import LLMOutputError, LLMUnavailable
from memkit.llm.base import retry_messages, to_messages, validate_json_text

_PROMPT = """Write the document below as a network of entities and question-answer pairs.

Rules:
1. Entities are atomic: one person, place, organisation, work, event, date or number each;
   never bundle two into one name. Give each entity roles with states that say what it is
   in this document, e.g. {{"role": "person", "states": ["architect"]}}.
2. Each relation between two entities is a verb phrase with exactly two questions, one in
   each direction: the first is answered by the object, the second by the subject. A
   question names every other entity explicitly (never "he", "it", "this").
3. Answers are entity ids from your list. A value that is no entity is "TEXT:<value>";
   a question the document does not answer has the answer "None".
4. Every entity is the answer of at least one question.
5. The title "{title}" is an entity. If it names the main subject differently, link the
   two with the phrase "known as".

Example document (title "Heat (1995 film)"):
Heat is a 1995 crime film directed by Michael Mann.
Example reply:
{{"entities": [
  {{"id": "e1", "name": "Heat", "roles": [{{"role": "film", "states": ["crime film"]}}]}},
  {{"id": "e2", "name": "Michael Mann", "roles": [{{"role": "person", "states": ["director"]}}]}},
  {{"id": "e3", "name": "1995", "roles": [{{"role": "date", "states": ["release year"]}}]}},
  {{"id": "e4", "name": "Heat (1995 film)", "roles": [{{"role": "title", "states": []}}]}}],
 "verb_phrases": [
  {{"id": "v1", "phrase": "directed by", "questions": [
    {{"text": "Who directed the film Heat?", "answers": ["e2"]}},
    {{"text": "Which 1995 crime film did Michael Mann direct?", "answers": ["e1"]}}]}},
  {{"id": "v2", "phrase": "released in", "questions": [
    {{"text": "In what year was the film Heat released?", "answers": ["e3"]}},
    {{"text": "Which crime film directed by Michael Mann was released in 1995?",
      "answers": ["e1"]}}]}},
  {{"id": "v3", "phrase": "known as", "questions": [
    {{"text": "What is the article title of the film Heat?", "answers": ["e4"]}},
    {{"text": "Which film is the article Heat (1995 film) about?", "answers": ["e1"]}}]}}]}}

Reply with JSON only, in the same shape.
Document (title "{title}"):
{text}
"""


def workspace_prompt(title: str | None, body: str) -> str:
    """The one prompt per document."""
    t = (title or "untitled").replace('"', "'")
    return _PROMPT.format(title=t, text=body)


@dataclass
class LLMOutcome:
    """What the LLM writer made of one document."""

    raw: RawWorkspace | None
    error: str | None = None  # why no workspace came back
    unavailable: bool = False  # the LLM could not be reached: retry later
    cost: dict[str, int] = field(default_factory=dict)


class LLMWriter:
    """Writes workspaces with an LLM (anything with the memkit LLM interface)."""

    name = "llm"

    def __init__(self, llm: Any, max_tokens: int = 2048) -> None:
        self.llm = llm
        self.max_tokens = max_tokens

    def write(self, docs: Sequence[tuple[str | None, str]]) -> list[LLMOutcome]:
        """One outcome per (title, body): prompts are sent as one batch, failures retried
        once as a second batch."""
        batch = [to_messages(workspace_prompt(t, b)) for t, b in docs]
        try:
            first = self.llm.complete_many(batch, json_schema=RawWorkspace,
                                           max_tokens=self.max_tokens)
        except LLMUnavailable as exc:
            return [LLMOutcome(None, f"LLM unavailable: {exc}", True) for _ in docs]
        out: list[LLMOutcome] = []
        retry: list[int] = []
        retry_batch = []
        for i, c in enumerate(first):
            cost = _cost(c)
            try:
                out.append(LLMOutcome(validate_json_text(c.text, RawWorkspace), cost=cost))
            except LLMOutputError as exc:
                out.append(LLMOutcome(None, str(exc), cost=cost))
                retry.append(i)
                retry_batch.append(retry_messages(batch[i], c.text, str(exc), RawWorkspace))
        if retry_batch:
            try:
                second = self.llm.complete_many(retry_batch, json_schema=RawWorkspace,
                                                max_tokens=self.max_tokens)
            except LLMUnavailable as exc:
                for i in retry:
                    out[i] = LLMOutcome(None, f"LLM unavailable: {exc}", True, out[i].cost)
                return out
            for i, c in zip(retry, second, strict=True):
                cost = {k: v + _cost(c)[k] for k, v in out[i].cost.items()}
                try:
                    out[i] = LLMOutcome(validate_json_text(c.text, RawWorkspace), cost=cost)
                except LLMOutputError as exc:
                    out[i] = LLMOutcome(None, f"invalid workspace JSON after a retry: {exc}",
                                        cost=cost)
        return out


def _cost(c: Any) -> dict[str, int]:
    if getattr(c, "cached", False):
        return {"llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    return {"llm_calls": 1, "prompt_tokens": int(c.prompt_tokens),
            "completion_tokens": int(c.completion_tokens)}
