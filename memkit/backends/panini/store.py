"""Workspaces in the memory's SQLite: one row per source item, its entities, phrases, QA pairs.

Row ids are AUTOINCREMENT, so an id is never reused after a delete (the faiss indexes are
keyed by them). A QA pair's answers are stored as JSON ``[[entity_row_id, null] | [null,
"literal"], ...]``; an empty list is a question without answer ("None").
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memkit.backends.panini.gsw import Role, Workspace, entity_search_text, rolestate_text
from memkit.store.sqlite import Store

MIGRATIONS = [
    """
    CREATE TABLE panini_docs (item_id INTEGER PRIMARY KEY, status TEXT NOT NULL,
        writer TEXT, reason TEXT, repairs TEXT, llm_calls INTEGER DEFAULT 0,
        prompt_tokens INTEGER DEFAULT 0, completion_tokens INTEGER DEFAULT 0, at REAL);
    CREATE TABLE panini_entities (id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id INTEGER NOT NULL, key TEXT, name TEXT NOT NULL, roles TEXT NOT NULL);
    CREATE INDEX panini_entities_item ON panini_entities (item_id);
    CREATE TABLE panini_phrases (id INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id INTEGER NOT NULL, key TEXT, phrase TEXT NOT NULL);
    CREATE INDEX panini_phrases_item ON panini_phrases (item_id);
    CREATE TABLE panini_qa (id INTEGER PRIMARY KEY AUTOINCREMENT, item_id INTEGER NOT NULL,
        phrase_id INTEGER NOT NULL, question TEXT NOT NULL, answers TEXT NOT NULL);
    CREATE INDEX panini_qa_item ON panini_qa (item_id);
    CREATE TABLE panini_vectors (kind TEXT NOT NULL, id INTEGER NOT NULL, vec BLOB NOT NULL,
        PRIMARY KEY (kind, id))
    """,
]


@dataclass(frozen=True)
class EntityRow:
    id: int
    item_id: int
    name: str
    roles: tuple[Role, ...]

    @property
    def search_text(self) -> str:
        return entity_search_text(self.name, self.roles)

    @property
    def rolestate(self) -> str:
        return rolestate_text(self.roles)


@dataclass(frozen=True)
class QARow:
    id: int
    item_id: int
    phrase_id: int
    question: str
    answers: tuple[tuple[int | None, str | None], ...]  # (entity row id, literal)


@dataclass
class DocStatus:
    item_id: int
    status: str  # "ok" | "rejected" | "pending"
    writer: str | None
    reason: str | None
    repairs: list[str]
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _roles_json(roles: Iterable[Role]) -> str:
    return json.dumps([[r.role, list(r.states)] for r in roles], ensure_ascii=False)


def _roles_from(text: str) -> tuple[Role, ...]:
    return tuple(Role(r, tuple(s)) for r, s in json.loads(text))


class WorkspaceStore:
    """Reads and writes the ``panini_*`` tables of one memory."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("panini", MIGRATIONS)

    # ---- writing ------------------------------------------------------------------------
    def save(self, item_id: int, ws: Workspace, *, writer: str, repairs: Sequence[str],
             cost: dict[str, int] | None = None) -> tuple[list[EntityRow], list[QARow]]:
        """Replace the item's workspace with ``ws``; returns the new rows."""
        cost = cost or {}
        ents: list[EntityRow] = []
        qas: list[QARow] = []
        with self.store.transaction() as conn:
            self._delete_rows(conn, [item_id])
            ids: dict[str, int] = {}
            for e in ws.entities:
                cur = conn.execute(
                    "INSERT INTO panini_entities (item_id, key, name, roles) VALUES (?,?,?,?) "
                    "RETURNING id", (item_id, e.key, e.name, _roles_json(e.roles)))
                ids[e.key] = int(cur.fetchone()[0])
                ents.append(EntityRow(ids[e.key], item_id, e.name, tuple(e.roles)))
            for vp in ws.verb_phrases:
                cur = conn.execute(
                    "INSERT INTO panini_phrases (item_id, key, phrase) VALUES (?,?,?) RETURNING id",
                    (item_id, vp.key, vp.phrase))
                pid = int(cur.fetchone()[0])
                for q in vp.questions:
                    answers = tuple((ids[a.entity] if a.entity else None, a.text)
                                    for a in q.answers)
                    cur = conn.execute(
                        "INSERT INTO panini_qa (item_id, phrase_id, question, answers) "
                        "VALUES (?,?,?,?) RETURNING id",
                        (item_id, pid, q.text, json.dumps(answers)))
                    qas.append(QARow(int(cur.fetchone()[0]), item_id, pid, q.text, answers))
            self._set_status(conn, DocStatus(
                item_id, "ok", writer, None, list(repairs), cost.get("llm_calls", 0),
                cost.get("prompt_tokens", 0), cost.get("completion_tokens", 0)))
        return ents, qas

    def mark(self, item_id: int, status: str, *, writer: str, reason: str,
             repairs: Sequence[str] = (), cost: dict[str, int] | None = None) -> None:
        """Record a document with no workspace ("rejected" with a reason, or "pending")."""
        cost = cost or {}
        with self.store.transaction() as conn:
            self._delete_rows(conn, [item_id])
            self._set_status(conn, DocStatus(
                item_id, status, writer, reason, list(repairs), cost.get("llm_calls", 0),
                cost.get("prompt_tokens", 0), cost.get("completion_tokens", 0)))

    @staticmethod
    def _set_status(conn: Any, d: DocStatus) -> None:
        conn.execute(
            "INSERT INTO panini_docs (item_id, status, writer, reason, repairs, llm_calls, "
            "prompt_tokens, completion_tokens, at) VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (item_id) DO UPDATE SET status = excluded.status, "
            "writer = excluded.writer, reason = excluded.reason, repairs = excluded.repairs, "
            "llm_calls = excluded.llm_calls, prompt_tokens = excluded.prompt_tokens, "
            "completion_tokens = excluded.completion_tokens, at = excluded.at",
            (d.item_id, d.status, d.writer, d.reason, json.dumps(d.repairs, ensure_ascii=False),
             d.llm_calls, d.prompt_tokens, d.completion_tokens, time.time()))

    def save_vectors(self, kind: str, ids: Sequence[int], vecs: np.ndarray) -> None:
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO panini_vectors (kind, id, vec) VALUES (?,?,?) "
                "ON CONFLICT (kind, id) DO UPDATE SET vec = excluded.vec",
                [(kind, int(i), np.asarray(v, dtype=np.float32).tobytes())
                 for i, v in zip(ids, vecs, strict=True)])

    def delete(self, item_ids: Sequence[int]) -> tuple[list[int], list[int]]:
        """Forget the items' workspaces and status; returns (entity ids, qa ids) removed."""
        with self.store.transaction() as conn:
            gone = self._delete_rows(conn, item_ids)
            conn.executemany("DELETE FROM panini_docs WHERE item_id = ?",
                             [(int(i),) for i in item_ids])
        return gone

    @staticmethod
    def _delete_rows(conn: Any, item_ids: Sequence[int]) -> tuple[list[int], list[int]]:
        ents: list[int] = []
        qas: list[int] = []
        for iid in item_ids:
            ents += [r[0] for r in conn.execute(
                "SELECT id FROM panini_entities WHERE item_id = ?", (int(iid),))]
            qas += [r[0] for r in conn.execute(
                "SELECT id FROM panini_qa WHERE item_id = ?", (int(iid),))]
            for table in ("panini_entities", "panini_phrases", "panini_qa"):
                conn.execute(f"DELETE FROM {table} WHERE item_id = ?", (int(iid),))
        conn.executemany("DELETE FROM panini_vectors WHERE kind = 'e' AND id = ?",
                         [(i,) for i in ents])
        conn.executemany("DELETE FROM panini_vectors WHERE kind = 'q' AND id = ?",
                         [(i,) for i in qas])
        return ents, qas

    def clear(self) -> None:
        with self.store.transaction() as conn:
            for table in ("panini_docs", "panini_entities", "panini_phrases", "panini_qa",
                          "panini_vectors"):
                conn.execute(f"DELETE FROM {table}")

    # ---- reading ------------------------------------------------------------------------
    def entities(self) -> list[EntityRow]:
        return [EntityRow(i, it, n, _roles_from(r)) for i, it, n, r in self.store.conn.execute(
            "SELECT id, item_id, name, roles FROM panini_entities ORDER BY id")]

    def qa_pairs(self) -> list[QARow]:
        return [QARow(i, it, p, q, tuple(tuple(a) for a in json.loads(ans)))  # type: ignore[misc]
                for i, it, p, q, ans in self.store.conn.execute(
                    "SELECT id, item_id, phrase_id, question, answers FROM panini_qa ORDER BY id")]

    def vectors(self, kind: str) -> dict[int, np.ndarray]:
        return {i: np.frombuffer(b, dtype=np.float32) for i, b in self.store.conn.execute(
            "SELECT id, vec FROM panini_vectors WHERE kind = ?", (kind,))}

    def status(self, item_id: int) -> DocStatus | None:
        row = self.store.conn.execute(
            "SELECT item_id, status, writer, reason, repairs, llm_calls, prompt_tokens, "
            "completion_tokens FROM panini_docs WHERE item_id = ?", (int(item_id),)).fetchone()
        if row is None:
            return None
        return DocStatus(row[0], row[1], row[2], row[3], json.loads(row[4] or "[]"),
                         row[5], row[6], row[7])

    def known_items(self) -> set[int]:
        return {r[0] for r in self.store.conn.execute(
            "SELECT item_id FROM panini_docs WHERE status != 'pending'")}

    def pending_items(self) -> list[int]:
        return [r[0] for r in self.store.conn.execute(
            "SELECT item_id FROM panini_docs WHERE status = 'pending' ORDER BY item_id")]

    def counts(self) -> dict[str, int]:
        conn = self.store.conn
        out = {f"docs_{s}": n for s, n in conn.execute(
            "SELECT status, COUNT(*) FROM panini_docs GROUP BY status")}
        out["entities"] = conn.execute("SELECT COUNT(*) FROM panini_entities").fetchone()[0]
        out["qa_pairs"] = conn.execute("SELECT COUNT(*) FROM panini_qa").fetchone()[0]
        return out

    def write_cost(self) -> dict[str, int]:
        row = self.store.conn.execute(
            "SELECT COUNT(*), SUM(llm_calls), SUM(prompt_tokens), SUM(completion_tokens) "
            "FROM panini_docs").fetchone()
        return {"docs": row[0] or 0, "llm_calls": row[1] or 0, "prompt_tokens": row[2] or 0,
                "completion_tokens": row[3] or 0}
