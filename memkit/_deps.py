"""Import optional dependencies, raising MissingDependency that names the extra.

The distribution is published as ``memkit-agent`` (``memkit`` on PyPI is an unrelated
project); the import name stays ``memkit``. Every install hint is built here.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from memkit.errors import MissingDependency

#: the name to ``pip install`` (the import name is ``memkit``)
DISTRIBUTION = "memkit-agent"
#: extras whose packages the core install already brings
CORE = ("core", "")


def install_hint(extra: str | None = None) -> str:
    """The pip command that installs ``extra``.

    >>> install_hint("server")
    "pip install 'memkit-agent[server]'"
    >>> install_hint("core")
    'pip install memkit-agent'
    """
    if not extra or extra in CORE:
        return f"pip install {DISTRIBUTION}"
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(module: str, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming ``extra``.

    >>> require("json", "dev").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(feature or module, extra, module) from exc


@contextmanager
def quiet_peft() -> Iterator[None]:
    """Silence the FutureWarning transformers 5 raises when peft reads a deprecated attribute
    (not ours to fix, and an error under ``-W error``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                                category=FutureWarning)
        yield
