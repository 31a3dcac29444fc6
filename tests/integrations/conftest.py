"""The framework suites (langchain-tests' standard tests, our LangGraph/LlamaIndex cases) have
``async def`` tests without an asyncio mark; mark them for pytest-asyncio here, in this folder
only, at collection (this conftest's hooks see only the files below it)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: Any) -> None:
    if inspect.iscoroutinefunction(obj) and \
            not any(m.name == "asyncio" for m in getattr(obj, "pytestmark", [])):
        pytest.mark.asyncio(obj)
