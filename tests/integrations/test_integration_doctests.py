"""The worked examples in the integration, tools and export docstrings run as shown."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = {
    "memkit.portable": None,
    "memkit.tools": None,
    "memkit.integrations.langchain": "langchain_core",
    "memkit.integrations.langgraph": "langgraph.store.base",
    "memkit.integrations.llamaindex": "llama_index.core",
    "memkit.integrations.otel": "opentelemetry.sdk",
}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    if MODULES[name]:
        pytest.importorskip(MODULES[name], reason=f"{name} needs its extra")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
