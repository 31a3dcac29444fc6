"""The Panini backend: QA-network memory read by beam search over QA chains.

Write: each item becomes a workspace (entities + two-directional QA pairs) from the LLM
writer (when the memory has an LLM) or the LLM-free parse writer; rows live in the memory's
SQLite (``panini_*`` tables), vectors too, and the faiss/BM25 indexes are rebuilt from them on
open. A workspace the writer botches is repaired or rejected with a recorded reason; the item
itself stays in memory (and in the dense index).

Read: decompose the question (LLM, or a single hop), run the beam search, map the surviving
chains' QA pairs to their source items (scored by chain score), and hand the compact
rendered evidence to the reader in ``hit.evidence["rendered"]``. No surviving chain: no hits
(abstain), unless ``fill`` asks for fallback hits.

Options (``backend_options={"panini": {...}}``): ``writer`` ("auto" | "llm" | "parse"),
``decompose`` ("auto" | "llm" | "single"), ``entity_search`` ("hybrid" | "dense" | "bm25"),
``entity_top_k`` (20), ``qa_top_k`` (15), ``rerank_top_k`` (15), ``beam_width`` (5),
``join_threshold`` (0.3), ``single_hop_pairs`` (15), ``min_score`` (similarity below which a
QA pair is no candidate; default 0.2), ``render_roles`` (True), ``fill`` ("none" | "qa" |
"dense"), ``batch_size`` (embedding batch), ``query_instruction``, ``spacy_processes``
(parse workers, 1).

Indexing: the writer (parse or LLM), workspace validation and the embedding of the new
entities and QA pairs (into the memory's string-vector cache) run in ``prepare``, with no lock
held that readers need; ``add`` only writes the rows and attaches the cached vectors. Given a
write hint (``expect``: ``write_many`` before it embeds a group), the parse writer starts
parsing the group in a worker process, beside the embedding.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from pydantic import Field

from memkit.backends.base import AllowedIds, Backend, BackendContext, Retrieval
from memkit.backends.panini.chains import BeamParams, Chain, SearchResult, beam_search
from memkit.backends.panini.extract_llm import LLMWriter
from memkit.backends.panini.extract_parse import ParseWriter, split_title
from memkit.backends.panini.gsw import (
    RawWorkspace,
    Workspace,
    WorkspaceRejected,
    entity_search_text,
    normalize,
)
from memkit.backends.panini.render import NO_EVIDENCE, render_evidence, render_pair
from memkit.backends.panini.retrieval import (
    QACandidate,
    RetrievalParams,
    WorkspaceIndex,
    qa_text,
)
from memkit.backends.panini.store import EntityRow, QARow, WorkspaceStore
from memkit.decomposition import (
    Decomposition,
    decompose_llm,
    single_hop,
    validate,
)
from memkit.errors import ConfigError
from memkit.fusion import approx_tokens
from memkit.ingest.extractions import ExtractionCache
from memkit.nlp.prefetch import AHEAD_MIN
from memkit.options import Options
from memkit.types import Cost, MemoryItem, Scored

log = logging.getLogger("memkit.panini")


@dataclass
class _Written:
    """One item's writer outcome: ``status`` "ok" (``ws`` set), "pending" or "rejected"."""

    item_id: int
    writer: str
    cost: dict[str, int]
    status: str
    ws: Workspace | None = None
    repairs: list[str] = field(default_factory=list)
    reason: str = ""


def _validated(item_id: int, raw: RawWorkspace, title: str | None, writer: str,
               cost: dict[str, int]) -> _Written:
    try:
        ws, repairs = normalize(raw, title)
    except WorkspaceRejected as exc:
        return _Written(item_id, writer, cost, "rejected", reason=exc.reason)
    return _Written(item_id, writer, cost, "ok", ws, list(repairs))


class PaniniOptions(Options):
    """Settings of the panini backend (see the module docstring)."""

    writer: Literal["auto", "llm", "parse"] = "auto"
    decompose: Literal["auto", "llm", "single"] = "auto"
    fill: Literal["none", "qa", "dense"] = "none"
    entity_top_k: int = Field(20, ge=1)
    qa_top_k: int = Field(15, ge=1)
    rerank_top_k: int = Field(15, ge=1)
    entity_search: Literal["hybrid", "dense", "bm25"] = "hybrid"
    min_score: float = 0.2
    beam_width: int = Field(5, ge=1)
    join_threshold: float = 0.3
    single_hop_pairs: int = Field(15, ge=1)
    render_roles: bool = True
    batch_size: int = Field(64, ge=1, le=4096)
    query_instruction: str | None = None
    writer_max_tokens: int = Field(2048, ge=16)
    spacy_processes: int = Field(1, ge=0, le=64, description=(
        "parse writer worker processes (shared with HippoRAG's spaCy extractor); 0 = one "
        "per CPU core (at most 4); 1 = parse in the indexing thread"))


class PaniniReadOptions(Options):
    """Per-read options: ``decomposition``, a list of sub-questions (strings, or
    ``[text, requires_retrieval]`` pairs, with ``<ENTITY_Qn>`` placeholders) used instead of
    the backend's own decomposer (e.g. an oracle one, for analysis)."""

    decomposition: list[str | tuple[str, bool]] | None = None
    #: beam width for this read (default: the backend's ``beam_width``)
    beam_width: int | None = Field(None, ge=1)


class PaniniBackend(Backend):
    """QA-network memory (Panini / generative semantic workspaces)."""

    name = "panini"
    options_model = PaniniOptions
    read_options_model = PaniniReadOptions
    components = frozenset({"nlp"})  # an injected spaCy pipeline (never saved)

    def __init__(self, ctx: BackendContext, options: Options | None = None) -> None:
        super().__init__(ctx, options)
        o: Any = self.options
        self.writer_kind = o.writer
        self.decompose_kind = o.decompose
        self.fill = o.fill
        self.retrieval = RetrievalParams(
            entity_top_k=o.entity_top_k, qa_top_k=o.qa_top_k, rerank_top_k=o.rerank_top_k,
            entity_search=o.entity_search, min_score=o.min_score)
        self.beam = BeamParams(beam_width=o.beam_width, join_threshold=o.join_threshold,
                               single_hop_pairs=o.single_hop_pairs)
        self.render_roles = o.render_roles
        self.batch_size = o.batch_size
        self.query_instruction = o.query_instruction
        self.nlp = ctx.components.get("nlp")
        self.writer_max_tokens = o.writer_max_tokens
        self.spacy_processes = o.spacy_processes or None  # 0: one per core
        self.wstore = WorkspaceStore(ctx.store)
        self.index = WorkspaceIndex(ctx.embedder)
        self._parse_writer: ParseWriter | None = None
        self._parse_cache: ExtractionCache | None = None
        self._known: set[int] = set()

    # ---- lifecycle ----------------------------------------------------------------------
    def open(self) -> int | None:
        self._load()
        self._retry_pending()
        return None

    def _load(self) -> None:
        store = self.ctx.store
        config = {"embedder": self.ctx.embedder.name, "dim": self.ctx.embedder.dim}
        stored = store.get_meta("panini.config")
        if stored is not None and json.loads(stored) != config:
            with store.transaction() as conn:
                conn.execute("DELETE FROM panini_vectors")
        store.set_meta("panini.config", json.dumps(config))
        ents, qas = self.wstore.entities(), self.wstore.qa_pairs()
        self.index = WorkspaceIndex(self.ctx.embedder)
        self.index.add_rows(ents, qas)
        self._load_vectors(ents, qas)
        self._known = self.wstore.known_items()

    def _load_vectors(self, ents: Sequence[EntityRow], qas: Sequence[QARow]) -> None:
        evecs, qvecs = self.wstore.vectors("e"), self.wstore.vectors("q")
        have_e = [e for e in ents if e.id in evecs]
        have_q = [q for q in qas if q.id in qvecs and q.answers]
        dim = self.ctx.embedder.dim
        self.index.add_vectors(
            [e.id for e in have_e],
            np.vstack([evecs[e.id] for e in have_e]) if have_e else np.zeros((0, dim)),
            [q.id for q in have_q],
            np.vstack([qvecs[q.id] for q in have_q]) if have_q else np.zeros((0, dim)))
        missing_e = [e for e in ents if e.id not in evecs]
        missing_q = [q for q in qas if q.id not in qvecs and q.answers]
        if missing_e or missing_q:
            self._embed_rows(missing_e, missing_q)

    def reset(self) -> None:
        self.wstore.clear()
        self.index = WorkspaceIndex(self.ctx.embedder)
        self._known = set()
        super().reset()

    # ---- writing ------------------------------------------------------------------------
    @property
    def uses_llm_writer(self) -> bool:
        if self.writer_kind == "llm" and self.ctx.llm is None:
            raise ConfigError("panini writer='llm' needs an LLM: Memory.open(..., llm=...)")
        return self.writer_kind == "llm" or (self.writer_kind == "auto" and
                                             self.ctx.llm is not None)

    def prepare(self, items: Sequence[MemoryItem]) -> Any:
        """Write the workspaces of items not known yet (parse or LLM), validate them, and
        embed their entities and QA pairs into the string cache: everything slow, with no
        lock held. Returns item id -> outcome, for :meth:`add`."""
        if self.fill == "dense":  # the dense fallback reads the shared item vectors
            self.ctx.vectors.ensure(items)
        todo = [it for it in items if it.id not in self._known]
        if not todo:
            return {}
        written = self._run_writer(todo)
        self._embed_texts(self._workspace_texts(w.ws for w in written.values()
                                                if w.ws is not None))
        return written

    def add(self, items: Sequence[MemoryItem], prepared: Any = None) -> None:
        todo = [it for it in items if it.id not in self._known]
        if any(self.wstore.status(it.id) is not None for it in todo):
            self._load()  # another process wrote these workspaces: load its rows
            todo = [it for it in todo if it.id not in self._known]
        if not todo:
            return
        written: dict[int, _Written] = dict(prepared or {})
        rest = [it for it in todo if it.id not in written]
        if rest:
            written.update(self._run_writer(rest))
        self._apply([written[it.id] for it in todo])

    def _write(self, items: Sequence[MemoryItem]) -> None:
        self._apply(list(self._run_writer(items).values()))

    def _run_writer(self, items: Sequence[MemoryItem]) -> dict[int, _Written]:
        """The writer's outcome per item: a validated workspace, pending (LLM unreachable)
        or rejected with the reason. Touches no backend state."""
        docs = [split_title(it.text, it.metadata) for it in items]
        out: dict[int, _Written] = {}
        if self.uses_llm_writer:
            writer = LLMWriter(self.ctx.llm, max_tokens=self.writer_max_tokens)
            for it, (title, _), res in zip(items, docs, writer.write(docs), strict=True):
                if res.unavailable:
                    out[it.id] = _Written(it.id, "llm", res.cost, "pending",
                                          reason=res.error or "")
                elif res.raw is None:
                    out[it.id] = _Written(it.id, "llm", res.cost, "rejected",
                                          reason=res.error or "no workspace")
                else:
                    out[it.id] = _validated(it.id, res.raw, title, "llm", res.cost)
        else:
            for it, (title, _), raw in zip(items, docs, self._parse(items, docs), strict=True):
                out[it.id] = _validated(it.id, raw, title, "parse", {})
        return out

    def _writer(self) -> tuple[ParseWriter, ExtractionCache | None]:
        """The parse writer and its extraction cache (made on first use)."""
        if self._parse_writer is None:
            self._parse_writer = ParseWriter(self.nlp, n_process=self.spacy_processes)
            key = self._parse_writer.cache_key()
            self._parse_cache = None if key is None else \
                ExtractionCache(self.ctx.store, "panini.parse", key)
        return self._parse_writer, self._parse_cache

    def expect(self, items: Sequence[Any]) -> None:
        """Start parsing items about to be written (the parse writer, not cached), so the
        parse runs beside ``write_many``'s embedding of them."""
        if self.uses_llm_writer or len(items) < AHEAD_MIN:
            return
        writer, cache = self._writer()
        have = cache.get(it.text for it in items) if cache is not None else {}
        writer.prefetch([split_title(it.text, it.metadata) for it in items
                         if it.text not in have])

    def _parse(self, items: Sequence[MemoryItem], docs: list[tuple[str | None, str]]
               ) -> list[RawWorkspace]:
        """The parse writer's raw workspaces, through the record's extraction cache (a
        rebuild or a resumed ingest parses nothing it parsed before)."""
        writer, cache = self._writer()
        have = cache.get(it.text for it in items) if cache is not None else {}
        raws: list[RawWorkspace | None] = [
            RawWorkspace.model_validate(have[it.text]["raw"])
            if it.text in have and have[it.text].get("title") == title else None
            for it, (title, _) in zip(items, docs, strict=True)]
        todo = [n for n, raw in enumerate(raws) if raw is None]
        if todo:
            fresh = writer.write([docs[n] for n in todo])
            for n, raw in zip(todo, fresh, strict=True):
                raws[n] = raw
            if cache is not None:
                cache.put({items[n].text: {"title": docs[n][0],
                                           "raw": raw.model_dump(mode="json")}
                           for n, raw in zip(todo, fresh, strict=True)})
        return [raw for raw in raws if raw is not None]

    def _apply(self, written: Sequence[_Written]) -> None:
        """Store the outcomes (under the backend's write lock when indexing)."""
        new_rows: tuple[list[EntityRow], list[QARow]] = ([], [])
        for w in written:
            if w.status == "pending":
                self.wstore.mark(w.item_id, "pending", writer=w.writer, reason=w.reason,
                                 cost=w.cost)
            elif w.ws is None:
                self._reject(w.item_id, w.writer, w.reason, w.repairs, w.cost)
            else:
                self._store(w.item_id, w.ws, w.repairs, w.writer, w.cost, new_rows)
        self._embed_rows(*new_rows)  # vectors from the string cache prepare filled

    def _workspace_texts(self, workspaces: Any) -> list[str]:
        """The strings :meth:`_embed_rows` will embed for these workspaces' rows."""
        texts: list[str] = []
        for ws in workspaces:
            names = {e.key: e.name for e in ws.entities}
            if self._dense_entities:
                texts += [entity_search_text(e.name, e.roles) for e in ws.entities]
            for vp in ws.verb_phrases:
                for q in vp.questions:
                    if q.answers:
                        texts.append(qa_text(q.text, [
                            names.get(a.entity, "") if a.entity else (a.text or "")
                            for a in q.answers if (a.entity and a.entity in names) or a.text]))
        return texts

    def _embed_texts(self, texts: Sequence[str]) -> None:
        if texts:
            self.ctx.vectors.embed_strings(list(dict.fromkeys(texts)),
                                           batch_size=self.batch_size)

    def _store(self, item_id: int, ws: Workspace, repairs: list[str], writer: str,
               cost: dict[str, int], sink: tuple[list[EntityRow], list[QARow]]) -> None:
        old = self.wstore.delete([item_id])
        self.index.remove(*old)
        ents, qas = self.wstore.save(item_id, ws, writer=writer, repairs=repairs, cost=cost)
        self.index.add_rows(ents, qas)
        sink[0].extend(ents)
        sink[1].extend(qas)
        self._known.add(item_id)

    def _reject(self, item_id: int, writer: str, reason: str, repairs: list[str],
                cost: dict[str, int]) -> None:
        log.info("panini: item %s has no workspace: %s", item_id, reason)
        self.index.remove(*self.wstore.delete([item_id]))
        self.wstore.mark(item_id, "rejected", writer=writer, reason=reason, repairs=repairs,
                         cost=cost)
        self._known.add(item_id)

    @property
    def _dense_entities(self) -> bool:
        return self.retrieval.entity_search != "bm25"

    def _embed_rows(self, ents: Sequence[EntityRow], qas: Sequence[QARow]) -> None:
        """Embed and store vectors for new rows: QA pairs always, entities unless entity
        search is BM25 only (they are embedded on open when a dense mode needs them)."""
        if not self._dense_entities:
            ents = []
        etexts, qtexts = self.index.texts_for(ents, qas)
        texts = etexts + [t for _, t in qtexts]
        if not texts:
            return
        unique = list(dict.fromkeys(texts))
        where = {t: n for n, t in enumerate(unique)}
        # through the memory's string cache: each distinct string is embedded once
        uvecs = self.ctx.vectors.embed_strings(unique, batch_size=self.batch_size)
        vecs = uvecs[[where[t] for t in texts]]
        evecs, qvecs = vecs[:len(etexts)], vecs[len(etexts):]
        qids = [i for i, _ in qtexts]
        self.wstore.save_vectors("e", [e.id for e in ents], evecs)
        self.wstore.save_vectors("q", qids, qvecs)
        self.index.add_vectors([e.id for e in ents], evecs, qids, qvecs)

    def _retry_pending(self) -> None:
        pending = self.wstore.pending_items()
        if not pending or self.ctx.llm is None:
            return
        items = self.ctx.store.get_many(pending)
        self._write([items[i] for i in pending if i in items])

    def remove(self, ids: Sequence[int]) -> None:
        ids = [int(i) for i in ids]
        if not ids:
            return
        ents, qas = self.wstore.delete(ids)
        self._purge_strings(ents, qas)
        self.index.remove(ents, qas)
        self._known.difference_update(ids)

    def _purge_strings(self, ent_ids: Sequence[int], qa_ids: Sequence[int]) -> None:
        """Drop the cached string vectors of deleted rows (read before the index forgets
        them), so a deleted item's questions and entities leave no vector behind."""
        ents = [self.index.entities[i] for i in ent_ids if i in self.index.entities]
        qas = [self.index.qas[i] for i in qa_ids if i in self.index.qas]
        etexts, qtexts = self.index.texts_for(ents, qas)
        texts = etexts + [t for _, t in qtexts]
        if texts:
            self.ctx.vectors.strings.purge(texts)

    # ---- reading ------------------------------------------------------------------------
    def decompose(self, query: str) -> Decomposition:
        """The decomposition this backend uses for ``query`` (LLM, or a single hop)."""
        use_llm = self.decompose_kind == "llm" or (self.decompose_kind == "auto" and
                                                   self.ctx.llm is not None)
        if use_llm:
            if self.ctx.llm is None:
                raise ConfigError("panini decompose='llm' needs an LLM")
            return decompose_llm(self.ctx.llm, query)
        return single_hop(query)

    def retrieve(self, query: str, k: int, *, allowed: AllowedIds,
                 options: Options | None = None) -> Retrieval:
        given = getattr(options, "decomposition", None)
        decomposition = self.decompose(query) if given is None else validate(list(given), query)
        width = getattr(options, "beam_width", None)
        beam = self.beam if width is None else replace(self.beam, beam_width=width)
        return self.retrieve_with_decomposition(query, decomposition, k, allowed=allowed,
                                                beam=beam)

    def retrieve_with_decomposition(
            self, query: str, decomposition: Decomposition | Sequence[Any], k: int, *,
            allowed: AllowedIds, beam: BeamParams | None = None) -> Retrieval:
        """Read with a given decomposition: a :class:`Decomposition` (e.g. an *oracle* one
        from :func:`~memkit.decomposition.from_musique`) or a list of
        sub-question strings / ``(text, requires_retrieval)`` pairs with ``<ENTITY_Qn>``."""
        if not isinstance(decomposition, Decomposition):
            decomposition = validate(list(decomposition), query)
        allowed_ents, allowed_qas = self.index.allowed_rows(allowed)

        def retrieve(text: str) -> list[QACandidate]:
            q_vec = self.ctx.embedder.embed_query(text, self.query_instruction)
            return self.index.dual_retrieve(text, q_vec, self.retrieval, allowed_ents,
                                            allowed_qas)

        result = beam_search(decomposition, retrieve, beam or self.beam)
        rendered = render_evidence(result.chains, self.render_roles)
        scored = self._hits(result, rendered, decomposition, k, allowed)
        if self.fill != "none" and len(scored) < k:
            scored += self._fill(query, k - len(scored), allowed, {s.id for s in scored})
        cost = Cost(**decomposition.cost)
        spent = cost.llm_counts()
        calls = [{"feature": "decompose", "query": query, **spent}] if any(spent.values()) \
            else []
        return Retrieval(scored, cost, {
            "decomposition": decomposition.as_dict(), "llm": calls, "rendered": rendered,
            "context_tokens": 0 if not result.chains else approx_tokens(rendered),
            "chains": [c.as_dict() for c in result.chains], "hop_beams": result.hop_beams,
            "retrievals": result.retrievals, "abstained": not result.chains,
        })

    def _hits(self, result: SearchResult, rendered: str, d: Decomposition, k: int,
              allowed: AllowedIds) -> list[Scored]:
        best: dict[int, Chain] = {}
        order: list[int] = []
        lines: dict[int, list[str]] = {}
        for chain in result.chains:
            for step in chain.steps:
                iid = step.pair.item_id
                if iid not in allowed:
                    continue
                if iid not in best:
                    best[iid] = chain
                    order.append(iid)
                line = render_pair(step.pair, self.render_roles)
                if line not in lines.setdefault(iid, []):
                    lines[iid].append(line)
        common = {"rendered": rendered, "decomposition": d.as_dict(), "mode": d.mode,
                  "context_tokens": approx_tokens(rendered)}
        return [Scored(iid, best[iid].score, {**common, "chain": best[iid].as_dict(),
                                               "qa_pairs": lines[iid]})
                for iid in order[:k]]

    def _fill(self, query: str, n: int, allowed: AllowedIds, have: set[int]) -> list[Scored]:
        q_vec = self.ctx.embedder.embed_query(query, self.query_instruction)
        out: list[Scored] = []
        if self.fill == "qa":
            ents, qas = self.index.allowed_rows(allowed)
            loose = replace(self.retrieval, min_score=-1.0)  # a fallback has no threshold
            for p in self.index.dual_retrieve(query, q_vec, loose, ents, qas):
                if p.item_id not in have and p.item_id in allowed:
                    have.add(p.item_id)
                    out.append(Scored(p.item_id, 0.0, {"fill": "qa", "rendered": NO_EVIDENCE,
                                                       "qa_pairs": [render_pair(p)]}))
        else:
            ids = [i for i in allowed.ids.tolist() if i not in have]
            vecs = self.ctx.vectors.get(ids)  # items embedded by any backend
            if vecs:
                vids = list(vecs)
                sims = np.vstack([vecs[i] for i in vids]) @ q_vec
                for j in np.argsort(-sims, kind="stable")[:n]:
                    out.append(Scored(int(vids[j]), 0.0, {"fill": "dense",
                                                          "rendered": NO_EVIDENCE}))
        return out[:n]

    # ---- reporting ----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.wstore.counts())
        out["vectors"] = {"entities": self.index.ent_index.ntotal,
                          "qa_pairs": self.index.qa_index.ntotal,
                          "why": "QA pairs with an answer always; entities unless entity "
                                 "search is bm25 only"}
        out["write_cost"] = self.wstore.write_cost()
        out["writer"] = "llm" if self.writer_kind != "parse" and self.ctx.llm is not None \
            else "parse"
        return out

    def status(self, item_id: int) -> dict[str, Any] | None:
        """Why an item has (or has no) workspace: status, writer, reason, repairs, cost."""
        s = self.wstore.status(item_id)
        return None if s is None else s.__dict__.copy()
