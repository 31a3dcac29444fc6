"""Dates as graph nodes, LLM-free: the dates a text names or implies, normalised to spans.

A conversation turn says "yesterday", "last week", "two days ago", "last Saturday", "next
month"; resolved against the turn's session date (its anchor) these become calendar spans
- a day, a week (Monday to Sunday), a weekend (Saturday and Sunday), a month or a year -
and absolute dates in the text ("8 May, 2023", "May 8th 2023", "2023-05-08", "May 2023")
become spans too. Each distinct span is one date node of the graph
(:mod:`memkit.backends.hipporag.linked`); a query's dates (absolute, or a month / year
named alone) are patterns that seed every date node whose span contains a matching day.

Pure functions; nothing here knows about the graph.

>>> from datetime import date
>>> [s.key for s in resolve("I went there yesterday and again last week", date(2023, 5, 8))]
['2023-05-07', '2023-W18']
>>> query_dates("What did Maria do in May 2023?")
[DatePattern(year=2023, month=5, day=None)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_MONTH_NAMES = (("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
                ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
                ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
                ("december", "dec"))
MONTHS = {name: n for n, names in enumerate(_MONTH_NAMES, start=1) for name in names}
_MONTH = r"(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_FULL_MONTH = r"(" + "|".join(names[0] for names in _MONTH_NAMES) + r")"
_ORD = r"(?:st|nd|rd|th)?"
_YEAR = r"((?:19|20)\d{2})"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
            "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
            "a couple of": 2, "couple of": 2}
_NUMBER = r"(\d{1,2}|a couple of|couple of|an|a|one|two|three|four|five|six|seven|eight|nine|" \
          r"ten|eleven|twelve)"

#: absolute dates: (pattern, group numbers of (year, month, day); 0 = not in the pattern)
_ABSOLUTE = [
    (re.compile(rf"\b(\d{{1,2}}){_ORD}(?:\s+of)?\s+{_MONTH},?\s+{_YEAR}\b", re.I), (3, 2, 1)),
    (re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}){_ORD},?\s+{_YEAR}\b", re.I), (3, 1, 2)),
    (re.compile(r"\b((?:19|20)\d{2})[-/](\d{1,2})[-/](\d{1,2})\b"), (1, 2, 3)),
    (re.compile(rf"\b{_MONTH},?\s+{_YEAR}\b", re.I), (2, 1, 0)),
    # a day and month without a year: the anchor's year (a query: any year)
    (re.compile(rf"\b(\d{{1,2}}){_ORD}(?:\s+of)?\s+{_FULL_MONTH}\b", re.I), (0, 2, 1)),
    (re.compile(rf"\b{_FULL_MONTH}\s+(\d{{1,2}}){_ORD}\b(?!:)", re.I), (0, 1, 2)),
]
#: a year or a month named alone: only in queries ("in 2023", "in June"), never in turns
#: (where "May" is a verb and a number may be a price)
_YEAR_ALONE = re.compile(rf"\b(?:in|during|of|since|until|before|after|by)\s+{_YEAR}\b", re.I)
_MONTH_ALONE = re.compile(rf"\b(?:in|during|of|since|until|before|after|by|early|late|mid)"
                          rf"[\s-]+{_FULL_MONTH}\b", re.I)

_REL_DAY = re.compile(
    r"\b(the day before yesterday|yesterday|last night|today|tonight|this morning|"
    r"this afternoon|this evening|tomorrow)\b", re.I)
_DAY_OFFSETS = {"the day before yesterday": -2, "yesterday": -1, "last night": -1, "today": 0,
                "tonight": 0, "this morning": 0, "this afternoon": 0, "this evening": 0,
                "tomorrow": 1}
_REL_UNIT = re.compile(r"\b(last|this|next|past)\s+(week|weekend|month|year)\b", re.I)
_AGO = re.compile(rf"\b{_NUMBER}\s+(day|week|month|year)s?\s+ago\b", re.I)
_REL_WEEKDAY = re.compile(r"\b(last|next)\s+(" + "|".join(WEEKDAYS) + r")\b", re.I)


@dataclass(frozen=True, order=True)
class DateSpan:
    """A calendar span, both ends inclusive, with its granularity."""

    start: date
    end: date
    grain: str  # "day" | "week" | "weekend" | "month" | "year"

    @property
    def key(self) -> str:
        """The node's name: ``2023-05-07``, ``2023-W18`` (ISO week), ``2023-W18-weekend``,
        ``2023-05``, ``2023``."""
        s = self.start
        if self.grain == "day":
            return s.isoformat()
        if self.grain in ("week", "weekend"):
            y, w, _ = s.isocalendar()
            return f"{y}-W{w:02d}" + ("-weekend" if self.grain == "weekend" else "")
        if self.grain == "month":
            return f"{s.year:04d}-{s.month:02d}"
        return f"{s.year:04d}"


@dataclass(frozen=True)
class DatePattern:
    """A query's date: any of its fields may be unknown (``None``)."""

    year: int | None = None
    month: int | None = None
    day: int | None = None


def day(d: date) -> DateSpan:
    return DateSpan(d, d, "day")


def week(d: date) -> DateSpan:
    """The Monday-to-Sunday week of ``d``."""
    monday = d - timedelta(days=d.weekday())
    return DateSpan(monday, monday + timedelta(days=6), "week")


def weekend(d: date) -> DateSpan:
    """The Saturday and Sunday of ``d``'s week."""
    saturday = d - timedelta(days=d.weekday()) + timedelta(days=5)
    return DateSpan(saturday, saturday + timedelta(days=1), "weekend")


def month(year: int, m: int) -> DateSpan:
    last = (date(year + (m == 12), m % 12 + 1, 1) - timedelta(days=1))
    return DateSpan(date(year, m, 1), last, "month")


def year(y: int) -> DateSpan:
    return DateSpan(date(y, 1, 1), date(y, 12, 31), "year")


def add_months(d: date, n: int) -> tuple[int, int]:
    """(year, month) ``n`` months from ``d``'s month.

    >>> add_months(date(2023, 1, 31), -1), add_months(date(2023, 11, 5), 3)
    ((2022, 12), (2024, 2))
    """
    total = d.year * 12 + (d.month - 1) + n
    return total // 12, total % 12 + 1


def _month_number(text: str) -> int:
    return MONTHS[text.casefold().rstrip(".")]


def _absolute(text: str, anchor_year: int | None, query: bool
              ) -> list[tuple[int, int, DatePattern]]:
    """(start, end, pattern) of the absolute dates in ``text``; a more precise pattern's span
    is not matched again. A day-month without a year takes ``anchor_year`` (in a query: any
    year); without an anchor year in a turn it is skipped."""
    found: list[tuple[int, int, DatePattern]] = []
    patterns = list(_ABSOLUTE)
    if query:
        patterns += [(_YEAR_ALONE, (1, 0, 0)), (_MONTH_ALONE, (0, 1, 0))]
    for pattern, (gy, gm, gd) in patterns:
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b, _ in found):
                continue
            y = int(m.group(gy)) if gy else anchor_year
            if y is None and not query:
                continue
            mo = None
            if gm:
                raw = m.group(gm)
                mo = int(raw) if raw.isdigit() else _month_number(raw)
            dd = int(m.group(gd)) if gd else None
            if mo is not None and not 1 <= mo <= 12:
                continue
            if dd is not None and not _valid_day(y, mo, dd):
                continue
            found.append((m.start(), m.end(), DatePattern(y, mo, dd)))
    return sorted(found, key=lambda t: t[0])


def _valid_day(y: int | None, mo: int | None, dd: int) -> bool:
    try:
        date(y or 2000, mo or 1, dd)  # 2000: a leap year, so 29 February is a valid day
    except ValueError:
        return False
    return True


def _span(p: DatePattern) -> DateSpan | None:
    """The span of a fully-yeared pattern."""
    if p.year is None:
        return None
    if p.month is None:
        return year(p.year)
    if p.day is None:
        return month(p.year, p.month)
    return day(date(p.year, p.month, p.day))


def _count(word: str) -> int:
    w = word.casefold()
    return int(w) if w.isdigit() else _NUMBERS[w]


def relative(text: str, anchor: date) -> list[tuple[int, DateSpan]]:
    """(position, span) of the relative date expressions in ``text`` against ``anchor``.

    "last/next <weekday>" is the nearest such weekday strictly before/after the anchor;
    "last/this/next week|weekend|month|year" the calendar unit before/of/after the anchor's
    ("past" = "last"); "N days ago" a day, "N weeks ago" the week of the day 7N days back,
    "N months/years ago" that month/year.

    >>> a = date(2023, 5, 10)  # a Wednesday
    >>> [(s.key) for _, s in relative("last Saturday, next month, two weeks ago", a)]
    ['2023-05-06', '2023-06', '2023-W17']
    """
    out: list[tuple[int, DateSpan]] = []
    for m in _REL_DAY.finditer(text):
        out.append((m.start(), day(anchor + timedelta(days=_DAY_OFFSETS[m.group(1).lower()]))))
    for m in _REL_UNIT.finditer(text):
        step = {"last": -1, "past": -1, "this": 0, "next": 1}[m.group(1).lower()]
        unit = m.group(2).lower()
        if unit in ("week", "weekend"):
            at = anchor + timedelta(days=7 * step)
            out.append((m.start(), week(at) if unit == "week" else weekend(at)))
        elif unit == "month":
            out.append((m.start(), month(*add_months(anchor, step))))
        else:
            out.append((m.start(), year(anchor.year + step)))
    for m in _AGO.finditer(text):
        n = _count(m.group(1))
        unit = m.group(2).lower()
        if unit == "day":
            out.append((m.start(), day(anchor - timedelta(days=n))))
        elif unit == "week":
            out.append((m.start(), week(anchor - timedelta(days=7 * n))))
        elif unit == "month":
            out.append((m.start(), month(*add_months(anchor, -n))))
        else:
            out.append((m.start(), year(anchor.year - n)))
    for m in _REL_WEEKDAY.finditer(text):
        target = WEEKDAYS.index(m.group(2).lower())
        if m.group(1).lower() == "last":
            back = (anchor.weekday() - target) % 7 or 7
            out.append((m.start(), day(anchor - timedelta(days=back))))
        else:
            ahead = (target - anchor.weekday()) % 7 or 7
            out.append((m.start(), day(anchor + timedelta(days=ahead))))
    return sorted(out, key=lambda t: t[0])


def resolve(text: str, anchor: date | None = None) -> list[DateSpan]:
    """The distinct date spans ``text`` names (absolute) or implies (relative, only with an
    ``anchor``), in text order.

    >>> [s.key for s in resolve("On 8 May, 2023 we met; May 9th 2023 too; in July 2022")]
    ['2023-05-08', '2023-05-09', '2022-07']
    >>> [s.key for s in resolve("see you on June 3rd, it was 3 days ago", date(2023, 5, 8))]
    ['2023-06-03', '2023-05-05']
    """
    found: list[tuple[int, DateSpan]] = []
    for start, _, p in _absolute(text, anchor.year if anchor else None, query=False):
        span = _span(p)
        if span is not None:
            found.append((start, span))
    if anchor is not None:
        found.extend(relative(text, anchor))
    out: list[DateSpan] = []
    for _, span in sorted(found, key=lambda t: t[0]):
        if span not in out:
            out.append(span)
    return out


def anchor_date(text: str) -> date | None:
    """The first whole day a date string names (a session date such as LoCoMo's
    ``"1:56 pm on 8 May, 2023"`` or LongMemEval's ``"2023/05/20 (Sat) 02:21"``), else None.

    >>> anchor_date("1:56 pm on 8 May, 2023"), anchor_date("2023/05/20 (Sat) 02:21")
    (datetime.date(2023, 5, 8), datetime.date(2023, 5, 20))
    >>> anchor_date("sometime in May 2023") is None
    True
    """
    for _, _, p in _absolute(text, None, query=False):
        if p.year is not None and p.month is not None and p.day is not None:
            return date(p.year, p.month, p.day)
    return None


def query_dates(text: str) -> list[DatePattern]:
    """The dates a query names: whole or partial absolute dates, a month or a year named
    alone ("in June", "in 2023"); a missing year matches any year. Relative expressions
    are ignored (a query has no anchor).

    >>> query_dates("Who did Maria meet on May 3, 2023 and in June?")
    [DatePattern(year=2023, month=5, day=3), DatePattern(year=None, month=6, day=None)]
    """
    out: list[DatePattern] = []
    for _, _, p in _absolute(text, None, query=True):
        if p not in out:
            out.append(p)
    return out


_ASKS_TIME = re.compile(r"\b(when|since when|what (year|month|day|date|time)|which (year|month|"
                        r"day|date)|how long ago)\b", re.I)


def asks_for_a_date(question: str) -> bool:
    """Whether a question asks for a time ("When did ...", "What year ...", "How long
    ago ..."): its answer is a date, so its evidence names or implies one.

    >>> asks_for_a_date("When did Caroline go to the support group?"), asks_for_a_date(
    ...     "In which year did she move?"), asks_for_a_date("What did she paint?")
    (True, True, False)
    """
    return _ASKS_TIME.search(question) is not None


def matches(span: DateSpan, p: DatePattern) -> bool:
    """Whether some day of ``span`` fits the pattern ``p``.

    >>> matches(month(2023, 5), DatePattern(2023, 5, 3)), matches(day(date(2023, 5, 3)),
    ...     DatePattern(None, 6, None)), matches(year(2022), DatePattern(None, 6, None))
    (True, False, True)
    """
    if p.year is not None and not span.start.year <= p.year <= span.end.year:
        return False
    if p.month is None and p.day is None or span.grain == "year":
        return True  # a year holds every month and day
    d = span.start
    while d <= span.end:  # spans are at most a year long
        if (p.year is None or d.year == p.year) and (p.month is None or d.month == p.month) \
                and (p.day is None or d.day == p.day):
            return True
        d += timedelta(days=1)
    return False
