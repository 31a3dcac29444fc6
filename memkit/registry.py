"""One registry style for every pluggable kind of component.

Each kind (``backends``, ``rerankers``, ``consolidation_methods``, ...) is an entry-point
group ``memkit.<kind>``. memkit's own components are declared in that group by memkit's
``pyproject.toml``, exactly as a third-party package declares its own, so built-ins and
plugins load the same way and neither needs the facade edited::

    # a plugin's pyproject.toml
    [project.entry-points."memkit.backends"]
    mine = "my_package.backend:MyBackend"

At run time, ``register`` adds one without packaging (tests, notebooks). Entry points are
read lazily, the target is imported on first use, and a name registered at run time wins.

>>> reg = Registry("example_kind", builtins={"json": "json:dumps"})
>>> reg.resolve("json")({"a": 1})
'{"a": 1}'
>>> _ = reg.register("upper", str.upper); reg.resolve("upper")("x")
'X'
>>> reg.names()
['json', 'upper']
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from memkit.errors import ConfigError


class Registry:
    """Named components of one kind: run-time registrations, then the ``memkit.<kind>``
    entry points (memkit's own included), then ``builtins`` (used only when memkit runs
    without its package metadata, e.g. from an unpacked source tree)."""

    def __init__(self, kind: str, builtins: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.group = f"memkit.{kind}"
        self._builtins = dict(builtins or {})
        self._registered: dict[str, Any] = {}
        self._loaded: dict[str, Any] = {}

    def register(self, name: str, target: Any = None) -> Any:
        """Register ``target`` under ``name``; without a target, a decorator."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if target is None:
            def deco(obj: Any) -> Any:
                self.register(name, obj)
                return obj
            return deco
        self._registered[name] = target
        self._loaded.pop(name, None)
        return target

    def _entry_points(self) -> dict[str, str]:
        return {ep.name: ep.value for ep in entry_points(group=self.group)}

    def names(self) -> list[str]:
        return sorted({*self._builtins, *self._entry_points(), *self._registered})

    def get(self, name: str) -> Any | None:
        """The component registered under ``name``, or None (one entry-point scan at most,
        none once it is loaded)."""
        if name in self._registered:
            target = self._registered[name]
        elif name in self._loaded:
            return self._loaded[name]
        else:
            target = self._entry_points().get(name, self._builtins.get(name))
        if isinstance(target, str):
            target = self._import(name, target)
            self._loaded[name] = target
        return target

    def resolve(self, name: str) -> Any:
        """The component registered under ``name`` (ConfigError naming the known ones)."""
        target = self.get(name)
        if target is None:
            raise ConfigError(f"unknown {self.kind.rstrip('s').replace('_', ' ')} {name!r}; "
                              f"known: {self.names()}")
        return target

    def _import(self, name: str, target: str) -> Any:
        module, _, attr = target.partition(":")
        try:
            obj: Any = import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] == "memkit":
                raise ConfigError(f"{self.kind} {name!r} is not available in this build") \
                    from exc
            raise
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        return obj


def builtin_entry_points() -> dict[str, dict[str, str]]:
    """memkit's own components per group, as its pyproject declares them (for a test that
    keeps the two in step)."""
    return {reg.group: dict(reg._builtins) for reg in _ALL}


_ALL: list[Registry] = []


def registry(kind: str, builtins: dict[str, str]) -> Registry:
    reg = Registry(kind, builtins)
    _ALL.append(reg)
    return reg


Factory = Callable[..., Any]
