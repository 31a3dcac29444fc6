"""Where a memory lives: its record (an SQLite file or a Postgres schema), its directory of
derived files, and where its configuration is saved.

* ``Memory.open(DIR)``: the record is ``DIR/memory.db``, the config ``DIR/memkit.toml``.
* ``Memory.open("postgresql://...")``: the record and the config (meta key ``memkit.config``)
  are in Postgres, so every process on any machine opens the same memory; derived indexes
  (faiss, the graph arrays) are rebuilt in memory from the record's tables and caught up from
  its change feed.
* ``Memory.open(DIR, store="postgresql://...")``: as above, and ``DIR`` keeps this machine's
  derived files between runs (a cache: labelled with the change-feed position they reflect,
  tied to the database by its memory id, so a directory is never reused for another one).
"""

from __future__ import annotations

import json
import logging
import tomllib
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import tomli_w

from memkit._files import private_tmp, replace_from
from memkit.config import CONFIG_NAME, MemoryConfig, _without_none
from memkit.errors import ConfigError, InvalidInput, MemkitError
from memkit.store import is_dsn
from memkit.store.sqlite import Store

log = logging.getLogger("memkit")
CONFIG_META = "memkit.config"
MEMORY_ID_META = "memory.id"
STORE_FILE = "store.json"


def locate(path: str | Path | None, store: str | None) -> tuple[Path | None, str]:
    """``(directory or None, store target)`` for ``Memory.open(path, store=...)``.

    >>> locate("postgresql://me@db/x", None)
    (None, 'postgresql://me@db/x')
    >>> locate(None, None)
    (None, ':memory:')
    """
    if store is not None and not is_dsn(store):
        raise InvalidInput(f"store must be a postgresql:// DSN, got {store!r} (an SQLite "
                           "memory is named by its directory alone)")
    if is_dsn(path):
        if store is not None:
            raise InvalidInput("give the DSN once: as the path or as store=, not both")
        return None, str(path)
    directory = None if path is None else Path(path).expanduser()
    if directory is not None:
        if directory.exists() and not directory.is_dir():
            raise InvalidInput(f"memory path {directory} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
    if store is not None:
        return directory, store
    return directory, ":memory:" if directory is None else str(directory / "memory.db")


def file_config(directory: Path | None) -> MemoryConfig | None:
    """The configuration an SQLite memory was built with (``DIR/memkit.toml``), if saved;
    read before the record opens, which needs its durability."""
    if directory is not None and (directory / CONFIG_NAME).exists():
        return MemoryConfig.load(directory / CONFIG_NAME)
    return None


def stored_config(store: Store) -> MemoryConfig | None:
    """The configuration a Postgres memory was built with (in its meta table), if saved."""
    text = store.get_meta(CONFIG_META)
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the memory's saved config in {store.location} is not TOML: "
                          f"{exc}") from exc
    return MemoryConfig(**data)


def save_config(directory: Path | None, store: Store, config: MemoryConfig) -> None:
    if store.kind != "sqlite":
        text = tomli_w.dumps(_without_none(asdict(config)))
        if store.get_meta(CONFIG_META) != text:
            store.set_meta(CONFIG_META, text)
        return
    if directory is not None:
        config.save(directory / CONFIG_NAME)


def bind_directory(directory: Path | None, store: Store) -> None:
    """Tie a cache directory to the database it caches (refuse another database's)."""
    if store.kind == "sqlite" or directory is None:
        return
    with store.transaction():
        memory_id = store.get_meta(MEMORY_ID_META)
        if memory_id is None:
            memory_id = uuid.uuid4().hex
            store.set_meta(MEMORY_ID_META, memory_id)
    marker = directory / STORE_FILE
    if marker.exists():
        try:
            known = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{marker} is unreadable ({exc}); delete it to reuse the "
                              "directory (its derived files are then rebuilt)") from exc
        if known.get("memory_id") != memory_id:
            raise ConfigError(
                f"directory {directory} caches another memory ({known.get('dsn')}); give "
                f"each database its own directory, or empty this one")
        return
    if any(p.name != STORE_FILE for p in directory.iterdir()):
        raise ConfigError(f"directory {directory} is not empty and caches no Postgres memory; "
                          "give a new or empty directory")
    tmp = private_tmp(marker)
    tmp.write_text(json.dumps({"dsn": store.location, "memory_id": memory_id}),
                   encoding="utf-8")
    replace_from(tmp, marker)


def cached_llm(llm: Any, store: Store) -> Any:
    """Wrap the LLM in the persistent call cache kept in the memory's SQLite."""
    try:
        from memkit.llm.cache import CachedLLM
    except ImportError:
        return llm
    if isinstance(llm, CachedLLM):
        return llm
    try:
        # its own connection to memory.db (sharing the store's would bypass the store's lock)
        if store.kind != "sqlite":
            return CachedLLM(llm, store)
        return CachedLLM(llm, store.path if store.path is not None else store.conn.raw)
    except MemkitError:
        raise
    except Exception as exc:  # pragma: no cover - defensive: never lose the LLM over a cache
        log.warning("LLM call cache unavailable: %s", exc)
        return llm

