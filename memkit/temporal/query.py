"""Time-aware reads: a time expression in the query becomes a window, and hits inside it (by
event time) move up.

:func:`resolve_window` finds the expression with the maintained ``dateparser`` library (the
``[temporal]`` extra), resolved against the question's date: "last week", "in May 2023",
"yesterday", "two years ago", "on 3 May, 2023". A match is kept only when it names a year, a
month or a relative period (so "the 18th" or the verb "may" are not dates); its
granularity (day, week, month, year) sets the window.

:class:`TimeAware` (``Memory.read(..., time_aware=...)``) re-ranks a read's candidates. The
knobs, all keyword options:

==================  =========================================================================
``reference``       the question's date (epoch s, ISO 8601 or datetime); default: now
``mode``            ``"boost"`` (default): hits in the window first, in their own order, then
                    the rest; ``"filter"``: only hits in the window (all hits if none is)
``slack_days``      how long after the window an item still counts as in it (a chat line
                    reporting an event comes after it; default 14)
``candidates``      how many backend candidates to re-rank (default 50, at least ``k``)
``half_life_days``  with a value: also a recency prior; items lose half their prior weight
                    every so many days before ``reference`` (default None: off)
``recency_weight``  the weight of that prior against the base rank (default 0.5)
==================  =========================================================================

An item's time is its ``event_from`` when set, else its ``created_at``.

>>> w = resolve_window("Where did Ann travel in May 2023?", reference="2023-08-01")
>>> (w.text, w.period, w.start_iso, w.end_iso)
('in May 2023', 'month', '2023-05-01', '2023-06-01')
>>> resolve_window("Where does Ann work?", reference="2023-08-01") is None
True
>>> resolve_window("What may happen on the 18th?", reference="2023-08-01") is None
True
"""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from memkit._deps import require
from memkit.errors import InvalidInput
from memkit.temporal.times import iso, to_epoch
from memkit.types import Hit

# "may" is a verb more often than a month: only "May" with a capital counts
_MONTHS = ({m.lower() for m in calendar.month_name[1:]} |
           {m.lower() for m in calendar.month_abbr[1:]}) - {"may"}
_RELATIVE = {"ago", "last", "yesterday", "today", "week", "weeks", "month", "months", "year",
             "years", "weekend", "tonight", "previous"}
_DAY = 86_400.0


@dataclass(frozen=True)
class TimeWindow:
    """A resolved time expression: ``[start, end)`` in epoch seconds, and its granularity."""

    text: str
    period: str
    start: float
    end: float

    @property
    def start_iso(self) -> str:
        return (iso(self.start) or "")[:10]

    @property
    def end_iso(self) -> str:
        return (iso(self.end) or "")[:10]


def _is_date_like(text: str) -> bool:
    words = [w.strip(",.") for w in text.lower().split()]
    if any(w.isdigit() and len(w) == 4 for w in words):
        return True
    if any(w in _MONTHS for w in words) or "May" in text.split():
        return True
    return any(w in _RELATIVE for w in words)


def _bounds(day: datetime, period: str) -> tuple[datetime, datetime]:
    day = day.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        nxt = (start + timedelta(days=32)).replace(day=1)
        return start, nxt
    if period == "year":
        return day.replace(month=1, day=1), day.replace(year=day.year + 1, month=1, day=1)
    return day, day + timedelta(days=1)


def resolve_window(query: str, reference: Any = None) -> TimeWindow | None:
    """The first date-like time expression in ``query`` as a window, or None."""
    dateparser_search = require("dateparser.search", "temporal", "time-aware reads")
    dateparser_date = require("dateparser.date", "temporal", "time-aware reads")
    ref = to_epoch(reference, "reference") if reference is not None else \
        datetime.now(UTC).timestamp()
    base = datetime.fromtimestamp(ref, UTC).replace(tzinfo=None)
    settings = {"RELATIVE_BASE": base, "PREFER_DATES_FROM": "past",
                "RETURN_TIME_AS_PERIOD": True}
    found = dateparser_search.search_dates(query, languages=["en"], settings=settings) or []
    parser = dateparser_date.DateDataParser(languages=["en"], settings=settings)
    for text, _ in found:
        if not _is_date_like(text):
            continue
        data = parser.get_date_data(text)
        if data.date_obj is None:
            continue
        period = data.period if data.period in ("day", "week", "month", "year") else "day"
        start, end = _bounds(data.date_obj.replace(tzinfo=None), period)
        return TimeWindow(text, period, start.replace(tzinfo=UTC).timestamp(),
                          end.replace(tzinfo=UTC).timestamp())
    return None


@dataclass(frozen=True)
class TimeAware:
    """Options of a time-aware read (see the module docstring for each knob)."""

    reference: float | None = None
    mode: str = "boost"
    slack_days: float = 14.0
    candidates: int = 50
    half_life_days: float | None = None
    recency_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("boost", "filter"):
            raise InvalidInput(f"time_aware mode must be 'boost' or 'filter', got "
                               f"{self.mode!r}")
        if not 0 <= self.slack_days <= 3650:
            raise InvalidInput("time_aware slack_days must be in [0, 3650]")
        if not 1 <= self.candidates <= 1000:
            raise InvalidInput("time_aware candidates must be in [1, 1000]")
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise InvalidInput("time_aware half_life_days must be positive")
        if not 0 <= self.recency_weight <= 100:
            raise InvalidInput("time_aware recency_weight must be in [0, 100]")

    @classmethod
    def coerce(cls, value: Any) -> TimeAware:
        """``True`` (defaults), a dict of knobs, or a TimeAware."""
        if isinstance(value, TimeAware):
            return value
        if value is True:
            return cls()
        if isinstance(value, dict):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise InvalidInput(f"unknown time_aware option(s) {sorted(unknown)}; allowed: "
                                   f"{sorted(cls.__dataclass_fields__)}")
            opts = dict(value)
            if opts.get("reference") is not None:
                opts["reference"] = to_epoch(opts["reference"], "time_aware.reference")
            return cls(**opts)
        raise InvalidInput("time_aware must be True, a dict of options or a TimeAware")

    def apply(self, query: str, hits: list[Hit]) -> tuple[list[Hit], dict[str, Any]]:
        """Re-rank ``hits``; returns them and a trace (the window, how many were in it)."""
        ref = self.reference if self.reference is not None else datetime.now(UTC).timestamp()
        window = resolve_window(query, ref)
        trace: dict[str, Any] = {"window": None, "in_window": 0,
                                 "options": {k: v for k, v in asdict(self).items()}}
        scored = []
        for rank, hit in enumerate(hits):
            t = hit.item.event_from if hit.item.event_from is not None else hit.item.created_at
            score = 1.0 / (rank + 10)
            if self.half_life_days is not None:
                age_days = max(0.0, (ref - t) / _DAY)
                score += self.recency_weight * 0.1 * 0.5 ** (age_days / self.half_life_days)
            inside = window is not None and \
                window.start <= t < window.end + self.slack_days * _DAY
            scored.append((not inside, -score, rank, hit, inside))
        if window is not None:
            trace["window"] = {"text": window.text, "period": window.period,
                               "start": window.start_iso, "end": window.end_iso}
            trace["in_window"] = sum(s[4] for s in scored)
        if window is None or not trace["in_window"]:
            scored = [(False, *s[1:]) for s in scored]
        elif self.mode == "filter":
            scored = [s for s in scored if s[4]]
        scored.sort(key=lambda s: s[:3])
        return [s[3] for s in scored], trace
