"""What ``Memory.consolidate`` / ``consolidator`` / ``retrain_stale`` do: a Consolidator bound
to the memory's directory and record, so each round's lineage (item ids and versions) lands in
the record and stale adapters are refused.

    cons = memory_consolidator(mem, "path/to/model")     # method: the stored rounds' one
    model = cons.load_latest(base)                        # StaleAdapter after a delete
    retrain_stale(mem, "path/to/model")                   # rebuilt without deleted items
"""

from __future__ import annotations

import json
from typing import Any

from memkit.consolidate.consolidator import SUBDIR, ConsolidationManifest, Consolidator
from memkit.errors import ConfigError
from memkit.types import Scope


def _stored_method(mem: Any) -> str | None:
    rounds = sorted((mem.directory / SUBDIR).glob("round-*/manifest.json"))
    if not rounds:
        return None
    return str(json.loads(rounds[-1].read_text("utf-8"))["method"])


def memory_consolidator(mem: Any, base_model: Any, method: str | None = None,
                        **options: Any) -> Consolidator:
    """A Consolidator on ``mem``'s directory and record; ``method`` None = the method of the
    stored rounds (``replay`` for a first round)."""
    if mem.directory is None:
        raise ConfigError("consolidation stores adapters in the memory directory: open "
                          "the memory with a path, not in memory")
    options.setdefault("progress", mem.progress)
    options.setdefault("record", mem.store)
    name = method or _stored_method(mem) or "replay"
    return Consolidator(mem.directory, base_model, name, **options)


def current_items(mem: Any, scope: Scope | dict[str, Any] | str | None = None) -> list[Any]:
    with mem._op():
        return list(mem.store.iter_items(
            scope=Scope.coerce(scope) if scope is not None else None))


def consolidate(mem: Any, base_model: Any, method: str | None = None, *,
                since: float | None = None, scope: Scope | dict[str, Any] | str | None = None,
                **options: Any) -> ConsolidationManifest:
    cons = memory_consolidator(mem, base_model, method, **options)
    return cons.consolidate(current_items(mem, scope), since=since)


def retrain_stale(mem: Any, base_model: Any, method: str | None = None, *,
                  scope: Scope | dict[str, Any] | str | None = None,
                  **options: Any) -> ConsolidationManifest | None:
    cons = memory_consolidator(mem, base_model, method, **options)
    return cons.retrain_stale(current_items(mem, scope))
