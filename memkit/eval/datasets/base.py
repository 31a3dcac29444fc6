"""What every loader produces: a corpus of memory items and questions with gold answers and
gold evidence, plus the strict JSON readers that name the file, line and field of bad input.

Evidence is matched by *key*: each corpus item carries the stable keys of the documents it
stands for (``metadata["keys"]``; several when identical texts were merged), each question the
keys of its supporting documents. Item ids of a memory are never part of a gold label.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from memkit.errors import InvalidInput
from memkit.types import Scope


@dataclass(frozen=True)
class CorpusItem:
    """One memory item to write: its text, scope, metadata and the evidence keys it covers."""

    keys: tuple[str, ...]
    text: str
    scope: Scope
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None

    def record(self) -> dict[str, Any]:
        """The ``Memory.write_many`` record for this item."""
        rec: dict[str, Any] = {"text": self.text, "scope": self.scope,
                               "metadata": {**self.metadata, "keys": list(self.keys)}}
        if self.created_at is not None:
            rec["created_at"] = self.created_at
        return rec


@dataclass(frozen=True)
class Question:
    """One question: gold answers (first = canonical, rest = aliases), gold evidence keys, the
    scope it is asked in, an optional category, and whether the right output is to abstain."""

    id: str
    question: str
    answers: tuple[str, ...]
    evidence: tuple[str, ...]
    scope: Scope
    category: str | None = None
    abstain: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dataset:
    """A loaded benchmark. ``info`` holds provenance (source file, format, licence, notes)."""

    name: str
    format: str
    corpus: list[CorpusItem]
    questions: list[Question]
    info: dict[str, Any] = field(default_factory=dict)

    def corpus_hash(self) -> str:
        """A hash of everything written to the memory (texts, scopes, keys, metadata, times)."""
        h = hashlib.sha256()
        for item in self.corpus:
            h.update(json.dumps([item.text, item.scope.as_dict(), list(item.keys),
                                 item.metadata, item.created_at], sort_keys=True,
                                ensure_ascii=False).encode())
            h.update(b"\x00")
        return h.hexdigest()[:16]

    def limit(self, n: int | None) -> Dataset:
        """The first ``n`` questions, and only the corpus items their scopes can see."""
        if n is None or n >= len(self.questions):
            return self
        if n <= 0:
            raise InvalidInput(f"limit must be positive, got {n}")
        questions = self.questions[:n]
        scopes = {q.scope for q in questions}
        corpus = [c for c in self.corpus if any(s.contains(c.scope) for s in scopes)]
        return replace(self, questions=questions, corpus=corpus,
                       info={**self.info, "limit": n})

    def summary(self) -> dict[str, Any]:
        cats: dict[str, int] = {}
        for q in self.questions:
            cats[str(q.category)] = cats.get(str(q.category), 0) + 1
        return {"name": self.name, "format": self.format, "corpus_items": len(self.corpus),
                "questions": len(self.questions), "categories": cats,
                "corpus_hash": self.corpus_hash()}


class CorpusBuilder:
    """Collects corpus items, merging identical (scope, text) pairs into one item with all their
    keys (a memory dedups identical texts in a scope, so the loader must too)."""

    def __init__(self) -> None:
        self._items: dict[tuple[Scope, str], CorpusItem] = {}
        self._key_to: dict[str, tuple[Scope, str]] = {}

    def add(self, key: str, text: str, scope: Scope, metadata: dict[str, Any] | None = None,
            created_at: float | None = None) -> str:
        """Add a document; returns its key. Re-adding the same key with the same text is a no-op."""
        slot = (scope, text)
        if key in self._key_to:
            if self._key_to[key] != slot:
                raise InvalidInput(f"evidence key {key!r} names two different documents")
            return key
        existing = self._items.get(slot)
        if existing is None:
            self._items[slot] = CorpusItem((key,), text, scope, dict(metadata or {}), created_at)
        else:
            self._items[slot] = replace(existing, keys=(*existing.keys, key))
        self._key_to[key] = slot
        return key

    def __contains__(self, key: str) -> bool:
        return key in self._key_to

    def items(self) -> list[CorpusItem]:
        return list(self._items.values())


def doc_key(*parts: str) -> str:
    """A stable short key for a document from its identifying parts (e.g. title and text)."""
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


# ---- strict reading ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One top-level JSON record and where it came from (for error messages)."""

    value: Any
    path: Path
    line: int

    def fail(self, field_path: str, problem: str) -> InvalidInput:
        return InvalidInput(f"{self.path}:{self.line}: field {field_path!r}: {problem}")

    def get(self, name: str, kind: type | tuple[type, ...], *, optional: bool = False,
            within: Any = None, prefix: str = "") -> Any:
        """Field ``name`` of the record (or of ``within``), type-checked; names what is wrong."""
        obj = self.value if within is None else within
        where = f"{prefix}{name}"
        if not isinstance(obj, dict):
            raise self.fail(prefix.rstrip(".") or "(record)", f"expected an object, got "
                            f"{type(obj).__name__}")
        if name not in obj or obj[name] is None:
            if optional:
                return None
            raise self.fail(where, "missing")
        value = obj[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(where, f"expected {_names(kinds)}, got bool")
        if not isinstance(value, kinds):
            raise self.fail(where, f"expected {_names(kinds)}, got {type(value).__name__}")
        return value


def _names(kinds: Sequence[type]) -> str:
    return " or ".join(k.__name__ for k in kinds)


def read_records(path: Path) -> Iterator[Record]:
    """Yield the top-level objects of a JSON list or a JSONL file, each with its line number.

    A syntax error names the file and line; so does a top-level value that is not an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 text ({exc})") from exc
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc})") from exc
    start = len(text) - len(text.lstrip())
    if text[start:start + 1] == "[":
        yield from _json_list(path, text, start + 1)
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{lineno}: invalid JSON ({exc.msg} at column "
                               f"{exc.colno})") from exc
        if not isinstance(value, dict):
            raise InvalidInput(f"{path}:{lineno}: expected a JSON object per line, got "
                               f"{type(value).__name__}")
        yield Record(value, path, lineno)


def _json_list(path: Path, text: str, pos: int) -> Iterator[Record]:
    decoder = json.JSONDecoder()
    n = len(text)

    def skip(p: int) -> int:
        while p < n and text[p] in " \t\r\n":
            p += 1
        return p

    pos = skip(pos)
    if pos < n and text[pos] == "]":
        return
    while True:
        pos = skip(pos)
        line = text.count("\n", 0, pos) + 1
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column "
                               f"{exc.colno})") from exc
        if not isinstance(value, dict):
            raise InvalidInput(f"{path}:{line}: expected a list of JSON objects, got an element "
                               f"of type {type(value).__name__}")
        yield Record(value, path, line)
        pos = skip(end)
        if pos < n and text[pos] == ",":
            pos += 1
            continue
        if pos < n and text[pos] == "]":
            if skip(pos + 1) != n:
                raise InvalidInput(f"{path}:{text.count(chr(10), 0, pos) + 1}: "
                                   "unexpected data after the closing ']'")
            return
        raise InvalidInput(f"{path}:{text.count(chr(10), 0, pos) + 1}: expected ',' or ']' "
                           "between list elements")


def first_record(path: Path) -> dict[str, Any] | None:
    """The first top-level object of a JSON/JSONL file, for format detection (None if none)."""
    for rec in read_records(path):
        return rec.value  # type: ignore[no-any-return]
    return None
