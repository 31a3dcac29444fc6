"""MemoryConfig: what a memory directory is built with, saved as ``memkit.toml`` beside it.

Reopening a memory without arguments uses the saved configuration, so the CLI, the server and
the Python API always agree on the embedder and backends a memory was built with.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from memkit._files import private_tmp, replace_from
from memkit.errors import ConfigError

CONFIG_NAME = "memkit.toml"
DURABILITY = ("full", "normal")
# what a saved memkit.toml must say: without them, reopening would silently switch embedder
# (vectors no longer comparable) or drop backends
REQUIRED_KEYS = ("backends", "embedder")


@dataclass
class MemoryConfig:
    backends: list[str] = field(default_factory=lambda: ["dense"])
    embedder: str = "onnx"  # memkit.embed.DEFAULT_EMBEDDER: packaged MiniLM on onnxruntime
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
        if len(set(self.backends)) != len(self.backends):
            raise ConfigError(f"backends are listed twice: {self.backends}")
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
                'backends = ["dense"] and embedder = "onnx"')
        return cls(**data)

    def save(self, path: Path) -> None:
        tmp = private_tmp(path)
        tmp.write_text(tomli_w.dumps(_without_none(asdict(self))), encoding="utf-8")
        replace_from(tmp, path)


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null: unset values are left out (they load back as the defaults).

    >>> _without_none({"a": None, "b": {"c": None, "d": 1}})
    {'b': {'d': 1}}
    """
    return {k: _without_none(v) if isinstance(v, dict) else v
            for k, v in data.items() if v is not None}
