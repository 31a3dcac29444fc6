"""Lenient JSON parsing for model output. Pure functions; never evaluates anything.

Models wrap JSON in code fences, add prose around it, leave trailing commas, use Python-style
single quotes and ``True``/``None``, or stop mid-object when they hit ``max_tokens``.
:func:`parse_json_lenient` undoes those, in order of increasing invasiveness:

1. strict ``json.loads`` (control characters inside strings allowed);
2. for each fenced block, then the whole text: from each ``{`` / ``[``, scan one container,
   dropping trailing prose, removing trailing commas and mapping ``True/False/None`` to JSON
   -- once as is, once with single-quoted strings re-quoted (only where a string can start,
   so apostrophes inside double-quoted strings are left alone);
3. a container cut off by the end of the text gets its open string and containers closed;
   if that does not parse, it is cut back to its last complete element (a comma, or an
   inner ``{``/``[``) and closed from there;
4. of the containers recovered, the one covering the most of the text wins.

>>> parse_json_lenient('Sure! ```json\\n{"a": [1, 2,],}\\n``` Hope that helps.')
{'a': [1, 2]}
>>> parse_json_lenient('{"triples": [["Alice", "lives in", "Paris"], ["Bob", "li')
{'triples': [['Alice', 'lives in', 'Paris'], ['Bob', 'li']]}
>>> parse_json_lenient("{'name': 'Ann', 'ok': True}")
{'name': 'Ann', 'ok': True}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from memkit.errors import LLMOutputError

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\r?\n?(.*?)(?:```|\Z)", re.DOTALL)
_PY_WORDS = {"True": "true", "False": "false", "None": "null"}
_CLOSERS = {"{": "}", "[": "]"}
MAX_STARTS = 32  # candidate start positions tried per text
MAX_CUTS = 64  # cut-back points tried per candidate


@dataclass
class _Scan:
    """Result of scanning one JSON value: normalised text and where it was left."""

    pieces: list[str]  # normalised output; "".join(pieces) is the text
    stack: list[str]  # open containers at the end ("{" / "[")
    in_string: bool  # the text ended inside a string
    complete: bool  # the outermost container was closed
    broken: bool  # a closer did not match its opener
    consumed: int  # characters of the input scanned
    # (index into pieces, stack there): where the value could be cut and closed
    cuts: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def parse_json_lenient(text: str) -> Any:
    """Parse JSON from model output, repairing common damage; raise LLMOutputError if hopeless.

    Fenced blocks are tried first (in order). Within a text, the recoverable container that
    covers the most characters wins -- so ``"see [1]: {...}"`` gives the object, and a cut-off
    outer object beats the complete lists inside it. The error's ``raw`` holds ``text``.
    """
    if not isinstance(text, str):
        raise LLMOutputError(f"expected text, got {type(text).__name__}", raw=None)
    stripped = text.strip()
    sources = [m.group(1).strip() for m in _FENCE.finditer(stripped)] + [stripped]
    for source in sources:
        if source:
            ok, value = _recover(source)
            if ok:
                return value
    head = stripped[:80].replace("\n", " ")
    raise LLMOutputError(f"no JSON value could be recovered from reply {head!r}", raw=text)


def _loads(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text, strict=False)
    except ValueError:
        return False, None


def _recover(source: str) -> tuple[bool, Any]:
    """Recover a JSON value from one source text (a fenced block or the whole reply).

    Starts are visited left to right; a start inside a container already recovered is
    nested in it (and shorter), so it is skipped -- one big object costs one scan.
    """
    ok, value = _loads(source)
    if ok:
        return ok, value
    best: tuple[int, Any] | None = None  # (characters of source covered, value)
    covered_until = 0
    tried = 0
    for i, ch in enumerate(source):
        if ch not in "{[" or i < covered_until:
            continue
        tried += 1
        if tried > MAX_STARTS:
            break
        for single_quotes in (False, True):
            scan = scan_value(source[i:], single_quotes=single_quotes)
            if scan.complete:
                ok, value = _loads(scan.text)
                span = scan.consumed
            elif not scan.broken:
                ok, value = _close_truncated(scan)
                span = len(source) - i
            else:
                ok = False
            if ok:
                if best is None or span > best[0]:
                    best = (span, value)
                covered_until = i + span
                break
    return (False, None) if best is None else (True, best[1])


def _close_truncated(scan: _Scan) -> tuple[bool, Any]:
    """Close a cut-off container, cutting back to earlier elements until it parses.

    A cut-off container that recovers to nothing (``{}`` / ``[]``) counts as a failure.
    """
    attempts = [_close(scan.text, list(scan.stack), scan.in_string)]
    attempts += [
        _close("".join(scan.pieces[:idx]), list(stack), False)
        for idx, stack in reversed(scan.cuts[-MAX_CUTS:])
    ]
    for attempt in attempts:
        ok, value = _loads(attempt)
        if ok:
            return (False, None) if value in ({}, []) else (True, value)
    return False, None


def _close(text: str, stack: list[str], in_string: bool) -> str:
    """Close an open string and the open containers of a cut-off JSON text."""
    if in_string:
        backslashes = len(text) - len(text.rstrip("\\"))
        if backslashes % 2:
            text = text[:-1]  # a dangling escape
        text += '"'
    text = text.rstrip()
    while text.endswith(","):
        text = text[:-1].rstrip()
    return text + "".join(_CLOSERS[c] for c in reversed(stack))


def scan_value(text: str, *, single_quotes: bool = False) -> _Scan:
    """Scan the JSON container at the start of ``text``, normalising as it goes.

    Outside strings: trailing commas before ``}``/``]`` are dropped, ``True``/``False``/
    ``None`` become ``true``/``false``/``null``, and with ``single_quotes`` a ``'`` where a
    string may start opens a single-quoted string (re-emitted double-quoted). Scanning stops
    after the outermost container closes; anything after it is ignored.
    """
    out: list[str] = []
    stack: list[str] = []
    cuts: list[tuple[int, tuple[str, ...]]] = []
    quote = ""  # the quote character of the string we are in, "" outside strings
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\" and i + 1 < n:
                nxt = text[i + 1]
                if quote == "'" and nxt == "'":
                    out.append("'")
                else:
                    out.append(ch + nxt)
                i += 2
                continue
            if ch == quote:
                out.append('"')
                quote = ""
            elif ch == '"':  # a double quote inside a single-quoted string
                out.append('\\"')
            elif ch == "\n":
                out.append("\\n")
            else:
                out.append(ch)
            i += 1
            continue
        if ch == '"' or (ch == "'" and single_quotes and _value_may_start(out)):
            quote = ch
            out.append('"')
        elif ch in "{[":
            stack.append(ch)
            out.append(ch)
            if len(stack) >= 2:  # an inner container may be cut back to empty
                cuts.append((len(out), tuple(stack)))
        elif ch in "}]":
            _drop_trailing_comma(out)
            if not stack or _CLOSERS[stack[-1]] != ch:
                return _Scan(out, stack, False, False, True, i, cuts)
            stack.pop()
            out.append(ch)
            if not stack:
                return _Scan(out, [], False, True, False, i + 1, cuts)
        elif ch == ",":
            cuts.append((len(out), tuple(stack)))
            out.append(ch)
        elif ch.isalpha() or ch == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            out.append(_PY_WORDS.get(word, word))
            i = j
            continue
        else:
            out.append(ch)
        i += 1
    return _Scan(out, stack, bool(quote), False, False, n, cuts)


def _value_may_start(out: list[str]) -> bool:
    """True when the last non-space output character lets a new value or key begin."""
    for piece in reversed(out):
        stripped = piece.rstrip()
        if stripped:
            return stripped[-1] in "{[,:"
    return True


def _drop_trailing_comma(out: list[str]) -> None:
    """Remove a comma (and whitespace after it) at the end of the output."""
    while out and out[-1].isspace():
        out.pop()
    if out and out[-1] == ",":
        out.pop()
