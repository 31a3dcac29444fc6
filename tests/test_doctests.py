"""The worked examples in module docstrings run and give the values they show (in the
default run; CI also runs ``--doctest-modules memkit`` over every module)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "memkit.llm",
    "memkit.llm.base",
    "memkit.llm.cache",
    "memkit.llm.fake",
    "memkit.llm.jsonrepair",
    "memkit.llm.openai_compat",
    "memkit.decomposition",
    "memkit.backends.hipporag.decomposed",
    "memkit.temporal.times",
    "memkit.temporal.truth",
    "memkit.conversation.turns",
    "memkit.conversation.facts",
    "memkit.temporal.query",
]
NEEDS = {"memkit.temporal.query": ("dateparser", "time-aware reads need the [temporal] extra")}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    if name in NEEDS:
        pytest.importorskip(NEEDS[name][0], reason=NEEDS[name][1])
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
