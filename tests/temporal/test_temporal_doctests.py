"""The worked examples in the conversation and temporal docstrings run as shown."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "memkit.temporal.times",
    "memkit.temporal.truth",
    "memkit.conversation.turns",
    "memkit.conversation.facts",
    "memkit.temporal.query",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    if name == "memkit.temporal.query":
        pytest.importorskip("dateparser", reason="time-aware reads need the [temporal] extra")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
