"""The worked examples in the memkit.llm docstrings run and give the values they show."""

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
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
