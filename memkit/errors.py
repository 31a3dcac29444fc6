"""The memkit exception tree. Every error memkit raises on purpose derives from MemkitError.

    MemkitError
    ├── InvalidInput          bad argument or malformed data (names the field / file / line)
    ├── NotFound              an id, file, backend or data set that does not exist
    ├── ScopeViolation        a request that would cross a scope boundary
    ├── StoreCorrupt          the record or a derived index cannot be read
    ├── ConfigError           an inconsistent or unknown configuration
    ├── MissingDependency     an optional extra is not installed (``.extra`` names it)
    └── LLMError              anything at the LLM boundary
        ├── LLMUnavailable    server down, timeout, retries exhausted
        └── LLMOutputError    the model's output could not be parsed or validated

Third-party errors are re-raised at the boundary with ``raise X from exc``.
"""

from __future__ import annotations

import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 60, 60, 40


def safe_repr(value: Any, limit: int = 80) -> str:
    """A short ``repr`` for error messages: bounded in length and nesting (a hostile input
    nested 100,000 levels deep must not crash the message that rejects it)."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not mask the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


class MemkitError(Exception):
    """Root of every error memkit raises on purpose."""


class InvalidInput(MemkitError, ValueError):
    """An argument or a piece of input data is not acceptable."""


class NotFound(MemkitError, KeyError):
    """Something that was asked for does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ScopeViolation(MemkitError):
    """A request would read or write outside its scope."""


class StoreCorrupt(MemkitError):
    """The system of record or a derived index cannot be read."""


class StoreUnavailable(MemkitError):
    """The database behind the record cannot be reached (server down, connection lost); the
    operation in flight was rolled back, so rerunning it is safe."""


class ConfigError(MemkitError, ValueError):
    """A configuration is unknown or inconsistent."""


class MissingDependency(MemkitError, ImportError):
    """An optional dependency is missing; ``extra`` names the pip extra that installs it."""

    def __init__(self, feature: str, extra: str, module: str | None = None) -> None:
        self.feature = feature
        self.extra = extra
        self.module = module
        from memkit._deps import install_hint  # (it imports this module)

        what = f" (module {module!r} not importable)" if module else ""
        super().__init__(f"{feature} needs the optional extra [{extra}]{what}: "
                         f"{install_hint(extra)}")


class LLMError(MemkitError):
    """An error at the LLM boundary."""


class LLMUnavailable(LLMError):
    """The LLM backend could not be reached or gave up after retries."""


class LLMOutputError(LLMError):
    """The model's output could not be parsed or validated, even after a repair and a retry."""

    def __init__(self, message: str, raw: str | None = None) -> None:
        self.raw = raw
        super().__init__(message)
