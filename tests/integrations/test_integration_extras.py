"""Each integration module, imported without its framework, raises MissingDependency naming
the extra that installs it."""

from __future__ import annotations

import importlib
import sys

import pytest

from memkit.errors import MissingDependency

CASES = [
    ("memkit.integrations.langchain", "langchain_core", "langchain"),
    ("memkit.integrations.langgraph", "langgraph", "langgraph"),
    ("memkit.integrations.llamaindex", "llama_index", "llamaindex"),
    ("memkit.integrations.otel", "opentelemetry", "otel"),
]


@pytest.mark.parametrize("module, framework, extra", CASES)
def test_missing_framework_names_the_extra(monkeypatch: pytest.MonkeyPatch, module: str,
                                           framework: str, extra: str) -> None:
    for name in [m for m in sys.modules if m == framework or m.startswith(framework + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, framework, None)  # makes `import framework` fail
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(MissingDependency) as caught:
        importlib.import_module(module)
    assert caught.value.extra == extra and f"memkit-agent[{extra}]" in str(caught.value)
