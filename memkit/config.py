"""MemoryConfig: what a memory directory is built with, saved as ``memkit.toml`` beside it.

Reopening a memory without arguments uses the saved configuration, so the CLI, the server and
the Python API always agree on the embedder and backends a memory was built with.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memkit.errors import ConfigError

CONFIG_NAME = "memkit.toml"
DURABILITY = ("full", "normal")
# what a saved memkit.toml must say: without them, reopening would silently switch embedder
# (vectors no longer comparable) or drop backends
REQUIRED_KEYS = ("backends", "embedder")


@dataclass
class MemoryConfig:
    backends: list[str] = field(default_factory=lambda: ["dense"])
    embedder: str = "minilm"
    max_item_chars: int = 100_000
    backend_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    llm: str | None = None
    # "full": every commit is fsynced before it returns (survives power loss / OS crash);
    # "normal": WAL with synchronous=NORMAL (survives a process crash; a power loss may lose
    # the last commits, never corrupts)
    durability: str = "full"

    def __post_init__(self) -> None:
        if not self.backends or not all(isinstance(b, str) and b for b in self.backends):
            raise ConfigError(f"backends must be a non-empty list of names, got {self.backends}")
        if "dense" not in self.backends:
            # every other backend falls back on dense retrieval; the first listed is the default
            self.backends = [*self.backends, "dense"]
        if not isinstance(self.max_item_chars, int) or self.max_item_chars <= 0:
            raise ConfigError(f"max_item_chars must be a positive int, got {self.max_item_chars}")
        if self.durability not in DURABILITY:
            raise ConfigError(f"durability must be one of {DURABILITY}, got {self.durability!r}")

    @classmethod
    def load(cls, path: Path) -> MemoryConfig:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read memory config {path}: {exc}") from exc
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{path}: unknown config key(s) {sorted(unknown)}")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ConfigError(
                f"{path} has no {' or '.join(missing)} (an empty or truncated file?): memkit "
                "will not guess them, because another embedder or set of backends would not "
                "match the memory's indexes; restore the file, or write the keys, e.g. "
                'backends = ["dense"] and embedder = "minilm"')
        return cls(**data)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(to_toml(asdict(self)), encoding="utf-8")
        os.replace(tmp, path)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} to TOML")


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for config dicts (scalars, lists, nested tables; None is omitted).

    >>> print(to_toml({"a": 1, "b": {"c": "x"}}).strip())
    a = 1
    <BLANKLINE>
    [b]
    c = "x"
    """
    lines, tables = [], []
    for key, v in data.items():
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append((key, v))
        else:
            lines.append(f"{json.dumps(key) if not key.isidentifier() else key} = {_value(v)}")
    out = "\n".join(lines) + "\n"
    for key, sub in tables:
        name = f"{prefix}{key}"
        out += f"\n[{name}]\n" + to_toml(sub, prefix=f"{name}.").lstrip("\n")
    return out
