"""The graph's system of record: ``hipporag_*`` tables in the memory's SQLite.

Phrases, facts, mentions (context edges), fact support and synonymy edges are rows; each
indexing step is one transaction, so the graph is never half-updated (a crash or an
exception rolls the whole batch back). Vectors are stored as float32 blobs so the in-memory
indexes and ``graph.npz`` can always be rebuilt without re-embedding or re-extracting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from memkit.store.protocol import SQLConnection
from memkit.store.sqlite import Store

MIGRATIONS = [
    """
    CREATE TABLE hipporag_passages (
        item_id INTEGER PRIMARY KEY, status TEXT NOT NULL, extractor TEXT,
        error TEXT, attempts INTEGER NOT NULL DEFAULT 0, vec BLOB);
    CREATE TABLE hipporag_phrases (
        id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE, surface TEXT NOT NULL,
        vec BLOB NOT NULL);
    CREATE TABLE hipporag_facts (
        id INTEGER PRIMARY KEY, subj INTEGER NOT NULL, pred TEXT NOT NULL,
        obj INTEGER NOT NULL, text TEXT NOT NULL, vec BLOB NOT NULL,
        UNIQUE (subj, pred, obj));
    CREATE TABLE hipporag_mentions (
        item_id INTEGER NOT NULL, phrase_id INTEGER NOT NULL,
        PRIMARY KEY (item_id, phrase_id)) WITHOUT ROWID;
    CREATE INDEX hipporag_mentions_phrase ON hipporag_mentions (phrase_id);
    CREATE TABLE hipporag_support (
        item_id INTEGER NOT NULL, fact_id INTEGER NOT NULL,
        PRIMARY KEY (item_id, fact_id)) WITHOUT ROWID;
    CREATE INDEX hipporag_support_fact ON hipporag_support (fact_id);
    CREATE TABLE hipporag_synonyms (
        a INTEGER NOT NULL, b INTEGER NOT NULL, sim REAL NOT NULL,
        PRIMARY KEY (a, b)) WITHOUT ROWID;
    CREATE INDEX hipporag_synonyms_b ON hipporag_synonyms (b)
    """,
]

GENERATION_KEY = "hipporag.generation"


def blob(v: np.ndarray) -> bytes:
    return np.ascontiguousarray(v, dtype=np.float32).tobytes()


class GraphChanged(Exception):
    """Another process wrote the graph tables after an update was computed (retry it)."""


@dataclass
class PassageUpdate:
    """Everything one indexing batch writes, computed before the transaction opens."""

    passages: list[tuple[int, str, str | None, str | None, np.ndarray]] = field(
        default_factory=list)  # (item_id, status, extractor, error, vector)
    new_phrases: list[tuple[int, str, str, np.ndarray]] = field(default_factory=list)
    new_facts: list[tuple[int, int, str, int, str, np.ndarray]] = field(default_factory=list)
    mentions: list[tuple[int, int]] = field(default_factory=list)
    support: list[tuple[int, int]] = field(default_factory=list)
    synonyms: list[tuple[int, int, float]] = field(default_factory=list)


class GraphStore:
    """SQL operations on the hipporag tables (thin, no caching)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("hipporag", MIGRATIONS)

    @property
    def conn(self) -> SQLConnection:
        return self.store.conn

    def generation(self) -> int:
        return int(self.store.get_meta(GENERATION_KEY) or 0)

    def _bump(self) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT(key) "
            "DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)",
            (GENERATION_KEY,))

    # ---- reads ----------------------------------------------------------------------------
    def passage_status(self, ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        out: dict[int, tuple[str, int]] = {}
        for chunk in _chunks([int(i) for i in ids]):
            for iid, status, attempts in self.conn.execute(
                    f"SELECT item_id, status, attempts FROM hipporag_passages WHERE item_id IN "
                    f"({','.join('?' * len(chunk))})", chunk):
                out[iid] = (status, attempts)
        return out

    def failed_passages(self, limit: int, max_attempts: int) -> list[int]:
        return [r[0] for r in self.conn.execute(
            "SELECT item_id FROM hipporag_passages WHERE status = 'failed' AND attempts < ? "
            "ORDER BY item_id LIMIT ?", (max_attempts, limit))]

    def phrase_ids(self, texts: Iterable[str]) -> dict[str, int]:
        texts = list(dict.fromkeys(texts))
        out: dict[str, int] = {}
        for chunk in _chunks(texts):
            for pid, text in self.conn.execute(
                    f"SELECT id, text FROM hipporag_phrases WHERE text IN "
                    f"({','.join('?' * len(chunk))})", chunk):
                out[text] = pid
        return out

    def fact_ids(self, keys: Iterable[tuple[int, str, int]]) -> dict[tuple[int, str, int], int]:
        out = {}
        for key in dict.fromkeys(keys):
            row = self.conn.execute(
                "SELECT id FROM hipporag_facts WHERE subj = ? AND pred = ? AND obj = ?",
                key).fetchone()
            if row:
                out[key] = row[0]
        return out

    def next_ids(self) -> tuple[int, int]:
        p = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM hipporag_phrases").fetchone()[0]
        f = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM hipporag_facts").fetchone()[0]
        return int(p) + 1, int(f) + 1

    def vectors(self, table: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of phrases, facts or passages (those with a vector; a fact whose
        vector is deferred has an empty one)."""
        key = "item_id" if table == "passages" else "id"
        rows = self.conn.execute(
            f"SELECT {key}, vec FROM hipporag_{table} WHERE vec IS NOT NULL AND length(vec) > 0 "
            f"ORDER BY {key}"
        ).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def facts_without_vectors(self) -> list[tuple[int, str]]:
        """(id, text) of the facts written with deferred (empty) vectors."""
        return [(int(i), t) for i, t in self.conn.execute(
            "SELECT id, text FROM hipporag_facts WHERE length(vec) = 0 ORDER BY id")]

    # ---- writes ---------------------------------------------------------------------------
    def apply(self, up: PassageUpdate, expect_generation: int | None = None) -> None:
        """Write one batch in one transaction (replacing earlier rows of re-indexed passages).
        With ``expect_generation``: raise :class:`GraphChanged`, writing nothing, when another
        writer changed the tables since (the ids and phrases of ``up`` were computed from
        that generation: a stale update would reuse ids or duplicate phrases)."""
        with self.store.transaction() as conn:
            if expect_generation is not None and self.generation() != expect_generation:
                raise GraphChanged(f"graph generation {self.generation()}, the update was "
                                   f"computed from {expect_generation}")
            ids = [(p[0],) for p in up.passages]
            conn.executemany("DELETE FROM hipporag_mentions WHERE item_id = ?", ids)
            conn.executemany("DELETE FROM hipporag_support WHERE item_id = ?", ids)
            conn.executemany(
                "INSERT INTO hipporag_passages (item_id, status, extractor, error, attempts, vec)"
                " VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT(item_id) DO UPDATE SET "
                "status = excluded.status, extractor = excluded.extractor, "
                "error = excluded.error, attempts = hipporag_passages.attempts + 1, "
                "vec = excluded.vec",
                [(i, s, x, e, blob(v)) for i, s, x, e, v in up.passages])
            conn.executemany(
                "INSERT INTO hipporag_phrases (id, text, surface, vec) VALUES (?, ?, ?, ?)",
                [(i, t, s, blob(v)) for i, t, s, v in up.new_phrases])
            conn.executemany(
                "INSERT INTO hipporag_facts (id, subj, pred, obj, text, vec) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(i, s, p, o, t, blob(v)) for i, s, p, o, t, v in up.new_facts])
            conn.executemany("INSERT INTO hipporag_mentions VALUES (?, ?) ON CONFLICT "
                             "(item_id, phrase_id) DO NOTHING",
                             up.mentions)
            conn.executemany("INSERT INTO hipporag_support VALUES (?, ?) ON CONFLICT "
                             "(item_id, fact_id) DO NOTHING", up.support)
            conn.executemany("INSERT INTO hipporag_synonyms VALUES (?, ?, ?) ON CONFLICT "
                             "(a, b) DO UPDATE SET sim = excluded.sim",
                             up.synonyms)
            self._bump()

    def remove_passages(self, ids: Sequence[int]) -> tuple[list[int], list[int]]:
        """Delete passages and every fact and phrase nothing else supports; returns the
        (phrase ids, fact ids) removed. One transaction."""
        ids = [int(i) for i in ids]
        with self.store.transaction() as conn:
            phrases: set[int] = set()
            facts: set[int] = set()
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                phrases.update(r[0] for r in conn.execute(
                    f"SELECT phrase_id FROM hipporag_mentions WHERE item_id IN ({marks})", chunk))
                facts.update(r[0] for r in conn.execute(
                    f"SELECT fact_id FROM hipporag_support WHERE item_id IN ({marks})", chunk))
                conn.execute(f"DELETE FROM hipporag_mentions WHERE item_id IN ({marks})", chunk)
                conn.execute(f"DELETE FROM hipporag_support WHERE item_id IN ({marks})", chunk)
                conn.execute(f"DELETE FROM hipporag_passages WHERE item_id IN ({marks})", chunk)
            dead_facts = [f for f in facts if conn.execute(
                "SELECT 1 FROM hipporag_support WHERE fact_id = ? LIMIT 1", (f,)).fetchone()
                is None]
            conn.executemany("DELETE FROM hipporag_facts WHERE id = ?", [(f,) for f in dead_facts])
            dead_phrases = [p for p in phrases if conn.execute(
                "SELECT 1 FROM hipporag_mentions WHERE phrase_id = ? LIMIT 1", (p,)).fetchone()
                is None and conn.execute(
                "SELECT 1 FROM hipporag_facts WHERE subj = ? OR obj = ? LIMIT 1", (p, p)
            ).fetchone() is None]
            conn.executemany("DELETE FROM hipporag_phrases WHERE id = ?",
                             [(p,) for p in dead_phrases])
            conn.executemany("DELETE FROM hipporag_synonyms WHERE a = ? OR b = ?",
                             [(p, p) for p in dead_phrases])
            if ids:
                self._bump()
        return sorted(dead_phrases), sorted(dead_facts)

    def clear(self) -> None:
        with self.store.transaction() as conn:
            for t in ("passages", "phrases", "facts", "mentions", "support", "synonyms"):
                conn.execute(f"DELETE FROM hipporag_{t}")
            self._bump()


def _chunks(seq: Sequence[object], size: int = 500) -> Iterable[list[object]]:
    seq = list(seq)
    for start in range(0, len(seq), size):
        yield seq[start:start + size]  # type: ignore[misc]
