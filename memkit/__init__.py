"""memkit: long-term memory for LLM agents (write, manage, read) and the benchmarks to prove it.

>>> import memkit
>>> with memkit.Memory.open(None, embedder="hash") as mem:
...     _ = mem.write("The launch code is 0000.", scope={"user": "ops"})
...     mem.read("launch code", scope={"user": "ops"})[0].text
'The launch code is 0000.'

The public names are imported on first use (PEP 562), so ``import memkit`` -- and every CLI
command that never opens a memory -- stays cheap: numpy, SQLite, faiss and the embedding model
load only when something needs them.
"""

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "MemoryConfig": "memkit.config",
    **{name: "memkit.errors" for name in (
        "ConfigError", "InvalidInput", "LLMError", "LLMOutputError", "LLMUnavailable",
        "MemkitError", "MissingDependency", "NotFound", "ScopeViolation", "StoreCorrupt",
        "StoreUnavailable")},
    "Memory": "memkit.memory",
    **{name: "memkit.types" for name in (
        "Cost", "Hit", "MemoryItem", "ReadResult", "Scope", "WriteReport", "Written")},
    "Client": "memkit.client",  # needs the [server] extra
}

if _typing.TYPE_CHECKING:
    from memkit.client import Client
    from memkit.config import MemoryConfig
    from memkit.errors import (
        ConfigError,
        InvalidInput,
        LLMError,
        LLMOutputError,
        LLMUnavailable,
        MemkitError,
        MissingDependency,
        NotFound,
        ScopeViolation,
        StoreCorrupt,
        StoreUnavailable,
    )
    from memkit.memory import Memory
    from memkit.types import Cost, Hit, MemoryItem, ReadResult, Scope, WriteReport, Written


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memkit' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "Client",
    "ConfigError",
    "Cost",
    "Hit",
    "InvalidInput",
    "LLMError",
    "LLMOutputError",
    "LLMUnavailable",
    "MemkitError",
    "Memory",
    "MemoryConfig",
    "MemoryItem",
    "MissingDependency",
    "NotFound",
    "ReadResult",
    "Scope",
    "ScopeViolation",
    "StoreCorrupt",
    "StoreUnavailable",
    "WriteReport",
    "Written",
    "__version__",
]
