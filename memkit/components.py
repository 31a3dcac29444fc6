"""Building a memory's backends from its configuration: each backend's typed options from
their saved form, and live objects (components) kept apart from what is saved."""

from __future__ import annotations

from typing import Any

from memkit.backends.base import Backend, resolve_backend
from memkit.config import MemoryConfig
from memkit.errors import ConfigError
from memkit.options import Options, parse_options


def backend_options(cls: type[Backend], name: str, raw: dict[str, Any] | None) -> Options:
    """A backend's typed options from their saved/plain form (ConfigError naming any bad
    or unknown key)."""
    return parse_options(cls.options_model, raw, name)


def split_components(config: MemoryConfig, components: dict[str, dict[str, Any]] | None
                     ) -> tuple[MemoryConfig, dict[str, dict[str, Any]]]:
    """Move live objects out of ``backend_options`` into components, validate every
    backend's options, and keep only plain, non-default values in the config (what is
    saved). Returns the cleaned config and the components by backend."""
    live: dict[str, dict[str, Any]] = {n: dict(c) for n, c in (components or {}).items()}
    unknown = [n for n in live if n not in config.backends]
    if unknown:
        raise ConfigError(f"components for backend(s) {unknown} that are not configured: "
                          f"{config.backends}")
    stray = [n for n in config.backend_options if n not in config.backends]
    if stray:
        raise ConfigError(f"backend_options for backend(s) {stray} that are not configured: "
                          f"{config.backends}")
    cleaned: dict[str, dict[str, Any]] = {}
    for name in config.backends:
        cls = resolve_backend(name)
        raw = dict(config.backend_options.get(name) or {})
        for key in [k for k in raw if k in cls.components and not _plain(raw[k])]:
            live.setdefault(name, {})[key] = raw.pop(key)
        bad = [k for k in live.get(name, {}) if k not in cls.components]
        if bad:
            raise ConfigError(f"{name} takes no component(s) {bad}; it takes "
                              f"{sorted(cls.components) or 'none'}")
        saved = backend_options(cls, name, raw).saved()
        if saved:
            cleaned[name] = saved
    config.backend_options = cleaned
    return config, live


def _plain(value: Any) -> bool:
    """A value that can be saved in TOML (an option), as opposed to a live object."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False
