"""A small Okapi BM25 over short texts (entity names with roles), numpy + scipy only.

score(d, q) = sum over distinct query terms t of
    idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl)),
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))          (the Lucene / bm25s form)

>>> bm = BM25().fit([10, 11], ["Alice Smith", "Paris France"])
>>> ids, scores = bm.top("where is paris", 1)
>>> int(ids[0]), round(float(scores[0]), 4)
(11, 0.6931)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

_TOKEN = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or is are was were be been being what which "
    "who whom whose when where why how did do does has have had that this these those it its as "
    "roles".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without stopwords (casefold, Unicode-aware)."""
    return [t for t in _TOKEN.findall(text.casefold()) if t not in STOPWORDS]


def idf(n_docs: int, df: np.ndarray) -> np.ndarray:
    """BM25 inverse document frequency, always positive."""
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


class BM25:
    """Fit once over (id, text) pairs; ``top`` scores a query against every document."""

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.ids = np.zeros(0, dtype=np.int64)
        self.vocab: dict[str, int] = {}
        self.weights = sp.csc_matrix((0, 0), dtype=np.float32)

    def fit(self, ids: Sequence[int], texts: Sequence[str]) -> BM25:
        self.ids = np.asarray(ids, dtype=np.int64)
        vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        lengths = np.zeros(len(texts), dtype=np.float64)
        for row, text in enumerate(texts):
            toks = tokenize(text)
            lengths[row] = len(toks)
            counts: dict[int, int] = {}
            for t in toks:
                col = vocab.setdefault(t, len(vocab))
                counts[col] = counts.get(col, 0) + 1
            for col, c in counts.items():
                rows.append(row)
                cols.append(col)
                vals.append(c)
        self.vocab = vocab
        n = len(texts)
        tf = sp.csr_matrix((np.asarray(vals, dtype=np.float64), (rows, cols)),
                           shape=(n, len(vocab)))
        if n == 0 or not vocab:
            self.weights = sp.csc_matrix((n, len(vocab)), dtype=np.float32)
            return self
        df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=len(vocab))
        avgdl = max(float(lengths.mean()), 1e-9)
        norm = self.k1 * (1 - self.b + self.b * lengths / avgdl)  # per document
        tf = tf.tocoo()
        w = tf.data * (self.k1 + 1) / (tf.data + norm[tf.row]) * idf(n, df)[tf.col]
        self.weights = sp.csc_matrix((w.astype(np.float32), (tf.row, tf.col)),
                                     shape=(n, len(vocab)))
        return self

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every fitted document (aligned with ``self.ids``)."""
        cols = sorted({self.vocab[t] for t in tokenize(query) if t in self.vocab})
        if not cols:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self.weights[:, cols].sum(axis=1)).ravel()

    def top(self, query: str, k: int, mask: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best (ids, scores) with a positive score, among ``mask`` rows if given."""
        s = self.scores(query)
        if mask is not None:
            s = np.where(mask, s, 0.0)
        pos = np.flatnonzero(s > 0)
        if len(pos) == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        order = pos[np.lexsort((self.ids[pos], -s[pos]))][:k]
        return self.ids[order], s[order].astype(np.float32)


def hand_score(query: str, doc: str, corpus: Sequence[str], k1: float = 1.5,
               b: float = 0.75) -> float:
    """Reference BM25 with plain Python loops (for tests)."""
    docs = [tokenize(t) for t in corpus]
    avgdl = sum(len(d) for d in docs) / len(docs)
    toks = tokenize(doc)
    total = 0.0
    for t in set(tokenize(query)):
        df = sum(1 for d in docs if t in d)
        if df == 0:
            continue
        f = toks.count(t)
        w = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        total += w * f * (k1 + 1) / (f + k1 * (1 - b + b * len(toks) / avgdl))
    return total
