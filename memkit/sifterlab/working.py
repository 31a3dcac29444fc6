"""The working LLM side of the outcome reward: answer from the top-k units, score by token F1.

:class:`WorkingAgent` wraps any :class:`memkit.llm.base.LLM`; it memoises answers by
``(question, unit ids shown)`` because the rollouts of one prompt share most cut-offs (the
same top-1, the same top-2 …), so a GRPO step asks far fewer questions than rollouts × tiers.

:class:`SimulatedWorkingLLM` is a stand-in working LLM for CPU proofs of the learning loop: it
answers with the gold answer iff one of the question's gold units is in its prompt, otherwise
"I don't know". It is an ordinary LLM, so the training code path is the one a real working
LLM uses. Every result produced with it must be labelled *simulated*.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from memkit.backends.sifter.prefilter import Unit
from memkit.backends.sifter.prompt import answer_messages
from memkit.llm.base import LLM, Completion, GenParams, Message, estimate_prompt_tokens
from memkit.sifterlab.reward import token_f1

__all__ = ["SimulatedWorkingLLM", "WorkingAgent", "extract_answer"]

_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)


def extract_answer(text: str) -> str:
    """The content of ``<answer>…</answer>`` (closing tag optional), else the whole reply.

    >>> extract_answer("I think <answer> Oslo </answer>"), extract_answer("Oslo")
    ('Oslo', 'Oslo')
    """
    m = _ANSWER.search(text)
    return (m.group(1) if m else text).strip()


class WorkingAgent:
    """Answers a question from given units and scores the answer (token F1, best alias)."""

    def __init__(self, llm: LLM, *, max_tokens: int = 64, unit_max_chars: int | None = None,
                 cache: bool = True) -> None:
        self.llm = llm
        self.max_tokens = max_tokens
        self.unit_max_chars = unit_max_chars
        self._cache: dict[tuple[str, tuple[object, ...]], str] | None = {} if cache else None
        self._lock = threading.Lock()
        self.calls = 0
        self.cache_hits = 0

    def answer_many(self, requests: Sequence[tuple[str, Sequence[Unit]]]) -> list[str]:
        """Answers for ``(question, units)`` pairs, from the cache where possible."""
        keys = [(q, tuple(u.uid for u in us)) for q, us in requests]
        out: dict[int, str] = {}
        todo: dict[tuple[str, tuple[object, ...]], list[int]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                if self._cache is not None and key in self._cache:
                    out[i] = self._cache[key]
                    self.cache_hits += 1
                else:
                    todo.setdefault(key, []).append(i)
        if todo:
            firsts = [idxs[0] for idxs in todo.values()]
            prompts = [answer_messages(requests[i][0], requests[i][1], self.unit_max_chars)
                       for i in firsts]
            replies = self.llm.complete_many(prompts, temperature=0.0,
                                             max_tokens=self.max_tokens)
            with self._lock:
                self.calls += len(prompts)
                for (key, idxs), reply in zip(todo.items(), replies, strict=True):
                    answer = extract_answer(reply.text)
                    if self._cache is not None:
                        self._cache[key] = answer
                    for i in idxs:
                        out[i] = answer
        return [out[i] for i in range(len(requests))]

    def scores(self, question: str, gold: str | Sequence[str],
               unit_sets: Sequence[Sequence[Unit]]) -> list[float]:
        """Token F1 of the answers given each unit set (``[]`` = no memory)."""
        answers = self.answer_many([(question, us) for us in unit_sets])
        return [token_f1(a, gold) for a in answers]


@dataclass(frozen=True)
class _Known:
    answer: str
    gold_texts: tuple[str, ...]


class SimulatedWorkingLLM(LLM):
    """SIMULATED working LLM: correct iff a gold unit of the question is in the prompt.

    ``knowledge`` holds ``(question, answer, gold unit texts)`` triples (a question may occur
    several times, e.g. asked over different conversations). The question is read after the
    last ``Question:`` of the prompt; the first of its triples whose gold text (first 200
    characters) occurs in the prompt gives the answer; otherwise it replies "I don't know".
    """

    def __init__(self, knowledge: Iterable[tuple[str, str, Sequence[str]]]) -> None:
        super().__init__("simulated-working-llm")
        self._known: dict[str, list[_Known]] = {}
        for question, answer, texts in knowledge:
            entry = _Known(answer, tuple(t[:200].strip() for t in texts))
            self._known.setdefault(question.strip(), []).append(entry)

    @classmethod
    def from_examples(cls, examples: Iterable[Any]) -> SimulatedWorkingLLM:
        """From :class:`~memkit.sifterlab.data.SifterExample` objects."""
        return cls((e.question, e.answers[0], [e.units[g].text for g in e.gold])
                   for e in examples)

    def _complete(self, messages: list[Message], params: GenParams) -> Completion:
        prompt = "\n".join(m["content"] for m in messages)
        question = prompt.rsplit("Question:", 1)[-1].split("\n", 1)[0].strip()
        answer = "I don't know"
        for known in self._known.get(question, []):
            if any(t and t in prompt for t in known.gold_texts):
                answer = known.answer
                break
        text = f"<answer>{answer}</answer>"
        return Completion(text=text, prompt_tokens=estimate_prompt_tokens(messages),
                          completion_tokens=max(1, len(text) // 4), model=self.model,
                          finish_reason="stop")
