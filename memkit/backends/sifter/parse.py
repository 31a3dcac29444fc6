"""Parse the proxy's ``<think>…</think><ranking>27,13,34,…</ranking>`` output, robustly.

The ranking is read from the text after ``</think>`` (or the whole text when there is none):
the body of the first ``<ranking>`` tag (up to ``</ranking>``, or to the end when the closing
tag was cut off), its integers in order, de-duplicated (first occurrence wins), out-of-range
ids dropped. The final ``order`` then appends every candidate the model did not rank, in
prefilter order, so it is always a permutation of ``range(n_candidates)``. Text after
``</ranking>`` is ignored. Model output is only pattern-matched, never evaluated.

>>> p = parse_ranking("<think>hmm</think><ranking>2, 2, 9, 0</ranking> done", 4)
>>> p.ranked, p.order, p.duplicates, p.out_of_range
([2, 0], [2, 0, 1, 3], [2], [9])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["RANK_CLOSE", "RANK_OPEN", "ParsedRanking", "parse_ranking"]

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
RANK_OPEN = re.compile(r"<\s*ranking\s*>", re.IGNORECASE)
RANK_CLOSE = re.compile(r"<\s*/\s*ranking\s*>", re.IGNORECASE)
_INT = re.compile(r"-?\d+")
# what an "integers only" body may contain besides digits: separators and session labels
_ALLOWED_NOISE = re.compile(r"^[\s,;>\[\]()#]*(?:session)?[\s,;>\[\]()#]*$", re.IGNORECASE)


@dataclass
class ParsedRanking:
    """What :func:`parse_ranking` found.

    ``ranked``: the model's ids after de-duplication and range filtering (may be empty).
    ``order``: ``ranked`` followed by the unranked candidates in prefilter order.
    """

    ranked: list[int]
    order: list[int]
    think: str = ""
    has_think: bool = False
    has_ranking: bool = False
    closed: bool = False
    integers_only: bool = False
    duplicates: list[int] = field(default_factory=list)
    out_of_range: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The model produced a usable ranking (tags found, at least one valid id)."""
        return self.has_ranking and bool(self.ranked)


def _ranking_body(text: str) -> tuple[str | None, bool]:
    """The first ranking body and whether its closing tag was present."""
    m = RANK_OPEN.search(text)
    if m is None:
        return None, False
    rest = text[m.end():]
    c = RANK_CLOSE.search(rest)
    if c is None:
        return rest, False
    return rest[: c.start()], True


def parse_ranking(text: str, n_candidates: int, top_n: int | None = None,
                  fallback: Sequence[int] | None = None) -> ParsedRanking:
    """Parse a proxy completion into a ranking over ``n_candidates`` prefiltered units.

    ``top_n`` (optional) keeps only the first ``top_n`` valid ids in ``ranked`` (the rest of
    ``order`` is still completed). ``fallback`` is the prefilter order in which unranked
    candidates are appended (default: their index order, i.e. the order the proxy saw).
    """
    if n_candidates < 0:
        raise ValueError("n_candidates must be >= 0")
    errors: list[str] = []
    think = ""
    has_think = False
    after = text
    close = text.find(_THINK_CLOSE)
    if close != -1:
        has_think = True
        opening = text.rfind(_THINK_OPEN, 0, close)
        start = opening + len(_THINK_OPEN) if opening != -1 else 0
        think = text[start:close].strip()
        after = text[close + len(_THINK_CLOSE):]
    else:
        errors.append("no </think>")
    body, closed = _ranking_body(after)
    ranked: list[int] = []
    duplicates: list[int] = []
    out_of_range: list[int] = []
    integers_only = False
    if body is None:
        errors.append("no <ranking> tag")
    else:
        if not closed:
            errors.append("no </ranking> (truncated?)")
        tokens = [int(t) for t in _INT.findall(body)]
        noise = _INT.sub(" ", body)
        integers_only = bool(tokens) and all(
            _ALLOWED_NOISE.match(part) for part in noise.split(",")
        )
        if not tokens:
            errors.append("ranking holds no integers")
        elif not integers_only:
            errors.append("ranking holds more than integers")
        seen: set[int] = set()
        for t in tokens:
            if t in seen:
                duplicates.append(t)
                continue
            seen.add(t)
            if 0 <= t < n_candidates:
                ranked.append(t)
            else:
                out_of_range.append(t)
        if duplicates:
            errors.append(f"duplicate ids {duplicates}")
        if out_of_range:
            errors.append(f"out-of-range ids {out_of_range}")
    if top_n is not None:
        ranked = ranked[:top_n]
    taken = set(ranked)
    rest = range(n_candidates) if fallback is None else fallback
    order = ranked + [i for i in rest if i not in taken]
    if fallback is not None and len(order) != n_candidates:
        raise ValueError("fallback must be a permutation of range(n_candidates)")
    return ParsedRanking(
        ranked=ranked,
        order=order,
        think=think,
        has_think=has_think,
        has_ranking=body is not None,
        closed=closed,
        integers_only=integers_only,
        duplicates=duplicates,
        out_of_range=out_of_range,
        errors=errors,
    )
