"""Batch ingest of files and folders into a Memory: read, chunk, write in batches, report."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from memkit.errors import InvalidInput
from memkit.ingest.chunk import Chunk, chunk_text
from memkit.ingest.files import SUPPORTED, Document, Unreadable, discover, read_documents
from memkit.types import WriteReport

__all__ = ["SUPPORTED", "Chunk", "Document", "Unreadable", "chunk_text", "discover",
           "doc_records", "file_records", "ingest_paths"]


def ingest_paths(memory: Any, paths: Sequence[str | Path], *, scope: Any = None,
                 max_tokens: int = 200, overlap: int = 32, text_field: str = "text",
                 batch_size: int = 64, progress: bool = True) -> WriteReport:
    """Ingest files/folders into ``memory``; each document is chunked (token-aware, with
    overlap) and each chunk written as ``"title\\nchunk"`` with its source and offsets.
    Rerunning an interrupted ingest skips what is already in (content-hash dedup)."""
    rejected: list[tuple[str, str]] = []
    count = getattr(memory.embedder, "count_tokens", None)

    def records() -> Iterator[dict[str, Any]]:
        for entry in discover([Path(p) for p in paths]):
            for rec in file_records(entry, max_tokens=max_tokens, overlap=overlap,
                                    text_field=text_field, count=count):
                if isinstance(rec, Unreadable):
                    rejected.append((rec.what, rec.reason))
                else:
                    yield rec

    report = memory.write_many(records(), scope=scope, batch_size=batch_size,
                               progress=progress, desc="ingesting")
    report.rejected = rejected + report.rejected
    return report


def file_records(entry: Path | Unreadable, *, max_tokens: int = 200, overlap: int = 32,
                 text_field: str = "text", count: Any = None
                 ) -> Iterator[dict[str, Any] | Unreadable]:
    """The read and chunk stages for one discovered file: its chunk records (write_many
    dicts), or :class:`Unreadable` for the file or a record in it that cannot be read. The
    same function runs in ``ingest_paths`` and as the Ray ingest's read stage."""
    if isinstance(entry, Unreadable):
        yield entry
        return
    try:
        docs = list(read_documents(entry, text_field=text_field))
    except Unreadable as exc:
        yield exc
        return
    for doc in docs:
        if isinstance(doc, Unreadable):
            yield doc
        elif not doc.text.strip():  # reported, as write_many reports an empty record
            yield Unreadable(doc.source, "text is empty or whitespace only")
        else:
            try:
                recs = list(doc_records(doc, max_tokens, overlap, count))
            except InvalidInput:  # max_tokens / overlap: the call's error, not this text's
                raise
            except Exception as exc:  # a text the tokenizer cannot handle: this one only
                yield Unreadable(doc.source, f"cannot chunk this text (the token counter "
                                             f"failed: {type(exc).__name__}: {exc})"[:300])
                continue
            yield from recs


def doc_records(doc: Document, max_tokens: int, overlap: int, count: Any
                 ) -> Iterator[dict[str, Any]]:
    kwargs = {"count": count} if count is not None else {}
    chunks = chunk_text(doc.text, max_tokens=max_tokens, overlap=overlap, **kwargs)
    for i, ch in enumerate(chunks):
        body = f"{doc.title}\n{ch.text}" if doc.title else ch.text
        yield {
            "text": body,
            "source": f"{doc.source}#{i}" if len(chunks) > 1 else doc.source,
            "metadata": {**doc.metadata, "title": doc.title, "path": doc.source, "chunk": i,
                         "chunks": len(chunks), "char_start": ch.start, "char_end": ch.end},
        }
