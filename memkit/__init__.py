"""memkit: long-term memory for LLM agents (write, manage, read) and the benchmarks to prove it.

>>> import memkit
>>> with memkit.Memory.open(None, embedder="hash") as mem:
...     _ = mem.write("The launch code is 0000.", scope={"user": "ops"})
...     mem.read("launch code", scope={"user": "ops"})[0].text
'The launch code is 0000.'
"""

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
)
from memkit.memory import Memory
from memkit.types import Cost, Hit, MemoryItem, ReadResult, Scope, WriteReport, Written

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # memkit.Client needs the [server] extra; import it only when asked for
    if name == "Client":
        from memkit.server.client import Client

        return Client
    raise AttributeError(f"module 'memkit' has no attribute {name!r}")


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
    "WriteReport",
    "Written",
    "__version__",
]
