"""Import optional dependencies, raising MissingDependency that names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from memkit.errors import MissingDependency


def require(module: str, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming ``extra``.

    >>> require("json", "dev").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(feature or module, extra, module) from exc
