"""Adapter lineage: which item versions every consolidation round was trained on.

Deleting or updating a memory must reach the weights. Each consolidation round (a LoRA
adapter under ``<memory dir>/consolidation/round-NNNN``) records in the record which item ids,
at which version and content hash, it was trained on. An adapter is *stale* when any item
version in its lineage -- its own round's and every earlier round's, since round ``N`` starts
from round ``N - 1``'s weights -- is no longer the current one (deleted, or superseded by an
update). Staleness is computed from the record with one join, so it holds however the item
went away (``Memory.delete``, ``update``, expiry, another process); :func:`refresh` also stamps
``stale_at`` on the rounds the first time it sees them stale.

Tables (component ``consolidation``, portable SQL)::

    consolidation_rounds(adapter_round PK, method, base_model, created_at, n_items, folder,
                         stale_at, stale_reason)
    consolidation_lineage(adapter_round, item_id, version, content_hash)  PK (round, item)

The round folders' ``manifest.json`` (``item_versions``) hold the same lineage, so a crash
between writing a round and recording it is repaired by :func:`sync`.

This module imports no torch: ``Memory.stats`` and ``memkit stats`` use it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memkit.errors import MemkitError

COMPONENT = "consolidation"
SUBDIR = "consolidation"
_ROUND = re.compile(r"^round-(\d{4,})$")

MIGRATIONS = [
    """
    CREATE TABLE consolidation_rounds (
        adapter_round INTEGER PRIMARY KEY,
        method TEXT NOT NULL,
        base_model TEXT NOT NULL,
        created_at REAL NOT NULL,
        n_items INTEGER NOT NULL,
        folder TEXT NOT NULL,
        stale_at REAL,
        stale_reason TEXT
    );
    CREATE TABLE consolidation_lineage (
        adapter_round INTEGER NOT NULL,
        item_id INTEGER NOT NULL,
        version INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        PRIMARY KEY (adapter_round, item_id)
    );
    CREATE INDEX consolidation_lineage_item ON consolidation_lineage(item_id);
    """,
]


class StaleAdapter(MemkitError):
    """The adapter was trained on item versions that were deleted or updated since."""


def ensure_tables(store: Any) -> None:
    store.migrate(COMPONENT, MIGRATIONS)


def has_tables(store: Any) -> bool:
    return "consolidation_rounds" in set(store.table_names())


def item_version(item: Any) -> tuple[int, int, str]:
    """``(id, version, content_hash)`` of an item (objects without them: version 1, '')."""
    return (int(item.id), int(getattr(item, "version", 1) or 1),
            str(getattr(item, "content_hash", "") or ""))


def record_round(store: Any, round_no: int, method: str, base_model: str, created_at: float,
                 folder: str, item_versions: Sequence[Sequence[Any]]) -> None:
    """Record one round and the item versions it trained on (idempotent)."""
    ensure_tables(store)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO consolidation_rounds (adapter_round, method, base_model, created_at, "
            "n_items, folder) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (adapter_round) DO NOTHING",
            (round_no, method, base_model, created_at, len(item_versions), folder))
        for iid, version, chash in item_versions:
            conn.execute(
                "INSERT INTO consolidation_lineage (adapter_round, item_id, version, "
                "content_hash) VALUES (?, ?, ?, ?) ON CONFLICT (adapter_round, item_id) "
                "DO NOTHING", (round_no, int(iid), int(version), str(chash)))


def forget_rounds(store: Any, from_round: int) -> None:
    """Drop the rows of rounds ``>= from_round`` (their folders were retired)."""
    ensure_tables(store)
    with store.transaction() as conn:
        conn.execute("DELETE FROM consolidation_lineage WHERE adapter_round >= ?", (from_round,))
        conn.execute("DELETE FROM consolidation_rounds WHERE adapter_round >= ?", (from_round,))


def _round_folders(directory: Path) -> dict[int, Path]:
    root = directory / SUBDIR
    if not root.is_dir():
        return {}
    return {int(m.group(1)): p for p in root.iterdir()
            if p.is_dir() and (m := _ROUND.match(p.name))}


def sync(store: Any, directory: Path) -> None:
    """Make the tables match the round folders: record rounds the table lacks (a crash after
    the folder was written), drop rows of rounds whose folder is gone."""
    folders = _round_folders(directory)
    if not folders and not has_tables(store):
        return
    ensure_tables(store)
    known = {int(r[0]) for r in store.conn.execute(
        "SELECT adapter_round FROM consolidation_rounds").fetchall()}
    for rnd, path in sorted(folders.items()):
        if rnd in known:
            continue
        data = json.loads((path / "manifest.json").read_text("utf-8"))
        versions = data.get("item_versions") or [[i, 1, ""] for i in data.get("item_ids", [])]
        record_round(store, rnd, data["method"], data["base_model"], data["created_at"],
                     path.name, versions)
    gone = sorted(known - set(folders))
    if gone:
        with store.transaction() as conn:
            for rnd in gone:
                conn.execute("DELETE FROM consolidation_lineage WHERE adapter_round = ?", (rnd,))
                conn.execute("DELETE FROM consolidation_rounds WHERE adapter_round = ?", (rnd,))


def stale_items(store: Any) -> list[dict[str, Any]]:
    """Every lineage entry whose item version is no longer current, with why."""
    if not has_tables(store):
        return []
    rows = store.conn.execute(
        "SELECT l.adapter_round, l.item_id, l.version, i.id, i.version, i.valid_until "
        "FROM consolidation_lineage l LEFT JOIN items i ON i.id = l.item_id "
        "WHERE i.id IS NULL OR i.valid_until IS NOT NULL OR i.version <> l.version "
        "OR (l.content_hash <> '' AND i.content_hash <> l.content_hash) "
        "ORDER BY l.adapter_round, l.item_id").fetchall()
    out = []
    for rnd, iid, version, found, _cur_version, valid_until in rows:
        why = "deleted" if found is None else ("updated" if valid_until is not None
                                               else "changed")
        out.append({"round": int(rnd), "item_id": int(iid), "version": int(version),
                    "why": why})
    return out


def refresh(store: Any, directory: Path | None) -> dict[int, str]:
    """Stale rounds -> reason. The first time a round is seen stale it is stamped
    (``stale_at``) and the audit log gets an ``adapter_stale`` event per item that made it
    stale (a round after a stale one is stale too: it was trained from that round's
    weights; its event names the first stale round's items)."""
    if directory is not None:
        sync(store, directory)
    bad = stale_items(store)
    if not bad:
        return {}
    first = min(b["round"] for b in bad)
    reason = ", ".join(f"item {b['item_id']} v{b['version']} {b['why']}" for b in bad[:5])
    if len(bad) > 5:
        reason += f" (+{len(bad) - 5} more)"
    with store.transaction() as conn:
        newly = [int(r[0]) for r in conn.execute(
            "SELECT adapter_round FROM consolidation_rounds WHERE adapter_round >= ? "
            "AND stale_at IS NULL ORDER BY adapter_round", (first,)).fetchall()]
        if newly:
            conn.execute("UPDATE consolidation_rounds SET stale_at = ?, stale_reason = ? "
                         "WHERE adapter_round >= ? AND stale_at IS NULL",
                         (time.time(), reason, first))
            store.record_events(_stale_events(bad, newly))
    rows = store.conn.execute(
        "SELECT adapter_round FROM consolidation_rounds WHERE adapter_round >= ? "
        "ORDER BY adapter_round", (first,)).fetchall()
    return {int(r[0]): reason for r in rows}


def _stale_events(bad: list[dict[str, Any]], rounds: list[int]
                  ) -> list[tuple[str, int, str | None, dict[str, Any] | None]]:
    first = min(b["round"] for b in bad)
    events: list[tuple[str, int, str | None, dict[str, Any] | None]] = []
    for rnd in rounds:
        own = [b for b in bad if b["round"] == rnd] or [b for b in bad if b["round"] == first]
        for b in own:
            via = "" if b["round"] == rnd else f" (builds on round {first})"
            events.append(("adapter_stale", b["item_id"],
                           f"adapter round {rnd} was trained on v{b['version']}, now "
                           f"{b['why']}{via}",
                           {"round": rnd, "version": b["version"], "why": b["why"],
                            "trained_in_round": b["round"]}))
    return events


def note_record_change(store: Any) -> None:
    """After a delete or update: mark the adapters it made stale (and audit it) now, not at
    the next read of them. A no-op for a memory never consolidated."""
    if has_tables(store):
        refresh(store, None)


def earliest_stale_round(store: Any, directory: Path | None) -> int | None:
    stale = refresh(store, directory)
    return min(stale) if stale else None


def check_fresh(store: Any, directory: Path | None, round_no: int) -> None:
    """Raise :class:`StaleAdapter` when round ``round_no``'s adapter is stale."""
    stale = refresh(store, directory)
    if round_no in stale:
        raise StaleAdapter(
            f"consolidated adapter round {round_no} is stale: it was trained on {stale[round_no]}"
            "; retrain it (`memkit consolidate --retrain-stale`, Memory.retrain_stale) or pass "
            "allow_stale=True")


def adapter_stats(store: Any, directory: Path | None) -> dict[str, Any] | None:
    """What ``Memory.stats()`` shows under ``adapters`` (None: never consolidated)."""
    if directory is not None and not _round_folders(directory) and not has_tables(store):
        return None
    if directory is None and not has_tables(store):
        return None
    stale = refresh(store, directory)
    rows = store.conn.execute(
        "SELECT adapter_round, method, n_items, created_at FROM consolidation_rounds "
        "ORDER BY adapter_round").fetchall()
    n_lineage = int(store.conn.execute(
        "SELECT COUNT(*) FROM consolidation_lineage").fetchone()[0])
    latest = int(rows[-1][0]) if rows else None
    return {
        "rounds": len(rows),
        "latest_round": latest,
        "method": rows[-1][1] if rows else None,
        "lineage_items": n_lineage,
        "stale_rounds": sorted(stale),
        "latest_stale": latest in stale if latest is not None else False,
        "stale_items": stale_items(store),
    }
