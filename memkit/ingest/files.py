"""Reading documents from files and folders for ingest: .txt, .md, .jsonl, .json, .html.

Each reader yields ``Document(title, text, source, metadata)``. A file that cannot be read
(unreadable, binary, not UTF-8, malformed) is reported with the reason; the rest goes on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from memkit.errors import InvalidInput

SUPPORTED = (".txt", ".md", ".markdown", ".jsonl", ".json", ".html", ".htm")


@dataclass
class Document:
    title: str
    text: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


class Unreadable(Exception):
    """A file (or one record in it) that ingest skips, with the reason."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what, self.reason = what, reason


def discover(paths: list[Path]) -> Iterator[Path | Unreadable]:
    """Files under ``paths`` (recursively, sorted, hidden ones skipped) with a supported
    extension; a missing path or an unsupported explicitly named file is reported."""
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts) or f.is_dir():
                    continue  # (a broken link is kept: reading it reports why it failed)
                if f.suffix.lower() in SUPPORTED:
                    yield f
        elif p.is_file():
            if p.suffix.lower() in SUPPORTED:
                yield p
            else:
                yield Unreadable(str(p), f"unsupported file type {p.suffix or '(none)'}; "
                                 f"supported: {', '.join(SUPPORTED)}")
        else:
            yield Unreadable(str(p), "no such file or directory")


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise Unreadable(str(path), f"cannot read: {exc.strerror or exc}") from exc
    if b"\x00" in raw[:8192]:
        raise Unreadable(str(path), "binary file (contains NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unreadable(str(path), f"not UTF-8 (byte {exc.start}: {exc.reason})") from exc


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        self._in_title = tag == "title"
        if tag in ("p", "br", "div", "li", "h1", "h2", "h3", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def read_documents(path: Path, text_field: str = "text", title_field: str = "title"
                   ) -> Iterator[Document | Unreadable]:
    """The documents in one file (one for text formats, one per record for JSON/JSONL)."""
    text = _read_text(path)
    suffix = path.suffix.lower()
    source = str(path)
    if suffix in (".txt",):
        yield Document(path.stem, text, source)
    elif suffix in (".md", ".markdown"):
        m = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
        if m is None:
            yield Document(path.stem, text, source)
        else:  # the heading becomes the title (prefixed to every chunk), not body text
            yield Document(m.group(1).strip(), text[:m.start()] + text[m.end():], source)
    elif suffix in (".html", ".htm"):
        parser = _TextOnly()
        parser.feed(text)
        body = re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()
        yield Document(parser.title.strip() or path.stem, body, source)
    elif suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield _record(json.loads(line), f"{source}:{n}", text_field, title_field)
            except (json.JSONDecodeError, InvalidInput) as exc:
                yield Unreadable(f"{source}:{n}", str(exc))
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Unreadable(source, f"invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        records = data if isinstance(data, list) else [data]
        for n, rec in enumerate(records):
            try:
                yield _record(rec, f"{source}[{n}]", text_field, title_field)
            except InvalidInput as exc:
                yield Unreadable(f"{source}[{n}]", str(exc))


def _record(rec: Any, where: str, text_field: str, title_field: str) -> Document:
    if not isinstance(rec, dict):
        raise InvalidInput(f"expected a JSON object, got {type(rec).__name__}")
    text = rec.get(text_field)
    if not isinstance(text, str):
        raise InvalidInput(f"field {text_field!r} missing or not a string")
    title = rec.get(title_field)
    meta = {k: v for k, v in rec.items() if k not in (text_field, title_field)
            and isinstance(v, (str, int, float, bool))}
    return Document(str(title) if title is not None else "", text, where, meta)
