"""Admission: turn user input into validated NewItems, or an InvalidInput naming the problem."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from memkit.errors import InvalidInput
from memkit.store.sqlite import NewItem
from memkit.types import Scope

WRITE_FIELDS = ("text", "scope", "source", "confidence", "ttl", "metadata", "created_at")


def admit(text: Any, *, scope: Any = None, source: Any = None, confidence: Any = 1.0,
          ttl: Any = None, metadata: Any = None, created_at: Any = None,
          max_chars: int = 100_000, now: float | None = None) -> NewItem:
    """Validate one write. Every rejection names the field and what was wrong."""
    if not isinstance(text, str):
        raise InvalidInput(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InvalidInput("text is empty or whitespace only")
    if "\x00" in text:
        raise InvalidInput("text contains a NUL character")
    if len(text) > max_chars:
        raise InvalidInput(
            f"text is {len(text)} characters, over the limit of {max_chars} "
            "(split it, e.g. with `memkit ingest`, or raise max_item_chars)"
        )
    scope_obj = Scope.coerce(scope)
    if source is not None and not isinstance(source, str):
        raise InvalidInput(f"source must be a string or None, got {type(source).__name__}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or \
            not 0.0 <= float(confidence) <= 1.0 or math.isnan(float(confidence)):
        raise InvalidInput(f"confidence must be a number in [0, 1], got {confidence!r}")
    now = time.time() if now is None else now
    expires_at = None
    if ttl is not None:
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
                not seconds > 0 or math.isinf(seconds):
            raise InvalidInput(f"ttl must be a positive number of seconds, got {ttl!r}")
        expires_at = now + float(seconds)
    meta = {} if metadata is None else metadata
    if not isinstance(meta, Mapping) or not all(isinstance(k, str) for k in meta):
        raise InvalidInput("metadata must be a dict with string keys")
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata is not JSON-serialisable: {exc}") from exc
    if created_at is not None and (isinstance(created_at, bool) or
                                   not isinstance(created_at, (int, float))):
        raise InvalidInput(f"created_at must be seconds since the epoch, got {created_at!r}")
    return NewItem(text=text, scope=scope_obj, source=source, confidence=float(confidence),
                   expires_at=expires_at, metadata=dict(meta),
                   created_at=float(created_at) if created_at is not None else None)


def admit_record(record: Any, *, default_scope: Any, max_chars: int) -> NewItem:
    """One element of ``write_many``: a string, or a dict of write fields."""
    if isinstance(record, str):
        return admit(record, scope=default_scope, max_chars=max_chars)
    if isinstance(record, Mapping):
        unknown = set(record) - set(WRITE_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown field(s) {sorted(unknown)}; allowed: {WRITE_FIELDS}")
        if "text" not in record:
            raise InvalidInput("record has no 'text' field")
        fields = dict(record)
        fields.setdefault("scope", default_scope)
        return admit(fields.pop("text"), max_chars=max_chars, **fields)
    raise InvalidInput(f"each record must be a string or a dict, got {type(record).__name__}")
