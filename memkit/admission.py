"""Admission: turn user input into validated NewItems, or an InvalidInput naming the problem.

Every public :class:`memkit.Memory` method checks its arguments here before touching the
record, so bad input is rejected with the field's name, and never crashes a backend, never
allocates without bound, and never silently means something else. The bounds:

========================  ================================================================
``k``                     an int in [1, MAX_K] (1,000)
text                      a non-empty str, no NUL, no lone surrogate, <= ``max_item_chars``
query                     a non-empty str, no NUL, no lone surrogate, <= MAX_QUERY_CHARS
source, reason            a str of <= MAX_LABEL_CHARS (2,000), no NUL / lone surrogate
metadata                  a dict with str keys; JSON values only; <= MAX_METADATA_DEPTH (32)
                          levels; <= MAX_METADATA_CHARS (100,000) characters as JSON
backend                   a name or a list of names: <= MAX_BACKENDS (16) names, each
                          <= MAX_BACKEND_NAME (100) characters
ids                       an int or an iterable of ints (a str is not a list of ids)
now, as_of, created_at    a finite number of seconds since the epoch, |t| <= 1e12
event_from, event_until   epoch seconds, an ISO 8601 string or a datetime (naive = UTC; see
                          :mod:`memkit.temporal.times`); event_until > event_from
records (write_many)      an iterable of records; a str, bytes or dict is refused (it would
                          be taken apart character by character / key by key)
========================  ================================================================

>>> check_k(10**9)
Traceback (most recent call last):
...
memkit.errors.InvalidInput: k must be at most 1000, got 1000000000
>>> check_ids([3, 1])
[3, 1]
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from numbers import Integral, Real
from typing import Any

from memkit.errors import InvalidInput, safe_repr
from memkit.store.sqlite import NewItem
from memkit.types import Scope

WRITE_FIELDS = ("text", "scope", "source", "confidence", "ttl", "metadata", "created_at",
                "event_from", "event_until")

MAX_K = 1_000
MAX_QUERY_CHARS = 100_000
MAX_LABEL_CHARS = 2_000
MAX_METADATA_DEPTH = 32
MAX_METADATA_CHARS = 100_000
MAX_BACKENDS = 16
MAX_BACKEND_NAME = 100
MAX_CANDIDATES = 10_000
MAX_EPOCH_S = 1e12
_INT64 = 2**63


def _show(value: Any, limit: int = 60) -> str:
    """``repr`` cut in length and depth (error messages never echo a huge input)."""
    return safe_repr(value, limit)


def check_str(value: Any, field: str, *, max_chars: int, allow_empty: bool = False,
              allow_nul: bool = False) -> str:
    """A str that SQLite, JSON and every tokenizer can take: no NUL, no lone surrogate
    (what an invalid UTF-8 byte becomes under ``surrogateescape``), not too long."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidInput(f"{field} is empty or whitespace only")
    if len(value) > max_chars:
        raise InvalidInput(f"{field} is {len(value)} characters, over the limit of {max_chars}")
    if not allow_nul and "\x00" in value:
        raise InvalidInput(f"{field} contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                f"{field} is not valid Unicode: lone surrogate {value[exc.start]!r} at "
                f"position {exc.start} (invalid UTF-8 in the input?)") from None
    return value


def _optional_label(value: Any, field: str) -> str | None:
    if value is None:
        return None
    return check_str(value, field, max_chars=MAX_LABEL_CHARS, allow_empty=True)


def check_k(k: Any, field: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, Integral):
        raise InvalidInput(f"{field} must be a positive int, got {_show(k)}")
    value = int(k)
    if value <= 0:
        raise InvalidInput(f"{field} must be a positive int, got {value}")
    if value > MAX_K:
        raise InvalidInput(f"{field} must be at most {MAX_K}, got {value}")
    return value


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a real number (bools are not) or
    not representable (NaN, inf, an int of 400 digits)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


def check_time(value: Any, field: str) -> float | None:
    """None, or a finite number of seconds since the epoch, within +-MAX_EPOCH_S (an int
    beyond 64 bits would overflow SQLite; nothing is dated 30,000 years away)."""
    if value is None:
        return None
    number = _finite(value)
    if number is None or not -MAX_EPOCH_S <= number <= MAX_EPOCH_S:
        raise InvalidInput(f"{field} must be a finite number of seconds since the epoch "
                           f"(|{field}| <= {MAX_EPOCH_S:.0e}), got {_show(value)}")
    return number


def check_now(now: Any) -> float | None:
    return check_time(now, "now")


FORGET_POLICIES = ("ttl", "superseded")


def check_policy(policy: Any) -> str:
    if not isinstance(policy, str) or policy not in FORGET_POLICIES:
        raise InvalidInput(f"unknown forget policy {_show(policy)}; use 'ttl' or 'superseded'")
    return policy


def check_ids(ids: Any, field: str = "ids") -> list[int]:
    """One id or an iterable of ids, as a list of ints."""
    if isinstance(ids, Integral) and not isinstance(ids, bool):
        return [int(ids)]
    if ids is None or isinstance(ids, (str, bytes, bytearray, Mapping, bool)) or \
            not isinstance(ids, Iterable):
        raise InvalidInput(f"{field} must be an int or a list of ints (item ids are "
                           f"integers), got {_show(ids)}")
    out = []
    for n, i in enumerate(ids):
        if isinstance(i, bool) or not isinstance(i, Integral):
            raise InvalidInput(f"{field}[{n}] must be an int (item ids are integers), got "
                               f"{_show(i)}")
        out.append(int(i))
    return out


def check_id(item_id: Any, field: str = "item_id") -> int:
    """One item id: an int (whether it exists is the store's question: NotFound)."""
    if isinstance(item_id, bool) or not isinstance(item_id, Integral):
        raise InvalidInput(f"{field} must be an int (item ids are integers), got "
                           f"{_show(item_id)}")
    return int(item_id)


def check_reason(reason: Any) -> str | None:
    return _optional_label(reason, "reason")


def check_backend(backend: Any) -> None:
    """A backend name, a comma-separated list, or a list of names (bounded)."""
    if backend is None:
        return
    if isinstance(backend, str):
        if len(backend) > MAX_BACKENDS * (MAX_BACKEND_NAME + 1):
            raise InvalidInput(f"backend is {len(backend)} characters, over the limit of "
                               f"{MAX_BACKENDS * (MAX_BACKEND_NAME + 1)}")
        names: list[Any] = backend.split(",")
    elif isinstance(backend, (list, tuple)):
        names = list(backend)
    else:
        raise InvalidInput(f"backend must be a name or a list of names, got {_show(backend)}")
    if len(names) > MAX_BACKENDS:
        raise InvalidInput(f"backend names {len(names)} backends, over the limit of "
                           f"{MAX_BACKENDS}")
    for n, name in enumerate(names):
        check_str(name, f"backend[{n}]", max_chars=MAX_BACKEND_NAME, allow_empty=True)


def check_read(query: Any, k: Any, *, backend: Any = None, as_of: Any = None,
               budget_tokens: Any = None, rerank: Any = None,
               rerank_options: Any = None) -> None:
    """The arguments of ``Memory.read`` (scope is checked by ``Scope.coerce``)."""
    check_str(query, "query", max_chars=MAX_QUERY_CHARS)
    check_k(k)
    check_backend(backend)
    check_time(as_of, "as_of")
    if budget_tokens is not None:
        if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, Integral) or \
                budget_tokens <= 0:
            raise InvalidInput(f"budget_tokens must be a positive int, got "
                               f"{_show(budget_tokens)}")
    if rerank is not None:
        check_str(rerank, "rerank", max_chars=MAX_BACKEND_NAME)
    if rerank_options is not None:
        if not isinstance(rerank_options, Mapping) or \
                not all(isinstance(key, str) for key in rerank_options):
            raise InvalidInput("rerank_options must be a dict with string keys")
        if "candidates" in rerank_options:
            cand = rerank_options["candidates"]
            if isinstance(cand, bool) or not isinstance(cand, Integral) or \
                    not 1 <= int(cand) <= MAX_CANDIDATES:
                raise InvalidInput(f"rerank_options['candidates'] must be an int in "
                                   f"[1, {MAX_CANDIDATES}], got {_show(cand)}")


def check_records(records: Any, batch_size: Any) -> None:
    """The arguments of ``write_many``: an iterable of records, a positive batch size."""
    if isinstance(records, (str, bytes, bytearray)):
        raise InvalidInput("records must be a list (or iterable) of records, got a single "
                           f"{type(records).__name__}: wrap it as [text]")
    if isinstance(records, Mapping) or not isinstance(records, Iterable):
        raise InvalidInput("records must be a list (or iterable) of strings or dicts, got "
                           f"{type(records).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size <= 0:
        raise InvalidInput(f"batch_size must be a positive int, got {_show(batch_size)}")


def check_metadata(metadata: Any, field: str = "metadata") -> dict[str, Any]:
    """A JSON object: str keys, JSON values, bounded depth and size. Walks iteratively, so
    nesting deep enough to overflow a recursive encoder is rejected, not crashed on."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"{field} must be a dict with string keys, got "
                           f"{type(metadata).__name__}")
    stack: list[tuple[Any, int, str]] = [(metadata, 1, field)]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, (Mapping, list, tuple)):
            if depth > MAX_METADATA_DEPTH:
                raise InvalidInput(f"{field} is nested deeper than {MAX_METADATA_DEPTH} "
                                   f"levels (at {path[:200]})")
            if isinstance(value, Mapping):
                for key, sub in value.items():
                    if not isinstance(key, str):
                        raise InvalidInput(f"{path[:200]} has a non-string key {_show(key)}")
                    check_str(key, f"{path[:200]} key", max_chars=MAX_METADATA_CHARS,
                              allow_empty=True, allow_nul=True)
                    stack.append((sub, depth + 1, f"{path}[{key[:40]!r}]"))
            else:
                stack.extend((sub, depth + 1, f"{path}[{n}]") for n, sub in enumerate(value))
        elif isinstance(value, str):
            check_str(value, path[:200], max_chars=MAX_METADATA_CHARS, allow_empty=True,
                      allow_nul=True)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, Integral):
            if not -_INT64 <= int(value) < _INT64:
                raise InvalidInput(f"{path[:200]}: integers are limited to 64 bits, got "
                                   f"{_show(value)}")
        elif isinstance(value, Real):
            if not math.isfinite(value):
                raise InvalidInput(f"{path[:200]} must be finite (JSON has no NaN/inf), got "
                                   f"{value!r}")
        else:
            raise InvalidInput(f"{path[:200]} is a {type(value).__name__}, not "
                               "JSON-serialisable: metadata holds JSON values only (str, "
                               "number, bool, null, list, dict)")
    encoded = json.dumps(metadata, ensure_ascii=False, allow_nan=False, default=_no_default)
    if len(encoded) > MAX_METADATA_CHARS:
        raise InvalidInput(f"{field} is {len(encoded)} characters as JSON, over the limit of "
                           f"{MAX_METADATA_CHARS}")
    return json.loads(encoded)  # type: ignore[no-any-return]


def _no_default(value: Any) -> Any:
    """What json cannot encode but check_metadata admitted: numpy numbers, other mappings."""
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")  # pragma: no cover - walked above


def check_event_time(event_from: Any, event_until: Any) -> tuple[float | None, float | None]:
    """An item's event-time interval ``[event_from, event_until)``; None = unbounded."""
    from memkit.temporal.times import to_epoch

    start = None if event_from is None else to_epoch(event_from, "event_from")
    end = None if event_until is None else to_epoch(event_until, "event_until")
    if start is not None and end is not None and not end > start:
        raise InvalidInput(f"event_until ({end}) must be after event_from ({start})")
    return start, end


def admit(text: Any, *, scope: Any = None, source: Any = None, confidence: Any = 1.0,
          ttl: Any = None, metadata: Any = None, created_at: Any = None,
          max_chars: int = 100_000, now: float | None = None, event_from: Any = None,
          event_until: Any = None) -> NewItem:
    """Validate one write. Every rejection names the field and what was wrong."""
    if not isinstance(text, str):
        raise InvalidInput(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InvalidInput("text is empty or whitespace only")
    if len(text) > max_chars:
        raise InvalidInput(
            f"text is {len(text)} characters, over the limit of {max_chars} "
            "(split it, e.g. with `memkit ingest`, or raise max_item_chars)"
        )
    check_str(text, "text", max_chars=max_chars)
    scope_obj = Scope.coerce(scope)
    if source is not None and not isinstance(source, str):
        raise InvalidInput(f"source must be a string or None, got {type(source).__name__}")
    _optional_label(source, "source")
    conf = _finite(confidence)
    if conf is None or not 0.0 <= conf <= 1.0:
        raise InvalidInput(f"confidence must be a number in [0, 1], got {_show(confidence)}")
    now = time.time() if now is None else now
    expires_at = None
    if ttl is not None:
        seconds = _finite(ttl.total_seconds() if isinstance(ttl, timedelta) else ttl)
        if seconds is None or not seconds > 0 or not math.isfinite(now + seconds):
            raise InvalidInput(f"ttl must be a positive number of seconds, got {_show(ttl)}")
        expires_at = now + seconds
    meta = check_metadata(metadata)
    created = check_time(created_at, "created_at")
    start, end = check_event_time(event_from, event_until)
    return NewItem(text=text, scope=scope_obj, source=source, confidence=conf,
                   expires_at=expires_at, metadata=meta, created_at=created,
                   event_from=start, event_until=end)


def admit_record(record: Any, *, default_scope: Any, max_chars: int) -> NewItem:
    """One element of ``write_many``: a string, or a dict of write fields."""
    if isinstance(record, str):
        return admit(record, scope=default_scope, max_chars=max_chars)
    if isinstance(record, Mapping):
        unknown = set(record) - set(WRITE_FIELDS)
        if unknown:
            raise InvalidInput(f"unknown field(s) {_show(sorted(map(str, unknown)), 200)}; "
                               f"allowed: {WRITE_FIELDS}")
        if "text" not in record:
            raise InvalidInput("record has no 'text' field")
        fields = dict(record)
        fields.setdefault("scope", default_scope)
        return admit(fields.pop("text"), max_chars=max_chars, **fields)
    raise InvalidInput(f"each record must be a string or a dict, got {type(record).__name__}")
