"""LLM-free linking across passages: titles, entity mentions, aliases, conversation sessions.

The extractor links a passage only to the phrases it found in that passage. Linking adds the
edges that plain string matching can find (no LLM, no model):

* **mentions** - a passage whose text names a phrase node (a capitalised name or a date
  another passage of the same scope was linked to) gets the context edge the extractor
  missed, e.g. "Green Day's third album" links to the node ``green day``;
* **titles** - a passage that names another passage's ``metadata["title"]`` gets an edge to
  that passage (Wikipedia-style corpora: the page a passage is about);
* **aliases** - phrase nodes that name the same entity get an edge: equal up to case,
  punctuation, a possessive ``'s``, a leading article (``the beatles`` / ``beatles``), an
  acronym of a capitalised name (``NYC`` / ``New York City``), or a date written another way
  (``8 May, 2023`` / ``May 8th 2023`` -> ``2023 05 08``);
* **sessions** - turns of one conversation session (``metadata["session"]`` or
  ``"session_id"``, within one scope) are joined to their neighbours in the session.

Everything here is a pure function of the passages' texts and metadata and the phrase nodes;
mention and title links never cross scopes (the graph a scope sees stays a function of that
scope's passages, see :mod:`memkit.backends.hipporag.scoped`).

>>> alias_key("The Beatles'"), alias_key("Obama's"), alias_key("May 8th, 2023")
('beatles', 'obama', '2023 05 08')
>>> acronym("New York City"), acronym("University of California"), acronym("green day")
('nyc', 'uc', None)
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memkit.nlp import alnum_count, normalise_phrase

_MONTHS = {name: n for n, names in enumerate((
    ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
    ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
    ("october", "oct"), ("november", "nov"), ("december", "dec")), start=1) for name in names}
_MONTH = r"(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_ORD = r"(?:st|nd|rd|th)?"
_DATES = [  # (pattern, group order (year, month, day); day 0 = month precision)
    (re.compile(rf"\b(\d{{1,2}}){_ORD}(?:\s+of)?\s+{_MONTH},?\s+(\d{{4}})\b", re.I), (3, 2, 1)),
    (re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}){_ORD},?\s+(\d{{4}})\b", re.I), (3, 1, 2)),
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), (1, 2, 3)),
    (re.compile(rf"\b{_MONTH},?\s+(\d{{4}})\b", re.I), (2, 1, 0)),
]
_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b|(?<=s)['’](?=\W|$)")
_ARTICLES = ("the ", "a ", "an ")
_TOKEN = re.compile(r"\w+(?:['’.]\w+)*['’]?")
_DATE_KEY = re.compile(r"\d{4} \d{2}( \d{2})?")
_MINOR = frozenset("of the and for in on at de du la le von van der a an &".split())


def _date_key(m: re.Match[str], order: tuple[int, int, int]) -> str | None:
    y, mo, d = order
    year = int(m.group(y))
    month_s = m.group(mo)
    month = int(month_s) if month_s.isdigit() else _MONTHS[month_s.casefold().rstrip(".")]
    day = int(m.group(d)) if d else 0
    if not (1 <= month <= 12 and 0 <= day <= 31 and 1000 <= year <= 2999):
        return None
    return f"{year:04d} {month:02d}" + (f" {day:02d}" if day else "")


def dates_in(text: str) -> list[str]:
    """The dates a text names, each as ``"YYYY MM DD"`` (or ``"YYYY MM"``), in text order;
    a span matched by a more precise pattern is not matched again.

    >>> dates_in("on 8 May, 2023 and May 9th 2023, then 2023-06-01; in July 2022")
    ['2023 05 08', '2023 05 09', '2023 06 01', '2022 07']
    """
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for pattern, order in _DATES:
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            key = _date_key(m, order)
            if key is not None:
                found.append((m.start(), key))
                taken.append((m.start(), m.end()))
    return [k for _, k in sorted(found)]


def alias_key(surface: str) -> str:
    """The form two names of one entity share: a whole date as ``"YYYY MM DD"``; otherwise
    the normalised phrase without a possessive ``'s`` and a leading article."""
    stripped = surface.strip(" ,;:.\"'()[]")
    dates = dates_in(stripped)
    if len(dates) == 1:
        for pattern, _ in _DATES:
            if pattern.fullmatch(stripped):
                return dates[0]
    norm = normalise_phrase(_POSSESSIVE.sub("", surface))
    for article in _ARTICLES:
        if norm.startswith(article) and len(norm) > len(article):
            norm = norm[len(article):]
            break
    return norm


def acronym(surface: str) -> str | None:
    """Initials of a name of two or more capitalised words (minor words skipped), else None."""
    words = [w for w in re.findall(r"[^\W\d_]+", surface) if w.casefold() not in _MINOR]
    if len(words) < 2 or not all(w[0].isupper() for w in words):
        return None
    return "".join(w[0] for w in words).casefold()


def _is_acronym(surface: str) -> bool:
    s = surface.strip().replace(".", "")
    return 3 <= len(s) <= 6 and s.isalpha() and s.isupper()


def name_runs(text: str) -> list[str]:
    """The names a text writes: maximal runs of capitalised words (minor words such as
    "of" inside), cut after a possessive; a sentence's first word may also be dropped (it is
    capitalised as a sentence start). Digits end a run (dates are read by :func:`dates_in`).

    >>> name_runs("In 1990 Green Day's album met the University of Chicago Press. Paris fell")
    ['In', 'Green Day', 'University of Chicago Press', 'Paris']
    """
    runs: list[list[str]] = []
    starts: list[bool] = []
    cur: list[str] = []
    prev_end = 0
    for m in _TOKEN.finditer(text):
        gap = text[prev_end:m.start()]
        prev_end = m.end()
        raw = m.group()
        word = _POSSESSIVE.sub("", raw)
        sentence_start = not runs and not cur or bool(re.search(r"[.!?:\n]", gap))
        cap = word[:1].isupper()
        minor = word.casefold() in _MINOR and not cap
        if cur and (sentence_start or not (cap or minor)):
            runs.append(cur)
            cur = []
        if cap and not cur:
            starts.append(sentence_start)
        if cap or (minor and cur):
            cur.append(word)
        if cur and word != raw.rstrip("'’"):  # a possessive ends the name
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    out: list[str] = []
    for run, first in zip(runs, starts, strict=True):
        while run and run[-1].casefold() in _MINOR and not run[-1][:1].isupper():
            run = run[:-1]
        out.append(" ".join(run))
        if first and len(run) > 1:
            out.append(" ".join(run[1:]))
    return out


def mention_keys(text: str) -> set[str]:
    """Alias keys of the names (:func:`name_runs`) and the dates a text names: what a
    passage can be matched on.

    >>> sorted(mention_keys("The Beatles met Green Day's drummer on May 8, 2023."))
    ['2023 05 08', 'beatles', 'green day', 'may']
    """
    out = {alias_key(run) for run in name_runs(text)}
    out.update(dates_in(text))
    out.discard("")
    return out


@dataclass(frozen=True)
class LinkPassage:
    """What linking reads of one passage."""

    id: int
    text: str
    title: str | None = None
    group: Any = None  # the scope: links never join passages of different groups
    session: Any = None  # conversation session (within the group); None = not a turn
    order: float = 0.0  # position within the session (e.g. item id or time)
    speaker: str | None = None  # who said it (a conversation turn)
    date: str | None = None  # the session date of a turn (metadata["date"])


@dataclass
class Links:
    """Edges in id space."""

    mentions: list[tuple[int, int]] = field(default_factory=list)  # (item id, phrase id)
    titles: list[tuple[int, int]] = field(default_factory=list)  # (item id, item id)
    aliases: list[tuple[int, int]] = field(default_factory=list)  # (phrase id, phrase id)
    sessions: list[tuple[int, int, float]] = field(default_factory=list)  # (item, item, w)

    def counts(self) -> dict[str, int]:
        return {"mentions": len(self.mentions), "titles": len(self.titles),
                "aliases": len(self.aliases), "sessions": len(self.sessions)}


def _linkable(surface: str, key: str) -> bool:
    """May text matching link this phrase? Names (capitalised surface) and dates, 3+
    letters/digits: a lower-case common noun ("album") would link everything."""
    if _DATE_KEY.fullmatch(key):
        return True
    if key in _MONTHS:  # "May" alone is no entity (whole dates are linked as dates)
        return False
    s = surface.lstrip(" \"'(")
    return alnum_count(key) >= 3 and bool(s) and s[0].isupper()


def alias_links(phrases: dict[int, str]) -> list[tuple[int, int]]:
    """Pairs of phrase ids (lower id first, sorted) naming one entity: equal alias keys, or
    an all-capitals acronym and the name it abbreviates. Each set of equal phrases is a star
    on its lowest id."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for pid in sorted(phrases):
        key = alias_key(phrases[pid])
        if alnum_count(key) >= 2:
            by_key[key].append(pid)
    pairs: set[tuple[int, int]] = set()
    for ids in by_key.values():
        pairs.update((ids[0], other) for other in ids[1:])
    short = {normalise_phrase(s): pid for pid, s in sorted(phrases.items(), reverse=True)
             if _is_acronym(s)}
    expansions: dict[str, set[str]] = defaultdict(set)  # initials -> the names (alias keys)
    named: dict[str, int] = {}
    for pid in sorted(phrases):
        initials = acronym(phrases[pid])
        if initials is not None and len(initials) >= 3 and initials in short:
            expansions[initials].add(alias_key(phrases[pid]))
            named.setdefault(initials, pid)
    for initials, names in expansions.items():
        if len(names) == 1:  # an acronym of one name only (UT: Utah? Texas? - no link)
            pairs.add(tuple(sorted((named[initials], short[initials]))))  # type: ignore[arg-type]
    return sorted(pairs)


def build_links(passages: Sequence[LinkPassage], phrases: dict[int, str],
                mentioned: dict[int, Iterable[int]], *, mentions: bool = False,
                titles: bool = False, aliases: bool = False, session_window: int = -1
                ) -> Links:
    """The link edges of a corpus.

    ``phrases``: phrase id -> surface; ``mentioned``: item id -> the phrase ids its
    extraction linked it to. ``session_window``: -1 no session links, 0 every pair of turns
    of a session, w > 0 turns at most w apart; a session edge weighs 1 / (the number of
    session neighbours of its busier end), so a turn's session edges sum to at most 1.
    """
    out = Links()
    groups: dict[Any, list[LinkPassage]] = defaultdict(list)
    for p in passages:
        groups[p.group].append(p)
    keys = {pid: alias_key(s) for pid, s in phrases.items()} if mentions else {}
    for members in groups.values():
        if mentions or titles:
            _text_links(members, phrases, keys, mentioned, mentions, titles, out)
        if session_window >= 0:
            out.sessions.extend(_session_links(members, session_window))
    if aliases:
        out.aliases = alias_links(phrases)
    out.mentions.sort()
    out.titles.sort()
    out.sessions.sort()
    return out


def _text_links(members: list[LinkPassage], phrases: dict[int, str], keys: dict[int, str],
                mentioned: dict[int, Iterable[int]], mentions: bool, titles: bool,
                out: Links) -> None:
    by_key: dict[str, int] = {}  # one phrase per name this group's passages were linked to
    if mentions:
        for p in members:
            for pid in mentioned.get(p.id, ()):
                key = keys.get(pid)
                if key is None or not _linkable(phrases[pid], key):
                    continue
                held = by_key.get(key)  # the phrase written as the name itself, else lowest
                if held is None or (normalise_phrase(phrases[pid]) == key,
                                    -pid) > (normalise_phrase(phrases[held]) == key, -held):
                    by_key[key] = pid
    by_title: dict[str, list[int]] = defaultdict(list)
    if titles:
        for p in members:
            if p.title:
                key = alias_key(p.title)
                if alnum_count(key) >= 3:
                    by_title[key].append(p.id)
    seen_titles: set[tuple[int, int]] = set()
    for p in members:
        found = mention_keys(p.text)
        if mentions:
            have = set(mentioned.get(p.id, ()))
            new = {by_key[key] for key in found if key in by_key} - have
            out.mentions.extend((p.id, pid) for pid in sorted(new))
        if titles:
            for key in found:
                for other in by_title.get(key, ()):
                    pair = (min(p.id, other), max(p.id, other))
                    if other != p.id and pair not in seen_titles:
                        seen_titles.add(pair)
                        out.titles.append(pair)


def _session_links(members: list[LinkPassage], window: int) -> list[tuple[int, int, float]]:
    sessions: dict[Any, list[LinkPassage]] = defaultdict(list)
    for p in members:
        if p.session is not None:
            sessions[p.session].append(p)
    out: list[tuple[int, int, float]] = []
    for turns in sessions.values():
        turns.sort(key=lambda t: (t.order, t.id))
        n = len(turns)
        reach = n - 1 if window == 0 else min(window, n - 1)

        degree = [min(i, reach) + min(n - 1 - i, reach) for i in range(n)]
        for i in range(n):
            for j in range(i + 1, min(n, i + reach + 1)):
                w = 1.0 / max(degree[i], degree[j], 1)
                a, b = sorted((turns[i].id, turns[j].id))
                out.append((a, b, w))
    return out
