"""Event times given by users: epoch seconds, ISO 8601 strings or ``datetime`` objects.

The normalisation, in one place:

* a number is seconds since the epoch (finite, ``|t| <= 1e12``);
* a string must be ISO 8601 (``2023-05-08``, ``2023-05-08T13:56:00+02:00``,
  ``2023-05-08 13:56Z``); anything else ("yesterday", "8 May") is refused, and so is an
  impossible date (``2023-02-30``);
* a ``datetime`` (or an ISO string) without a timezone is read as UTC. One call (one
  conversation) may not mix naive and aware values: that is almost always a bug (local
  times beside UTC ones), so :class:`TimeParser` refuses the first value that differs.

>>> to_epoch("2023-05-08T00:00:00Z", "at")
1683504000.0
>>> to_epoch("2023-05-08", "at") == to_epoch("2023-05-08T00:00:00+00:00", "at")
True
>>> to_epoch("2023-02-30", "at")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
memkit.errors.InvalidInput: at: '2023-02-30' is not a valid ISO 8601 date/time (day is out ...
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from numbers import Real
from typing import Any

from memkit.errors import InvalidInput, safe_repr

MAX_EPOCH_S = 1e12


def _parse_iso(text: str, field: str) -> datetime:
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {safe_repr(text, 60)} is not a valid ISO 8601 "
                           f"date/time ({exc})") from None


def _aware(value: Any, field: str) -> tuple[float, bool]:
    """(epoch seconds, whether the value carried a timezone; numbers count as aware)."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be a time, got {value!r}")
    if isinstance(value, Real):
        number = float(value)
        if not math.isfinite(number) or abs(number) > MAX_EPOCH_S:
            raise InvalidInput(f"{field} must be a finite number of seconds since the epoch "
                               f"(|t| <= {MAX_EPOCH_S:.0e}), got {safe_repr(value, 60)}")
        return number, True
    if isinstance(value, str):
        value = _parse_iso(value, field)
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise InvalidInput(f"{field} must be epoch seconds, an ISO 8601 string or a datetime, "
                           f"got {type(value).__name__}")
    aware = value.tzinfo is not None and value.utcoffset() is not None
    if not aware:
        value = value.replace(tzinfo=UTC)
    try:
        number = value.timestamp()
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidInput(f"{field}: {value!r} cannot be represented ({exc})") from None
    if abs(number) > MAX_EPOCH_S:
        raise InvalidInput(f"{field}: {value.isoformat()} is too far from 1970")
    return number, aware


def to_epoch(value: Any, field: str) -> float:
    """One time value as epoch seconds (naive = UTC); None is not accepted here."""
    return _aware(value, field)[0]


class TimeParser:
    """Parses the times of one call, refusing a naive/aware mix (see the module docstring).

    >>> p = TimeParser()
    >>> p("2023-05-08T10:00:00", "messages[0].at") > 0
    True
    >>> p("2023-05-08T10:00:00+02:00", "messages[1].at")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    memkit.errors.InvalidInput: messages[1].at has a timezone but messages[0].at has none: ...
    """

    def __init__(self) -> None:
        self._first: tuple[str, bool] | None = None

    def __call__(self, value: Any, field: str) -> float:
        number, aware = _aware(value, field)
        if isinstance(value, Real):
            return number  # epoch seconds are zone-free
        if self._first is None:
            self._first = (field, aware)
        elif self._first[1] != aware:
            has, lacks = (field, self._first[0]) if aware else (self._first[0], field)
            raise InvalidInput(f"{has} has a timezone but {lacks} has none: give every time a "
                               "timezone, or none (naive times are read as UTC)")
        return number


def iso(t: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 UTC string (None stays None)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
