"""Chat turns in, validated turns out: every problem named per message, before anything is
stored.

A message is a dict ``{"role", "content", "name"?, "at"?}``:

* ``role``: ``"user"``, ``"assistant"``, ``"system"`` or ``"tool"`` (required);
* ``content``: a non-empty string (required);
* ``name``: the speaker's name (optional; the speaker is ``name``, else the role);
* ``at``: when it was said (optional): epoch seconds, ISO 8601 or a datetime; naive times are
  UTC, and one conversation may not mix naive and aware times (:mod:`memkit.temporal.times`).
  A turn without ``at`` takes the conversation's ``at``, else the time of the call.

At most :data:`MAX_TURNS` messages per call (split a longer history into several calls:
each call is one transaction).

>>> [t.speaker for t in parse_turns([{"role": "user", "content": "hi", "name": "Ann"},
...                                   {"role": "assistant", "content": "hello"}], at=0.0)]
['Ann', 'assistant']
>>> parse_turns([{"role": "user"}, {"role": "bot", "content": "x"}], at=0.0)
...                                                    # doctest: +ELLIPSIS
Traceback (most recent call last):
...
memkit.errors.InvalidInput: 2 bad message(s), nothing was stored: messages[0].content: ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from memkit.admission import MAX_LABEL_CHARS, check_str
from memkit.errors import InvalidInput, safe_repr
from memkit.temporal.times import TimeParser

ROLES = ("user", "assistant", "system", "tool")
MESSAGE_FIELDS = ("role", "content", "name", "at")
MAX_TURNS = 50_000
MAX_NAME_CHARS = 200
_SHOWN_ERRORS = 10


@dataclass(frozen=True)
class Turn:
    """One validated message: its position, role, speaker, content and event time."""

    index: int
    role: str
    speaker: str
    content: str
    at: float
    name: str | None = None

    @property
    def text(self) -> str:
        """How the turn is stored: ``"[<UTC date and time>] <speaker>: <content>"`` (the same
        line said at another time is another turn; said at the same time, the same one)."""
        stamp = datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%d %H:%M")
        return f"[{stamp}] {self.speaker}: {self.content}"


def _one(n: int, msg: Any, default_at: float, parse_time: TimeParser, max_chars: int) -> Turn:
    where = f"messages[{n}]"
    if not isinstance(msg, Mapping):
        raise InvalidInput(f"{where}: must be a dict with 'role' and 'content', got "
                           f"{type(msg).__name__}")
    unknown = sorted(str(k) for k in msg if k not in MESSAGE_FIELDS)
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {safe_repr(unknown, 100)}; allowed: "
                           f"{MESSAGE_FIELDS}")
    if "role" not in msg or msg["role"] is None:
        raise InvalidInput(f"{where}.role: missing")
    role = msg["role"]
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidInput(f"{where}.role: must be one of {ROLES}, got {safe_repr(role, 40)}")
    if "content" not in msg or msg["content"] is None:
        raise InvalidInput(f"{where}.content: missing")
    content = check_str(msg["content"], f"{where}.content", max_chars=max_chars)
    name = msg.get("name")
    if name is not None:
        name = check_str(name, f"{where}.name", max_chars=MAX_NAME_CHARS).strip()
        if "\n" in name or ":" in name:
            raise InvalidInput(f"{where}.name: a speaker name has no newline or ':'")
    speaker = name or role
    if len(speaker) + 21 + len(content) > max_chars:
        raise InvalidInput(f"{where}.content: {len(content)} characters with the speaker "
                           f"prefix exceed the item limit of {max_chars}")
    at = msg.get("at")
    when = default_at if at is None else parse_time(at, f"{where}.at")
    return Turn(index=n, role=role, speaker=speaker, content=content, at=when, name=name)


def parse_turns(messages: Any, *, at: float, max_chars: int = 100_000,
                parse_time: TimeParser | None = None) -> list[Turn]:
    """Validate every message; raises one :class:`InvalidInput` listing the bad ones (by
    index and field), so a caller stores all of a conversation or none of it."""
    if isinstance(messages, (str, bytes, bytearray, Mapping)) or \
            not isinstance(messages, Iterable):
        raise InvalidInput("messages must be a list of {role, content, name?, at?} dicts, got "
                           f"{type(messages).__name__}")
    parse_time = parse_time or TimeParser()
    turns: list[Turn] = []
    errors: list[str] = []
    for n, msg in enumerate(messages):
        if n >= MAX_TURNS:
            raise InvalidInput(f"messages: more than {MAX_TURNS} turns in one call; split the "
                               "history into several calls (each call is one transaction)")
        try:
            turns.append(_one(n, msg, at, parse_time, max_chars))
        except InvalidInput as exc:
            errors.append(str(exc))
    if errors:
        shown = "; ".join(errors[:_SHOWN_ERRORS])
        more = f" (and {len(errors) - _SHOWN_ERRORS} more)" if len(errors) > _SHOWN_ERRORS \
            else ""
        raise InvalidInput(f"{len(errors)} bad message(s), nothing was stored: {shown}{more}")
    if not turns:
        raise InvalidInput("messages is empty: nothing to remember")
    return turns


def check_label(value: Any, field: str) -> str | None:
    return None if value is None else check_str(value, field, max_chars=MAX_LABEL_CHARS)
