"""The framework suites (langchain-tests' standard tests, our LangGraph/LlamaIndex cases) have
``async def`` tests without an asyncio mark; mark them for pytest-asyncio here, in this folder
only, at collection (this conftest's hooks see only the files below it). Without
pytest-asyncio (it comes with the [dev] extra) they are skipped, saying so."""

from __future__ import annotations

import inspect
from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: Any) -> None:
    if not inspect.iscoroutinefunction(obj) or \
            any(m.name in ("asyncio", "skip") for m in getattr(obj, "pytestmark", [])):
        return
    if collector.config.pluginmanager.hasplugin("asyncio"):
        pytest.mark.asyncio(obj)
    else:
        pytest.mark.skip(reason="async test: needs pytest-asyncio (the [dev] extra)")(obj)
