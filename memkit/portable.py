"""Export a memory to streaming JSON Lines and import it into another, rebuilding every index.

The format (``memkit.export`` version 1), one JSON object per line::

    {"type": "header", "schema": "memkit.export", "schema_version": 1, "exported_at": ...,
     "config": {"backends": [...], "embedder": "..."}, "scope": null}
    {"type": "version", "id": 7, "root_id": 3, "supersedes": 3, "version": 2, "text": "...",
     "scope": {"namespace": "default", "user": "u1"}, "source": "chat:42", "confidence": 1.0,
     "created_at": ..., "valid_from": ..., "valid_until": null, "expires_at": null,
     "event_from": null, "event_until": null, "metadata": {...}, "content_hash": "..."}
    ...                                   every version of every item, in id order
    {"type": "audit", "seq": 1, "op": "write", "item_id": 3, "at": ..., ...}   (optional)
    {"type": "end", "versions": 12, "audit": 0}

Deleted items are absent (the record no longer has them). Importing writes through the public
API, so every derived index of the target memory (whatever backends it has) is built as it
would be for new writes: a chain's first version is written (keeping its ``created_at``,
source, confidence, metadata and scope), each later version is an ``update`` of the one it
supersedes. Ids are the target's own; :class:`ImportReport` maps old ids to new ones.

What an import cannot keep (the public API sets these to the import's time): the
``valid_from`` of versions after the first and the ``valid_until`` of superseded ones, so
``as_of`` reads for times before the import see each chain's current version; ``expires_at``
is kept as the remaining time to live; audit rows are not replayed (the target's audit log
records the import). A version whose predecessor was forgotten starts a new chain.

>>> from memkit import Memory
>>> from memkit.embed import HashEmbedder
>>> src = Memory.open(None, embedder=HashEmbedder())
>>> i = src.write("Alice moved to Paris.", scope={"user": "u1"})
>>> _ = src.update(i, "Alice moved to Lyon.")
>>> dump = list(export_lines(src))
>>> dst = Memory.open(None, embedder=HashEmbedder())
>>> report = import_lines(dst, dump)
>>> report.versions, [v.text for v in dst.versions(report.id_map[i])]
(2, ['Alice moved to Paris.', 'Alice moved to Lyon.'])
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from memkit.errors import InvalidInput
from memkit.memory import Memory
from memkit.types import MemoryItem, Scope

SCHEMA = "memkit.export"
SCHEMA_VERSION = 1

__all__ = ["SCHEMA", "SCHEMA_VERSION", "ImportReport", "export_lines", "export_to",
           "import_from", "import_lines"]


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, allow_nan=False)


def version_record(item: MemoryItem) -> dict[str, Any]:
    """One version of an item as an export record."""
    return {"type": "version", "id": item.id, "root_id": item.root_id or item.id,
            "supersedes": item.supersedes, "version": item.version, "text": item.text,
            "scope": {k: v for k, v in item.scope.as_dict().items() if v is not None},
            "source": item.source, "confidence": item.confidence,
            "created_at": item.created_at, "valid_from": item.valid_from,
            "valid_until": item.valid_until, "expires_at": item.expires_at,
            "event_from": item.event_from, "event_until": item.event_until,
            "metadata": item.metadata, "content_hash": item.content_hash}


def export_lines(memory: Memory, *, audit: bool = False,
                 scope: Scope | dict[str, Any] | str | None = None) -> Iterator[str]:
    """The export of ``memory`` (optionally only ``scope``), one JSON line at a time (no
    newlines); with ``audit``, the audit log follows the items, oldest first."""
    scope_obj = Scope.coerce(scope) if scope is not None else None
    yield _dumps({"type": "header", "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
                  "exported_at": time.time(),
                  "config": {"backends": list(memory.config.backends),
                             "embedder": memory.config.embedder},
                  "scope": scope_obj.as_dict() if scope_obj else None})
    versions = 0
    exported: set[int] = set()
    for item in memory.store.iter_items(scope=scope_obj, current_only=False):
        versions += 1
        exported.add(item.id)
        yield _dumps(version_record(item))
    rows = 0
    if audit:
        for row in reversed(memory.audit(limit=memory.store.last_seq() + 1)):
            if scope_obj is not None and row["item_id"] not in exported:
                continue
            rows += 1
            yield _dumps({"type": "audit", **row})
    yield _dumps({"type": "end", "versions": versions, "audit": rows})


def export_to(memory: Memory, out: IO[str], **options: Any) -> int:
    """Write the export to a text stream; returns the number of lines."""
    n = 0
    for line in export_lines(memory, **options):
        out.write(line + "\n")
        n += 1
    return n


@dataclass
class ImportReport:
    """What an import did: ``id_map`` (exported id -> new id), counts, and what it skipped."""

    versions: int = 0
    chains: int = 0
    id_map: dict[int, int] = field(default_factory=dict)
    skipped_expired: int = 0
    audit_rows_not_replayed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"versions": self.versions, "chains": self.chains,
                "skipped_expired": self.skipped_expired,
                "audit_rows_not_replayed": self.audit_rows_not_replayed}


def _parse(line: str, lineno: int) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"line {lineno}: not JSON ({exc.msg})") from exc
    if not isinstance(rec, dict) or not isinstance(rec.get("type"), str):
        raise InvalidInput(f"line {lineno}: expected an object with a 'type' field")
    return rec


def read_header(line: str) -> dict[str, Any]:
    """The header record of a dump's first line; InvalidInput unless it is one we read."""
    rec = _parse(line, 1)
    _check_header(rec)
    return rec


def _check_header(rec: dict[str, Any]) -> None:
    if rec.get("type") != "header" or rec.get("schema") != SCHEMA:
        raise InvalidInput(f"line 1: not a memkit export (expected a header with schema "
                           f"{SCHEMA!r})")
    version = rec.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InvalidInput(f"line 1: schema_version {version!r} is newer than this memkit "
                           f"reads ({SCHEMA_VERSION}); upgrade memkit")


_REQUIRED = ("id", "text", "scope", "confidence", "created_at", "metadata")


class _Importer:
    def __init__(self, memory: Memory, batch_size: int) -> None:
        self.memory, self.batch_size = memory, batch_size
        self.report = ImportReport()
        self.pending: list[tuple[int, dict[str, Any], int]] = []  # (old id, write record, line)

    def chain_start(self, rec: dict[str, Any], lineno: int) -> None:
        record: dict[str, Any] = {k: rec[k] for k in ("text", "scope", "source", "confidence",
                                                      "metadata", "created_at")}
        for key in ("event_from", "event_until"):  # absent in dumps from before event time
            if rec.get(key) is not None:
                record[key] = rec[key]
        if rec.get("expires_at") is not None:
            ttl = float(rec["expires_at"]) - time.time()
            if ttl <= 0:
                self.report.skipped_expired += 1
                return
            record["ttl"] = ttl
        self.pending.append((int(rec["id"]), record, lineno))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        report = self.memory.write_many([r for _, r, _ in self.pending],
                                        batch_size=len(self.pending), progress=False)
        if report.rejected:
            what, why = report.rejected[0]
            lineno = self.pending[int(what.split()[-1])][2]
            raise InvalidInput(f"line {lineno}: {why}")
        if len(report.added) == len(self.pending):
            new_ids = list(report.added)
        else:  # some were already current in the target: find their ids
            new_ids = [self.memory.put(r["text"], r["scope"]).id for _, r, _ in self.pending]
        for (old, _, _), new in zip(self.pending, new_ids, strict=True):
            self.report.id_map[old] = new
        self.report.versions += len(self.pending)
        self.report.chains += len(self.pending)
        self.pending.clear()

    def next_version(self, rec: dict[str, Any], lineno: int) -> None:
        self.flush()
        prev = self.report.id_map[int(rec["supersedes"])]
        new = self.memory.update(prev, rec["text"], metadata=rec["metadata"],
                                 confidence=float(rec["confidence"]), source=rec.get("source"),
                                 reason="import",
                                 event=(rec.get("event_from"), rec.get("event_until")))
        self.report.id_map[int(rec["id"])] = new
        self.report.versions += 1


def import_lines(memory: Memory, lines: Iterable[str], *, batch_size: int = 64) -> ImportReport:
    """Import an export (an iterable of its lines) into ``memory``; see the module docstring.
    Raises InvalidInput naming the line for a malformed or truncated dump (what came before
    that line stays imported: rerunning the import skips it as duplicates)."""
    importer = _Importer(memory, batch_size)
    it = iter(lines)
    first = next(it, None)
    if first is None:
        raise InvalidInput("line 1: the dump is empty")
    read_header(first)
    seen_versions = 0
    ended = False
    lineno = 1
    for lineno, line in enumerate(it, start=2):
        if not line.strip():
            continue
        if ended:
            raise InvalidInput(f"line {lineno}: data after the end record")
        rec = _parse(line, lineno)
        kind = rec["type"]
        if kind == "version":
            missing = [k for k in _REQUIRED if k not in rec]
            if missing:
                raise InvalidInput(f"line {lineno}: version record lacks {missing}")
            seen_versions += 1
            sup = rec.get("supersedes")
            if sup is not None and int(sup) in importer.report.id_map or \
                    sup is not None and any(o == int(sup) for o, _, _ in importer.pending):
                importer.next_version(rec, lineno)
            else:
                importer.chain_start(rec, lineno)
        elif kind == "audit":
            importer.report.audit_rows_not_replayed += 1
        elif kind == "end":
            if rec.get("versions") != seen_versions:
                raise InvalidInput(f"line {lineno}: the end record counts {rec.get('versions')} "
                                   f"versions but the dump has {seen_versions}")
            ended = True
        else:
            raise InvalidInput(f"line {lineno}: unknown record type {kind!r}")
    importer.flush()
    if not ended:
        raise InvalidInput(f"line {lineno}: the dump is truncated (no end record); "
                           f"{importer.report.versions} versions were imported")
    return importer.report


def import_from(memory: Memory, stream: IO[str], **options: Any) -> ImportReport:
    """:func:`import_lines` over a text stream (read line by line, never whole)."""
    return import_lines(memory, (line.rstrip("\n") for line in stream), **options)
