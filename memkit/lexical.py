"""Okapi BM25 over memory items, on the maintained ``bm25s`` library (a core dependency).

:class:`BM25Index` keeps each item's tokens (``bm25s.tokenize``: lower case, English
stopwords, optionally the Snowball stemmer of PyStemmer) and builds a ``bm25s.BM25`` over them
lazily, on the first read after a change: BM25's idf and average length are corpus-wide, so
one added document changes every score, and rebuilding from kept tokens (no re-tokenising)
is what keeps the scores exactly those of ``bm25s`` over the same corpus. Scores of the
Lucene variant (``bm25s`` default; like Lucene >= 8 it drops BM25's constant (k1+1) factor,
which changes no ranking)::

    score(d, q) = Σ_{t in q} idf(t) · tf(t,d) / (tf(t,d) + k1·(1 - b + b·|d|/avgdl)),
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

so below, "paris" (df 1 of N 2, |d| = avgdl = 3): ln 2 · 1 / (1 + 1.5) = 0.2773.

A scoped read is scored as if the memory held only the scope's documents: when ``allowed``
leaves some documents out, the index is built over the allowed ones (cached per scope), so
no other scope's words shape idf or the average length - nothing outside the caller's scope
can be read off the scores - and a filtered read still returns ``k`` hits.

The lexical backend (:mod:`memkit.backends.lexical`) and the HippoRAG seeds both use this
class; each keeps its own instance (backends never share state).

>>> ix = BM25Index(stemmer=None)
>>> ix.add([7, 8], ix.tokenize(["Alice moved to Paris", "Bob stayed in Rome"]))
>>> [(i, round(s, 4)) for i, s in ix.top("Where is Paris?", 5)]
[(7, 0.2773)]
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memkit._deps import require
from memkit._files import private_tmp, replace_from
from memkit.errors import ConfigError, StoreCorrupt

__all__ = ["BM25Index", "top_k"]


def _bm25s() -> Any:
    return require("bm25s", "lexical", "BM25 (the lexical backend, lexical graph seeds)")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest positive scores, best first (ties: lower position).

    >>> top_k(np.array([0.5, 0.0, 2.0, 0.5]), 2).tolist()
    [2, 0]
    """
    pos = np.flatnonzero(scores > 0)
    if k <= 0 or len(pos) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(pos) > k:
        part = np.argpartition(-scores[pos], k - 1)[:k]
        pos = pos[part]
    return pos[np.lexsort((pos, -scores[pos]))]


class BM25Index:
    """Item id -> tokens, scored by ``bm25s``; thread-safe for concurrent readers.

    ``stemmer`` is a Snowball language name (``"english"``, PyStemmer) or None; ``stopwords``
    a ``bm25s`` stopword list name (``"en"``) or None. ``method`` is a ``bm25s`` variant
    (``"lucene"``, ``"robertson"``, ``"atire"``, ``"bm25l"``, ``"bm25+"``)."""

    def __init__(self, *, k1: float = 1.5, b: float = 0.75, method: str = "lucene",
                 stemmer: str | None = "english", stopwords: str | None = "en") -> None:
        self.k1, self.b, self.method = k1, b, method
        self.stopwords = stopwords
        self.stemmer_name = stemmer
        self._stem: Any = None
        if stemmer is not None:
            stemmer_mod = require("Stemmer", "lexical", "BM25 stemming (PyStemmer)")
            try:
                self._stem = stemmer_mod.Stemmer(stemmer).stemWords
            except KeyError as exc:
                raise ConfigError(f"bm25 option 'stemmer': no Snowball stemmer {stemmer!r}; "
                                  f"known: {stemmer_mod.algorithms()}") from exc
        self.docs: dict[int, list[str]] = {}
        self._lock = threading.Lock()
        self._built: tuple[Any, np.ndarray] | None = None  # (bm25s.BM25, ids by position)
        self._version = 0  # bumped by every change: scoped indexes of older versions are stale
        self._scoped: OrderedDict[tuple[int, bytes], tuple[Any, np.ndarray]] = OrderedDict()
        self.scope_cache = 8

    # ---- tokens -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """What the stored tokens and scores depend on (a change means re-tokenising)."""
        return {"k1": self.k1, "b": self.b, "method": self.method,
                "stemmer": self.stemmer_name, "stopwords": self.stopwords}

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """``bm25s.tokenize`` with this index's stopwords and stemmer, as strings."""
        if not texts:
            return []
        out = _bm25s().tokenize(list(texts), return_ids=False, stopwords=self.stopwords or [],
                                stemmer=self._stem, show_progress=False)
        return [list(t) for t in out]

    # ---- changes ------------------------------------------------------------------------
    def add(self, ids: Sequence[int], tokens: Sequence[list[str]]) -> None:
        """Add (or replace) documents; the bm25s index is rebuilt on the next read."""
        with self._lock:
            for i, toks in zip(ids, tokens, strict=True):
                self.docs[int(i)] = list(toks)
            self._changed()

    def remove(self, ids: Iterable[int]) -> None:
        with self._lock:
            gone = [self.docs.pop(int(i), None) for i in ids]
            if any(g is not None for g in gone):
                self._changed()

    def clear(self) -> None:
        with self._lock:
            self.docs = {}
            self._changed()

    def _changed(self) -> None:
        self._built = None
        self._version += 1
        self._scoped.clear()

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, (int, np.integer)) and int(item_id) in self.docs

    def __len__(self) -> int:
        return len(self.docs)

    # ---- reading ------------------------------------------------------------------------
    def _build(self, ids: np.ndarray) -> tuple[Any, np.ndarray]:
        model = _bm25s().BM25(k1=self.k1, b=self.b, method=self.method)
        model.index([self.docs[int(i)] for i in ids], show_progress=False)
        return model, ids

    def _index(self, allowed: Any = None) -> tuple[Any, np.ndarray] | None:
        """The index over every document, or (``allowed`` leaving some out) over the
        allowed ones only."""
        with self._lock:
            if not self.docs:
                return None
            ids = np.array(sorted(self.docs), dtype=np.int64) if self._built is None \
                else self._built[1]
            keep = None if allowed is None else allowed.mask(ids)
            if keep is None or keep.all():
                if self._built is None:
                    self._built = self._build(ids)
                return self._built
            sub = ids[keep]
            if len(sub) == 0:
                return None
            key = (self._version, hashlib.sha1(sub.tobytes()).digest())
            if key in self._scoped:
                self._scoped.move_to_end(key)
            else:
                self._scoped[key] = self._build(sub)
                while len(self._scoped) > self.scope_cache:
                    self._scoped.popitem(last=False)
            return self._scoped[key]

    def scores(self, query: str, allowed: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, BM25 scores), ids ascending: over every document, or - with ``allowed``
        (anything with a vectorised ``mask(ids)``, e.g.
        :class:`~memkit.backends.base.AllowedIds``) - over the allowed documents, scored as a
        corpus of their own."""
        built = self._index(allowed)
        if built is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        model, ids = built
        toks = [t for t in self.tokenize([query])[0] if t in model.vocab_dict]
        if not toks:
            return ids, np.zeros(len(ids), dtype=np.float32)
        return ids, np.asarray(model.get_scores(toks), dtype=np.float32)

    def top(self, query: str, k: int, allowed: Any = None) -> list[tuple[int, float]]:
        """The ``k`` best (id, score) with a positive score, among ``allowed`` when given
        (see :meth:`scores`): a scoped read still gets ``k`` hits when ``k`` in scope match."""
        ids, scores = self.scores(query, allowed)
        if len(ids) == 0:
            return []
        pos = top_k(scores, k)
        return [(int(ids[p]), float(scores[p])) for p in pos]

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: Path, label: int) -> None:
        """Write ids, tokens and ``label`` to ``path`` (npz, atomic replace)."""
        with self._lock:
            ids = np.array(sorted(self.docs), dtype=np.int64)
            vocab: dict[str, int] = {}
            flat = [vocab.setdefault(t, len(vocab)) for i in ids for t in self.docs[int(i)]]
            lengths = np.array([len(self.docs[int(i)]) for i in ids], dtype=np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = private_tmp(path, ".npz")
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=ids, lengths=lengths, tokens=np.array(flat, dtype=np.int64),
                     vocab=np.array(json.dumps(list(vocab))), label=np.array(label),
                     config=np.array(json.dumps(self.config(), sort_keys=True)))
        replace_from(tmp, path)

    def load(self, path: Path) -> int:
        """Replace the documents with those saved at ``path``; returns its label. Raises
        StoreCorrupt when the file is unreadable or saved with another configuration."""
        try:
            with np.load(path, allow_pickle=False) as z:
                ids, lengths, flat = z["ids"], z["lengths"], z["tokens"]
                vocab = json.loads(str(z["vocab"]))
                label = int(z["label"])
                config = json.loads(str(z["config"]))
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise StoreCorrupt(f"lexical index {path} unreadable: {exc}") from exc
        if config != self.config() or len(ids) != len(lengths) or \
                int(lengths.sum()) != len(flat):
            raise StoreCorrupt(f"lexical index {path} does not match this configuration")
        words = np.array(vocab, dtype=object)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        docs = {int(i): words[flat[bounds[n]:bounds[n + 1]]].tolist() if lengths[n] else []
                for n, i in enumerate(ids)}
        with self._lock:
            self.docs = docs
            self._changed()
        return label
