"""Answer a question from retrieved memories with one LLM call (HippoRAG-style reading).

Passages with a title are shown as ``Wikipedia Title: <title>`` blocks, other memories as plain
blocks; the model is asked to answer after ``Answer:`` and to say ``No Answer`` when the
memories do not contain the answer (which is detected as abstention).

>>> from memkit.llm.fake import ScriptedLLM
>>> from memkit.types import Hit, MemoryItem, ReadResult, Scope
>>> llm = ScriptedLLM({r"Question: Who": "The memories say it was Alice.\\nAnswer: Alice"})
>>> item = MemoryItem(1, "Alice moved to Paris.", Scope(), None, 0.0, 1.0, None, {}, "h")
>>> answer_from_hits(llm, "Who moved?", ReadResult("Who moved?", [Hit(item, 1.0, "dense")])).text
'Alice'
>>> answer_from_hits(llm, "Who moved?", ReadResult("Who moved?", [])).text  # nothing to read
'No Answer'
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memkit.fusion import approx_tokens
from memkit.types import Cost, Hit, ReadResult

INSTRUCTION = (
    "As a careful reading-comprehension assistant, answer the question using only the "
    "passages given. Think briefly if needed, then give the answer after 'Answer:' as a short "
    "phrase (an entity, date, number or a few words), not a sentence. If the passages do not "
    "contain the answer, reply 'Answer: No Answer'."
)

ONE_SHOT = (
    "Wikipedia Title: Milk and Honey (album)\n"
    "Milk and Honey is an album by John Lennon and Yoko Ono released in 1984.\n\n"
    "Wikipedia Title: John Lennon\n"
    "John Winston Ono Lennon was an English singer, songwriter and peace activist who "
    "co-founded the Beatles.\n\n"
    "Question: Which band was the performer of Milk and Honey a co-founder of?\n"
    "Thought: Milk and Honey is by John Lennon and Yoko Ono. John Lennon co-founded the "
    "Beatles.\n"
    "Answer: the Beatles"
)

_ABSTAIN = re.compile(
    r"^\W*(no answer|none|unknown|not (mentioned|stated|given|specified|available|known)|"
    r"(i )?(do not|don't|cannot|can't) (know|answer|tell|say)|unanswerable|"
    r"(the )?(passages|memories|context) do(es)? not (say|mention|contain|state).*|"
    r"(there is )?no (information|mention).*|insufficient information)\W*$",
    re.IGNORECASE,
)


@dataclass
class Answer:
    """A reader's answer: text, whether it abstained, the memories it was given (ids), the
    context size in (approximate) tokens, and what the call cost."""

    text: str
    abstained: bool
    cited_ids: list[int] = field(default_factory=list)
    context_tokens: int = 0
    cost: Cost = field(default_factory=Cost)
    raw: str = ""


def format_hit(hit: Hit) -> str:
    """A passage block: ``Wikipedia Title: t`` + body for titled memories, plain text otherwise."""
    title = hit.item.metadata.get("title") if isinstance(hit.item.metadata, dict) else None
    text = hit.item.text
    if title:
        body = text[len(title) + 1 :] if text.startswith(f"{title}\n") else text
        return f"Wikipedia Title: {title}\n{body.strip()}"
    return text.strip()


def select_hits(hits: Sequence[Hit], max_context_tokens: int | None) -> list[Hit]:
    """The leading hits whose blocks fit in ``max_context_tokens`` (at least one hit)."""
    if max_context_tokens is None:
        return list(hits)
    out: list[Hit] = []
    used = 0
    for hit in hits:
        cost = approx_tokens(format_hit(hit))
        if out and used + cost > max_context_tokens:
            break
        out.append(hit)
        used += cost
    return out


def compact_evidence(hits: Sequence[Hit]) -> str | None:
    """The compact evidence a backend rendered for the whole read (Panini's QA chains), if
    any: ``evidence["rendered"]``, at the top level or under a backend's name in a fused read.
    """
    for hit in hits:
        ev = hit.evidence
        candidates = [ev, *(v for v in ev.values() if isinstance(v, dict))]
        for cand in candidates:
            rendered = cand.get("rendered")
            if isinstance(rendered, str) and rendered.strip():
                return rendered.strip()
    return None


def reader_context(hits: Sequence[Hit]) -> str:
    """What the reader is shown: a backend's compact evidence, else the passages."""
    return compact_evidence(hits) or "\n\n".join(format_hit(h) for h in hits)


def build_prompt(
    question: str, hits: Sequence[Hit], *, one_shot: bool = True
) -> list[dict[str, str]]:
    """The chat messages for one reading call."""
    context = reader_context(hits) or "(no passages)"
    user = f"{context}\n\nQuestion: {question.strip()}\nThought:"
    messages = [{"role": "system", "content": INSTRUCTION}]
    if one_shot:
        messages += [
            {"role": "user", "content": ONE_SHOT.rsplit("\nThought:", 1)[0] + "\nThought:"},
            {"role": "assistant", "content": ONE_SHOT.rsplit("\nThought:", 1)[1].strip()},
        ]
    messages.append({"role": "user", "content": user})
    return messages


def parse_answer(raw: str) -> tuple[str, bool]:
    """(answer text, abstained) from a model reply: the text after the last ``Answer:``, else
    the reply's last non-empty line.

    >>> parse_answer("Thought: x.\\nAnswer: Paris."), parse_answer("Answer: No Answer")
    (('Paris', False), ('No Answer', True))
    """
    text = raw.strip()
    match = list(re.finditer(r"answer\s*:", text, re.IGNORECASE))
    if match:
        text = text[match[-1].end() :]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "", True
    answer = lines[0] if match else lines[-1]
    answer = answer.strip().strip("*").strip()
    answer = re.sub(r"[.。]+$", "", answer).strip()
    return answer, bool(_ABSTAIN.match(answer)) or not answer


def answer_from_hits(
    llm: Any,
    question: str,
    read_result: ReadResult,
    *,
    max_context_tokens: int | None = None,
    max_tokens: int = 128,
    one_shot: bool = True,
) -> Answer:
    """One reading call over the hits of ``read_result``. ``llm`` is a memkit LLM."""
    hits = select_hits(read_result.hits, max_context_tokens)
    if not hits:  # nothing in memory supports an answer (e.g. Panini found no chain)
        return Answer(text="No Answer", abstained=True)
    messages = build_prompt(question, hits, one_shot=one_shot)
    compact = compact_evidence(hits)
    context_tokens = approx_tokens(compact) if compact else \
        sum(approx_tokens(format_hit(h)) for h in hits)
    t0 = time.perf_counter()
    completion = llm.complete(messages, temperature=0, max_tokens=max_tokens)
    ms = (time.perf_counter() - t0) * 1000
    text, abstained = parse_answer(completion.text)
    cost = Cost(
        ms=ms,
        llm_calls=1,
        prompt_tokens=int(completion.prompt_tokens),
        completion_tokens=int(completion.completion_tokens),
    )
    return Answer(
        text=text,
        abstained=abstained,
        cited_ids=[h.item.id for h in hits],
        context_tokens=context_tokens,
        cost=cost,
        raw=completion.text,
    )
