"""Typed, strict options: one validation path for every component's settings.

Each backend (and reranker) declares a pydantic model: unknown keys are rejected
(``extra="forbid"``), values are checked, and the model is what gets saved to ``memkit.toml``
(plain values only). Live objects (an LLM, a spaCy pipeline, a custom extractor) are not
options: they travel in ``BackendContext.components`` and are never saved.

>>> class Demo(Options):
...     size: int = 3
>>> parse_options(Demo, {"size": 5}, "demo").size
5
>>> parse_options(Demo, {"sise": 5}, "demo")
Traceback (most recent call last):
...
memkit.errors.ConfigError: demo option 'sise' is not known; known: ['size']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic

from memkit.errors import ConfigError


class Options(pydantic.BaseModel):
    """Base of every component's options: strict, frozen, plain values only."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    def saved(self) -> dict[str, Any]:
        """The options that differ from the defaults, as plain TOML-able values."""
        return self.model_dump(mode="json", exclude_defaults=True, exclude_none=True)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Each option's default and type, for ``stats --json`` and documentation."""
        return {name: {"default": f.default, "type": _type_name(f.annotation),
                       **({"doc": f.description} if f.description else {})}
                for name, f in cls.model_fields.items()}


OptionsT = TypeVar("OptionsT", bound=Options)


def parse_options(model: type[OptionsT], raw: Mapping[str, Any] | None, what: str
                  ) -> OptionsT:
    """Validate ``raw`` into ``model``; a ConfigError names every bad or unknown key."""
    raw = dict(raw or {})
    known = sorted(model.model_fields)
    unknown = [k for k in raw if k not in model.model_fields]
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        names = ", ".join(repr(k) for k in unknown)
        raise ConfigError(f"{what} option{plural} {names} {'are' if plural else 'is'} not "
                          f"known; known: {known}")
    try:
        return model(**raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors()[:8])
        raise ConfigError(f"{what} options invalid: {problems}") from None


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
