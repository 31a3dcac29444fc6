"""Plain data types shared by every part of memkit.

>>> Scope(namespace="acme", user="u1").contains(Scope(namespace="acme", user="u1", session="s9"))
True
>>> Scope(namespace="acme", user="u1").contains(Scope(namespace="acme", user="u2"))
False
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from memkit.errors import InvalidInput, safe_repr

SCOPE_FIELDS = ("namespace", "user", "agent", "session")
# printable, and valid Unicode: a lone surrogate (invalid UTF-8 decoded with surrogateescape)
# cannot be stored in SQLite or encoded as JSON
_SCOPE_VALUE = re.compile("^[^\x00-\x1f\ud800-\udfff]{1,200}$")


@dataclass(frozen=True)
class Scope:
    """Who a memory belongs to: namespace / user / agent / session.

    As the scope of an item, ``None`` means "not set". As the scope of a read, ``None`` means
    "any"; a read sees an item when every field the read sets equals the item's field. The
    namespace is always set (default ``"default"``): it is the tenant boundary.
    """

    namespace: str = "default"
    user: str | None = None
    agent: str | None = None
    session: str | None = None

    def __post_init__(self) -> None:
        for name in SCOPE_FIELDS:
            value = getattr(self, name)
            if value is None and name != "namespace":
                continue
            if not isinstance(value, str) or not _SCOPE_VALUE.fullmatch(value):
                raise InvalidInput(
                    f"scope field {name!r} must be a non-empty string of at most 200 printable "
                    f"characters (no lone surrogates), got {safe_repr(value)}"
                )

    @classmethod
    def coerce(cls, value: Scope | dict[str, Any] | str | None) -> Scope:
        """Accept a Scope, a dict of scope fields, a namespace string, or None (default)."""
        if value is None:
            return cls()
        if isinstance(value, Scope):
            return value
        if isinstance(value, str):
            return cls(namespace=value)
        if isinstance(value, dict):
            unknown = set(value) - set(SCOPE_FIELDS)
            if unknown:
                raise InvalidInput(
                    f"unknown scope field(s) {safe_repr(sorted(map(str, unknown)), 200)}; "
                    f"allowed: {list(SCOPE_FIELDS)}"
                )
            data = {k: v for k, v in value.items() if v is not None}
            return cls(**data)
        raise InvalidInput(f"scope must be a Scope, dict or namespace string, got {type(value)}")

    def contains(self, other: Scope) -> bool:
        """True when an item with scope ``other`` is visible to a read with this scope."""
        return all(
            getattr(self, f) is None or getattr(self, f) == getattr(other, f) for f in SCOPE_FIELDS
        )

    def as_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class MemoryItem:
    """One record in the system of record. ``id`` is a positive integer, unique for all time."""

    id: int
    text: str
    scope: Scope
    source: str | None
    created_at: float
    confidence: float
    expires_at: float | None
    metadata: dict[str, Any]
    content_hash: str
    version: int = 1
    root_id: int | None = None  # first version of this item's chain (itself when version 1)
    supersedes: int | None = None  # the previous version, if any
    valid_from: float = 0.0
    valid_until: float | None = None  # set when a newer version supersedes this one
    # event time: when what the item says holds in the world (None = unbounded)
    event_from: float | None = None
    event_until: float | None = None  # set when the fact was invalidated (e.g. contradicted)

    @property
    def is_current(self) -> bool:
        return self.valid_until is None

    def valid_at(self, t: float) -> bool:
        """Was this version the valid one at time ``t`` (seconds since the epoch)? This is
        system time: when memkit recorded it, not when it held in the world."""
        return self.valid_from <= t and (self.valid_until is None or t < self.valid_until)

    def holds_at(self, t: float) -> bool:
        """Does what this item says hold in the world at time ``t`` (event time)?"""
        return (self.event_from is None or self.event_from <= t) and \
            (self.event_until is None or t < self.event_until)

    @property
    def invalidated(self) -> bool:
        """True when the fact has an end in event time (it was invalidated, e.g. contradicted
        by a newer fact, at ``event_until``)."""
        return self.event_until is not None


@dataclass
class Cost:
    """What a read or answer cost."""

    ms: float = 0.0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    embed_calls: int = 0
    cached_llm_calls: int = 0
    embedded_texts: int = 0

    def add(self, other: Cost) -> None:
        """Add ``other``'s counts (and milliseconds) to this one."""
        self.ms += other.ms
        self.llm_calls += other.llm_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.embed_calls += other.embed_calls
        self.cached_llm_calls += other.cached_llm_calls
        self.embedded_texts += other.embedded_texts

    def as_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def llm_counts(self) -> dict[str, int]:
        """The LLM part (:data:`LLM_COUNTS`): what a trace lists per LLM call site."""
        return {name: int(getattr(self, name)) for name in LLM_COUNTS}


#: the LLM counters of a :class:`Cost`
LLM_COUNTS = ("llm_calls", "cached_llm_calls", "prompt_tokens", "completion_tokens")


@dataclass
class Scored:
    """One backend result: an id, its score and the evidence for it. The facade turns these
    into :class:`Hit` objects carrying the record's items."""

    id: int
    score: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hit:
    """One retrieved item with its score, the backend that found it and the evidence for it."""

    item: MemoryItem
    score: float
    backend: str
    rank: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return self.item.id

    @property
    def text(self) -> str:
        return self.item.text

    @property
    def invalidated(self) -> bool:
        """Whether the hit's fact was invalidated in event time (at ``item.event_until``):
        a default read never returns one that is invalid now, but a ``valid_at`` read in the
        past or an ``include_invalidated`` read may."""
        return self.item.invalidated


@dataclass
class ReadResult:
    """The answer to ``Memory.read``: ranked hits plus what the read cost."""

    query: str
    hits: list[Hit]
    cost: Cost = field(default_factory=Cost)
    timings: dict[str, float] = field(default_factory=dict)
    #: per backend (and ``"rerank"``): what each one did, with ``Memory.read(trace=True)``
    traces: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per backend: the change-feed position the backend had applied when it answered
    positions: dict[str, int] = field(default_factory=dict)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, i: int) -> Hit:
        return self.hits[i]

    @property
    def ids(self) -> list[int]:
        return [h.item.id for h in self.hits]


class Written(NamedTuple):
    """What ``Memory.put`` did: the item's id, and whether a new item was created (``False``:
    the same text was already current in the same scope, and that item's id is returned)."""

    id: int
    created: bool


@dataclass
class WriteReport:
    """What ``write_many`` / ingest did."""

    added: list[int] = field(default_factory=list)
    skipped_duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (what, reason)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": len(self.added),
            "skipped_duplicates": self.skipped_duplicates,
            "rejected": [{"what": w, "reason": r} for w, r in self.rejected],
        }
