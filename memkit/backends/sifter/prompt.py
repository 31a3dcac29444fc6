"""The proxy's prompt: the prefiltered units in the paper's layout, then the task.

Each unit is rendered ``<session{i}> <date>…</date>`` + its text + ``</session>``, where ``i``
is its index in the prefiltered (chronological) list; the task asks for a short reasoning in
``<think>…</think>`` and then the ``min(top_n, N)`` most useful indices, most useful first, in
``<ranking>…</ranking>``. The same layout serves the zero-shot use of any instruction-tuned
model and the trained proxy; :class:`PromptConfig` lets a user change the wording.

>>> from memkit.backends.sifter.prefilter import Unit
>>> print(render_units([Unit("s1", "Ann: I moved to Oslo.", date="8 May 2023")]))
<session0> <date>8 May 2023</date>
Ann: I moved to Oslo.
</session>
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memkit.backends.sifter.prefilter import Unit

__all__ = ["PromptConfig", "build_messages", "render_unit", "render_units", "answer_messages"]

SYSTEM = (
    "You are a memory retrieval assistant. You read an agent's past conversation sessions and "
    "rank them by how useful they are for answering the user's current question."
)

TASK = (
    "Above are {n} history sessions, numbered session0 to session{last}.\n"
    "Current question: {query}\n\n"
    "Find the sessions that contain the information needed to answer the question. "
    "First reason briefly inside <think> </think>. Then output exactly {k} distinct session "
    "numbers, the most useful first, comma-separated inside <ranking> </ranking>, for example "
    "<ranking>{example}</ranking>. Output nothing after </ranking>."
)

ANSWER_SYSTEM = "You are a helpful assistant with a memory of past conversations."

ANSWER_TASK = (
    "{history}\n\nQuestion: {question}\n"
    "Answer the question using the memories above when they help. Reply with a short answer "
    "(a few words) wrapped in <answer> </answer>."
)


def render_unit(index: int, unit: Unit, max_chars: int | None = None) -> str:
    """One unit in the paper's layout (text cut to ``max_chars`` when given)."""
    text = unit.text if max_chars is None else unit.text[:max_chars]
    head = f"<session{index}>" + (f" <date>{unit.date}</date>" if unit.date else "")
    return f"{head}\n{text.strip()}\n</session>"


def render_units(units: Sequence[Unit], max_chars: int | None = None) -> str:
    return "\n".join(render_unit(i, u, max_chars) for i, u in enumerate(units))


@dataclass(frozen=True)
class PromptConfig:
    """Wording of the proxy prompt. ``{n}``, ``{last}``, ``{query}``, ``{k}``, ``{example}``
    are filled in ``task``; ``system=None`` sends a single user message."""

    system: str | None = SYSTEM
    task: str = TASK
    top_n: int = 10
    unit_max_chars: int | None = None


def build_messages(query: str, units: Sequence[Unit],
                   config: PromptConfig = PromptConfig()) -> list[dict[str, str]]:
    """Chat messages asking the proxy to rank ``units`` (already prefiltered) for ``query``."""
    n = len(units)
    k = min(config.top_n, n)
    example = ",".join(str(i) for i in _example_ids(n, k))
    task = config.task.format(n=n, last=max(n - 1, 0), query=query, k=k, example=example)
    user = render_units(units, config.unit_max_chars) + "\n\n" + task
    messages = [{"role": "user", "content": user}]
    if config.system:
        messages.insert(0, {"role": "system", "content": config.system})
    return messages


def _example_ids(n: int, k: int) -> list[int]:
    """A fixed-looking example ordering (not 0,1,2…, so the model does not copy order)."""
    ids = list(range(n))
    ids = ids[1::2][::-1] + ids[0::2]
    return ids[:k]


def answer_messages(question: str, units: Sequence[Unit],
                    max_chars: int | None = None) -> list[dict[str, str]]:
    """The working LLM's prompt: the given units (may be none), then the question."""
    history = render_units(units, max_chars) if units else "(no memories)"
    return [
        {"role": "system", "content": ANSWER_SYSTEM},
        {"role": "user", "content": ANSWER_TASK.format(history=history, question=question)},
    ]
