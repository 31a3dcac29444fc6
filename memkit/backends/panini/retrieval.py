"""Per-hop dual retrieval over the workspaces: entity search expanded to QA pairs, plus direct
QA-pair search, reranked against the sub-question.

For a (substituted) sub-question:

(a) entity search over "name — roles: role: states" (dense, BM25, or both fused by reciprocal
    rank), top ``entity_top_k``; each entity is expanded to every QA pair of every verb phrase
    in which it is an answer;
(b) dense search over "question + answer names", top ``qa_top_k``;

then the union is deduplicated by (question, answer names) and reranked by cosine similarity
between the sub-question and the QA pair's text (the embedding reranker), keeping
``rerank_top_k``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memkit.backends.base import AllowedIds
from memkit.backends.panini.bm25 import BM25
from memkit.backends.panini.store import EntityRow, QARow
from memkit.embed.base import Embedder
from memkit.vectors import FaissIndex


@dataclass(frozen=True)
class AnswerRef:
    """An answer of a QA pair as the reader sees it; ``key`` groups equal answers (the
    casefolded name: chains are not reconciled across documents, so two documents' entities
    of one name are one beam)."""

    key: str
    name: str
    rolestate: str = ""
    entity_id: int | None = None


@dataclass(frozen=True)
class QACandidate:
    """A QA pair found for a sub-question, with its similarity ``score`` in [-1, 1]."""

    qa_id: int
    item_id: int
    question: str
    answers: tuple[AnswerRef, ...]
    score: float
    via: str = ""  # "entity", "qa" or "entity+qa"
    phrase_id: int = -1  # the verb phrase (relation) the pair belongs to

    @property
    def answer_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.answers)


@dataclass
class RetrievalParams:
    entity_top_k: int = 20
    qa_top_k: int = 15
    rerank_top_k: int = 15
    entity_search: str = "hybrid"  # "dense" | "bm25" | "hybrid"
    min_score: float = -1.0  # candidates scoring below are dropped (dead ends abstain)


def qa_text(question: str, answer_names: Sequence[str]) -> str:
    """The text a QA pair is embedded and reranked as: the question then the answer names."""
    return f"{question} {', '.join(answer_names)}".strip()


def _rrf(rankings: Sequence[np.ndarray], c: float = 60.0) -> list[int]:
    fused: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, i in enumerate(ranking, start=1):
            fused[int(i)] += 1.0 / (c + rank)
    return [i for i, _ in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))]


class WorkspaceIndex:
    """In-memory view of every workspace: rows, faiss indexes, BM25, and the answer graph."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.entities: dict[int, EntityRow] = {}
        self.qas: dict[int, QARow] = {}
        self.phrase_qas: dict[int, list[int]] = defaultdict(list)
        self.entity_phrases: dict[int, set[int]] = defaultdict(set)
        self.ent_index = FaissIndex(embedder.dim)
        self.qa_index = FaissIndex(embedder.dim)
        self._bm25: BM25 | None = None
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    # ---- building -----------------------------------------------------------------------
    def add_rows(self, ents: Sequence[EntityRow], qas: Sequence[QARow]) -> None:
        """Register rows (their vectors come separately, see :meth:`add_vectors`)."""
        for e in ents:
            self.entities[e.id] = e
        for q in qas:
            self.qas[q.id] = q
            self.phrase_qas[q.phrase_id].append(q.id)
            for eid, _ in q.answers:
                if eid is not None:
                    self.entity_phrases[eid].add(q.phrase_id)
        self._bm25 = None
        self._arrays = None

    def add_vectors(self, ent_ids: Sequence[int], ent_vecs: np.ndarray, qa_ids: Sequence[int],
                    qa_vecs: np.ndarray) -> None:
        if len(ent_ids):
            self.ent_index.add(np.asarray(ent_ids, dtype=np.int64), ent_vecs)
        if len(qa_ids):
            self.qa_index.add(np.asarray(qa_ids, dtype=np.int64), qa_vecs)

    def remove(self, ent_ids: Sequence[int], qa_ids: Sequence[int]) -> None:
        for i in qa_ids:
            q = self.qas.pop(int(i), None)
            if q is None:
                continue
            ids = self.phrase_qas.get(q.phrase_id, [])
            if q.id in ids:
                ids.remove(q.id)
            if not ids:
                self.phrase_qas.pop(q.phrase_id, None)
        for i in ent_ids:
            self.entities.pop(int(i), None)
            self.entity_phrases.pop(int(i), None)
        self.ent_index.remove(np.asarray(ent_ids, dtype=np.int64))
        self.qa_index.remove(np.asarray(qa_ids, dtype=np.int64))
        self._bm25 = None
        self._arrays = None

    def texts_for(self, ents: Sequence[EntityRow], qas: Sequence[QARow]
                  ) -> tuple[list[str], list[tuple[int, str]]]:
        """Texts to embed for registered rows: entity texts, and (qa id, text) for the
        answered QA pairs."""
        return ([e.search_text for e in ents],
                [(q.id, qa_text(q.question, [a.name for a in self.answer_refs(q)]))
                 for q in qas if q.answers])

    # ---- lookups ------------------------------------------------------------------------
    def answer_refs(self, q: QARow) -> tuple[AnswerRef, ...]:
        out = []
        for eid, lit in q.answers:
            if eid is not None and eid in self.entities:
                e = self.entities[eid]
                out.append(AnswerRef(e.name.casefold(), e.name, e.rolestate, eid))
            elif lit:
                out.append(AnswerRef(lit.casefold(), lit))
        return tuple(out)

    def _id_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            e_ids = np.array(sorted(self.entities), dtype=np.int64)
            e_items = np.array([self.entities[int(i)].item_id for i in e_ids], dtype=np.int64)
            q_ids = np.array(sorted(i for i, q in self.qas.items() if q.answers),
                             dtype=np.int64)
            q_items = np.array([self.qas[int(i)].item_id for i in q_ids], dtype=np.int64)
            self._arrays = (e_ids, e_items, q_ids, q_items)
        return self._arrays

    def allowed_rows(self, allowed: AllowedIds) -> tuple[np.ndarray, np.ndarray]:
        """Sorted entity ids and QA ids whose item is in ``allowed``."""
        e_ids, e_items, q_ids, q_items = self._id_arrays()
        return e_ids[allowed.mask(e_items)], q_ids[allowed.mask(q_items)]

    def bm25(self) -> BM25:
        if self._bm25 is None:
            ids = sorted(self.entities)
            self._bm25 = BM25().fit(ids, [self.entities[i].search_text for i in ids])
        return self._bm25

    # ---- searching ----------------------------------------------------------------------
    def search_entities(self, query: str, q_vec: np.ndarray, k: int, mode: str,
                        allowed_ents: np.ndarray) -> list[int]:
        rankings = []
        if len(allowed_ents) == 0:
            return []
        if mode in ("dense", "hybrid"):
            ids, _ = self.ent_index.search(q_vec, k, allowed_ents)
            rankings.append(ids)
        if mode in ("bm25", "hybrid"):
            bm = self.bm25()
            mask = np.isin(bm.ids, allowed_ents)
            ids, _ = bm.top(query, k, mask)
            rankings.append(ids)
        if not rankings:
            raise ValueError(f"unknown entity_search mode {mode!r}")
        return _rrf(rankings)[:k] if len(rankings) > 1 else [int(i) for i in rankings[0]]

    def expand(self, entity_ids: Sequence[int]) -> list[int]:
        """QA ids of every verb phrase in which one of these entities is an answer; an
        entity tied to another by a "known as" phrase (a title alias) expands through both."""
        out: list[int] = []
        seen: set[int] = set()
        for eid in entity_ids:
            todo = [int(eid)] + self._aliases(int(eid))
            for e in todo:
                for pid in sorted(self.entity_phrases.get(e, ())):
                    if pid not in seen:
                        seen.add(pid)
                        out.extend(self.phrase_qas.get(pid, ()))
        return out

    def _aliases(self, eid: int) -> list[int]:
        out = []
        for pid in self.entity_phrases.get(eid, ()):
            qids = self.phrase_qas.get(pid, ())
            if not any(" known as " in f" {self.qas[q].question} " for q in qids):
                continue
            for q in qids:
                out += [a for a, _ in self.qas[q].answers if a is not None and a != eid]
        return sorted(set(out))

    def dual_retrieve(self, query: str, q_vec: np.ndarray, params: RetrievalParams,
                      allowed_ents: np.ndarray, allowed_qas: np.ndarray) -> list[QACandidate]:
        """Entity-expanded and direct QA candidates for ``query``, reranked by similarity."""
        ents = self.search_entities(query, q_vec, params.entity_top_k, params.entity_search,
                                    allowed_ents)
        from_entities = self.expand(ents)
        direct, _ = self.qa_index.search(q_vec, params.qa_top_k, allowed_qas) \
            if len(allowed_qas) else (np.zeros(0, dtype=np.int64), None)
        via: dict[int, set[str]] = defaultdict(set)
        order: list[int] = []
        for tag, ids in (("entity", from_entities), ("qa", [int(i) for i in direct])):
            for i in ids:
                q = self.qas.get(i)
                if q is None or not q.answers:
                    continue
                if i not in via:
                    order.append(i)
                via[i].add(tag)
        seen: set[tuple[str, tuple[str, ...]]] = set()
        cands: list[tuple[int, tuple[AnswerRef, ...]]] = []
        for i in order:
            refs = self.answer_refs(self.qas[i])
            key = (self.qas[i].question, tuple(a.name for a in refs))
            if not refs or key in seen:
                continue
            seen.add(key)
            cands.append((i, refs))
        if not cands:
            return []
        vecs = np.vstack([self.qa_index.index.reconstruct(int(i)) for i, _ in cands])
        scores = vecs @ np.asarray(q_vec, dtype=np.float32)
        ranked = sorted(range(len(cands)), key=lambda j: (-float(scores[j]), cands[j][0]))
        out = []
        for j in ranked:
            if float(scores[j]) < params.min_score:
                break
            i, refs = cands[j]
            q = self.qas[i]
            out.append(QACandidate(i, q.item_id, q.question, refs, float(scores[j]),
                                   "+".join(sorted(via[i])), q.phrase_id))
            if len(out) >= params.rerank_top_k:
                break
        return out
