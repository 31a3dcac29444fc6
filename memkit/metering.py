"""Per-operation cost meters that are safe under concurrent reads.

A read opens a meter (``with metered() as cost:``); every LLM completion and embedding call
made *in that context* (the same thread, or a task that copied its context) is charged to it.
Nothing is read back from shared objects afterwards, so two concurrent reads each see exactly
their own calls. Nested LLM wrappers (a cache around a model) are charged once, at the
outermost call.

>>> from memkit.types import Cost
>>> with metered() as outer:
...     charge_llm(prompt_tokens=10, completion_tokens=2)
...     with metered() as inner:
...         charge_llm(prompt_tokens=5, completion_tokens=1, cached=True)
>>> (outer.llm_calls, outer.cached_llm_calls, outer.prompt_tokens, inner.cached_llm_calls)
(1, 1, 10, 1)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from memkit.types import Cost

_meters: ContextVar[tuple[Cost, ...]] = ContextVar("memkit_meters", default=())
_inside_llm: ContextVar[bool] = ContextVar("memkit_inside_llm", default=False)


@contextmanager
def metered() -> Iterator[Cost]:
    """A fresh :class:`Cost` that collects what is spent inside the ``with`` block."""
    cost = Cost()
    token = _meters.set((*_meters.get(), cost))
    try:
        yield cost
    finally:
        _meters.reset(token)


@contextmanager
def llm_call() -> Iterator[bool]:
    """Mark an LLM call in progress; yields True when this is the outermost one (the one to
    charge). Inner calls (a cache asking its model) are not charged again."""
    outermost = not _inside_llm.get()
    token = _inside_llm.set(True)
    try:
        yield outermost
    finally:
        _inside_llm.reset(token)


def charge_llm(prompt_tokens: int, completion_tokens: int, cached: bool = False) -> None:
    """Charge one completion to every open meter."""
    for cost in _meters.get():
        if cached:
            cost.cached_llm_calls += 1
            continue
        cost.llm_calls += 1
        cost.prompt_tokens += int(prompt_tokens)
        cost.completion_tokens += int(completion_tokens)


def charge_embed(texts: int) -> None:
    """Charge one embedding call of ``texts`` strings to every open meter."""
    for cost in _meters.get():
        cost.embed_calls += 1
        cost.embedded_texts += int(texts)
