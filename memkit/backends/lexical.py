"""Lexical retrieval: Okapi BM25 over the items' words (``bm25s``, a core dependency).

The channel dense retrieval misses: rare names, numbers, exact titles. Registered as
``"bm25"``; fuse it with dense per read: ``mem.read(q, backend="dense,bm25",
fusion="rrf")`` (see :mod:`memkit.fusion`).

Tokens are the derived state (``bm25s.tokenize``: lower case, English stopwords, Snowball
stemmer), kept in memory and saved to ``lexical/bm25.npz`` labelled with the change-feed
position they reflect; on open the file is loaded and the later changes replayed, and a
missing, corrupt or differently configured file is rebuilt by replaying the record. The
``bm25s`` index is rebuilt from the kept tokens on the first read after a change (BM25's idf
and average length are corpus-wide, so this is what keeps scores exact).

Options (``backend_options={"bm25": {...}}``): see :class:`LexicalOptions`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from memkit.backends.base import AllowedIds, Backend, BackendContext, Retrieval
from memkit.errors import StoreCorrupt
from memkit.lexical import BM25Index
from memkit.options import Options
from memkit.types import MemoryItem, Scored

_EPOCH = 1 << 40  # label = epoch * _EPOCH + position (as the dense backend)


class LexicalOptions(Options):
    """Settings of the bm25 backend (a change re-tokenises the record on open)."""

    k1: float = Field(1.5, ge=0.0, le=10.0, description="term-frequency saturation")
    b: float = Field(0.75, ge=0.0, le=1.0, description="length normalisation")
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = Field(
        "lucene", description="the bm25s scoring variant")
    stemmer: str = Field("english", min_length=1, description="Snowball stemmer language "
                         "(PyStemmer), or 'none' for no stemming")
    stopwords: str = Field("en", min_length=1, description="bm25s stopword list, or 'none'")


def _off(value: str) -> str | None:
    return None if value.lower() == "none" else value


class LexicalBackend(Backend):
    """The items with the highest BM25 score for the query's words, among the allowed."""

    name = "bm25"
    options_model = LexicalOptions

    def __init__(self, ctx: BackendContext, options: Options | None = None) -> None:
        super().__init__(ctx, options)
        o: LexicalOptions = self.options  # type: ignore[assignment]
        self.opts = o
        self.index = BM25Index(k1=o.k1, b=o.b, method=o.method, stemmer=_off(o.stemmer),
                               stopwords=_off(o.stopwords))
        self.dirty = False
        self._saved_position = -1

    # ---- persistence --------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        d = self.ctx.directory
        return None if d is None else d / "lexical" / "bm25.npz"

    def _epoch(self) -> int:
        return int(self.ctx.store.get_meta("bm25.epoch") or 0)

    def open(self) -> int | None:
        store = self.ctx.store
        config = json.dumps(self.index.config(), sort_keys=True)
        if store.get_meta("bm25.config") not in (None, config):
            self.reset()  # tokens of another configuration: rebuild from the record
        store.set_meta("bm25.config", config)
        path = self.path
        if path is not None and path.exists():
            try:
                epoch, position = divmod(self.index.load(path), _EPOCH)
                if epoch == self._epoch() and position <= store.last_seq():
                    self._saved_position = position
                    return position
            except StoreCorrupt:
                pass
        self.index.clear()  # replay the whole record (its current items) from the start
        self.dirty = True
        return 0

    def flush(self, position: int) -> None:
        path = self.path
        if path is None or (not self.dirty and position == self._saved_position):
            return
        label = self._epoch() * _EPOCH + position
        if path.exists():  # never replace a newer file another process saved
            try:
                with np.load(path, allow_pickle=False) as z:
                    if int(z["label"]) > label:
                        return
            except (OSError, ValueError, KeyError):
                pass
        self.index.save(path, label)
        self.dirty = False
        self._saved_position = position

    def reset(self) -> None:
        with self.ctx.store.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('bm25.epoch', '1') ON CONFLICT(key) "
                "DO UPDATE SET value = CAST(value AS INTEGER) + 1")
        super().reset()
        self.index.clear()
        self.dirty = True

    # ---- indexing -----------------------------------------------------------------------
    def prepare(self, items: Sequence[MemoryItem]) -> Any:
        """Tokenise (the slow part), without the write lock."""
        return {it.id: toks for it, toks in
                zip(items, self.index.tokenize([it.text for it in items]), strict=True)}

    def add(self, items: Sequence[MemoryItem], prepared: Any = None) -> None:
        if not items:
            return
        tokens: dict[int, list[str]] = dict(prepared or {})
        missing = [it for it in items if it.id not in tokens]
        if missing:
            tokens.update(self.prepare(missing))
        self.index.add([it.id for it in items], [tokens[it.id] for it in items])
        self.dirty = True

    def remove(self, ids: Sequence[int]) -> None:
        if ids:
            self.index.remove(ids)
            self.dirty = True

    # ---- reading ------------------------------------------------------------------------
    def retrieve(self, query: str, k: int, *, allowed: AllowedIds,
                 options: Options | None = None) -> Retrieval:
        if len(allowed) == 0:
            return Retrieval([])
        hits = self.index.top(query, k, allowed)
        return Retrieval([Scored(i, s, {"bm25": s}) for i, s in hits],
                         trace={"query_tokens": self.index.tokenize([query])[0]})

    def stats(self) -> dict[str, Any]:
        size = self.path.stat().st_size if self.path is not None and self.path.exists() else 0
        return {"documents": len(self.index), "file_bytes": size, **self.index.config()}
