"""HippoRAGBackend: the HippoRAG 2 graph memory as a memkit backend.

Options (``backend_options={"hipporag": {...}}``):

* ``extractor``: ``"auto"`` (default: the LLM OpenIE when the memory has an LLM, else spaCy
  when the ``[nlp]`` extra is installed, else the rule extractor), ``"llm"``, ``"spacy"``,
  ``"rules"``;
* ``filter``: use the LLM recognition filter at query time (default: when an LLM is present);
* ``synonymy_threshold`` [0.8], ``synonymy_max`` [100], ``passage_node_weight`` [0.05],
  ``damping`` [0.5], ``fact_top_k`` [5], ``linking_top_k`` [5], ``ppr_method``
  (``"power"``/``"push"``), and the LLM-free seeding knobs of
  :class:`~memkit.backends.hipporag.retriever.RetrievalOptions` (``query_phrase_weight``,
  ``dense_seed_passages``, ``fusion``, ``graph_rrf_weight``). With no LLM the LLM-free
  defaults measured on MuSiQue are used (see ``evals/hipporag/``);
* ``max_attempts`` [3]: extraction retries of a failed passage; ``batch_size`` [32].

Files in the memory directory: ``hipporag/graph.npz`` (CSR + node maps) and
``hipporag/{phrases,facts,passages}.faiss``, each saved with the tables' generation and
rebuilt from the tables when stale, missing or corrupt.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memkit.backends.base import AllowedIds, Backend, BackendContext, Scored
from memkit.backends.hipporag.extract_rules import _FUNCTION, RuleExtractor
from memkit.backends.hipporag.extraction import Extraction, Extractor
from memkit.backends.hipporag.graph import GraphArrays, build_arrays
from memkit.backends.hipporag.retriever import (
    RetrievalOptions,
    link_query_phrases,
    minmax,
    seed_weights,
    weighted_rrf,
)
from memkit.backends.hipporag.search import GraphSearch
from memkit.backends.hipporag.store import GraphStore, PassageUpdate
from memkit.backends.hipporag.synonymy import synonym_edges
from memkit.errors import ConfigError, StoreCorrupt
from memkit.nlp import alnum_count, normalise_phrase, spacy_available
from memkit.types import MemoryItem
from memkit.vectors import FaissIndex

#: LLM-free retrieval defaults (chosen by the MuSiQue ablation, evals/hipporag/)
LLM_FREE_DEFAULTS: dict[str, Any] = {
    "use_facts": False, "query_phrase_weight": 1.0, "dense_seed_passages": 2,
    "fusion": "ppr",
}
_RETRIEVAL_KEYS = set(RetrievalOptions.__dataclass_fields__)
_KNOWN_KEYS = _RETRIEVAL_KEYS | {
    "extractor", "filter", "synonymy_threshold", "synonymy_max", "max_attempts",
    "batch_size", "spacy_model", "noun_phrases", "cooccurrence", "hnsw_threshold",
}


class HippoRAGBackend(Backend):
    name = "hipporag"

    def __init__(self, ctx: BackendContext, **options: Any) -> None:
        super().__init__(ctx, **options)
        unknown = set(options) - _KNOWN_KEYS
        if unknown:
            raise ConfigError(f"unknown hipporag option(s) {sorted(unknown)}; "
                              f"known: {sorted(_KNOWN_KEYS)}")
        self.embedder = ctx.embedder
        self.llm = ctx.llm
        self.gs = GraphStore(ctx.store)
        self.extractor = self._make_extractor(options.get("extractor", "auto"))
        use_filter = bool(options.get("filter", self.llm is not None))
        ro = {} if self.llm is not None else dict(LLM_FREE_DEFAULTS)
        ro.update({k: v for k, v in options.items() if k in _RETRIEVAL_KEYS})
        ro["use_filter"] = use_filter and self.llm is not None
        self.ropts = RetrievalOptions(**ro)
        self.syn_threshold = float(options.get("synonymy_threshold", 0.8))
        self.syn_max = int(options.get("synonymy_max", 100))
        self.max_attempts = int(options.get("max_attempts", 3))
        self.batch_size = int(options.get("batch_size", 32))
        hnsw = int(options.get("hnsw_threshold", 50_000))
        dim = self.embedder.dim
        self.phrase_index = FaissIndex(dim, hnsw_threshold=hnsw)
        self.fact_index = FaissIndex(dim, hnsw_threshold=hnsw)
        self.passage_index = FaissIndex(dim, hnsw_threshold=hnsw)
        self.phrase_by_text: dict[str, int] = {}
        self.phrase_text: dict[int, str] = {}
        self.arrays: GraphArrays | None = None
        self.search = GraphSearch()
        self.dirty_files = False
        self._last_cost: dict[str, Any] = {}
        self.last_index_stats: dict[str, float] = {}

    # ---- configuration --------------------------------------------------------------------
    def _make_extractor(self, kind: str) -> Extractor:
        if kind == "auto":
            kind = "llm" if self.llm is not None else "spacy" if spacy_available() else "rules"
        if kind == "llm":
            if self.llm is None:
                raise ConfigError("hipporag extractor 'llm' needs Memory.open(..., llm=...)")
            from memkit.backends.hipporag.openie import OpenIEExtractor

            return OpenIEExtractor(self.llm)
        if kind == "spacy":
            from memkit.backends.hipporag.extract_spacy import SpacyExtractor

            kw: dict[str, Any] = {k: self.options[k] for k in ("noun_phrases", "cooccurrence")
                  if k in self.options}
            if "spacy_model" in self.options:
                kw["model"] = self.options["spacy_model"]
            return SpacyExtractor(**kw)
        if kind == "rules":
            return RuleExtractor()
        raise ConfigError(f"unknown hipporag extractor {kind!r} (auto, llm, spacy, rules)")

    # ---- persistence ----------------------------------------------------------------------
    @property
    def folder(self) -> Path | None:
        d = self.ctx.directory
        return None if d is None else d / "hipporag"

    def open(self) -> None:
        gen = self.gs.generation()
        rows = self.ctx.store.conn.execute("SELECT id, text FROM hipporag_phrases").fetchall()
        self.phrase_by_text = {t: i for i, t in rows}
        self.phrase_text = {i: t for i, t in rows}
        for name, index in self._indexes().items():
            if not self._load_index(name, index, gen):
                ids, vecs = self.gs.vectors(name)
                if name == "phrases" and len(ids):
                    keep = np.array([alnum_count(self.phrase_text[int(i)]) >= 3 for i in ids])
                    ids, vecs = ids[keep], vecs[keep]
                index.rebuild(ids, vecs if len(ids) else
                              np.zeros((0, self.embedder.dim), np.float32))
                self.dirty_files = True
        folder = self.folder
        if folder is not None and (folder / "graph.npz").exists():
            try:
                arrays = GraphArrays.load(folder / "graph.npz")
                if arrays.generation == gen:
                    self.arrays = arrays
            except StoreCorrupt:
                self.arrays = None
        self._retry_failed()

    def _indexes(self) -> dict[str, FaissIndex]:
        return {"phrases": self.phrase_index, "facts": self.fact_index,
                "passages": self.passage_index}

    def _load_index(self, name: str, index: FaissIndex, gen: int) -> bool:
        folder = self.folder
        if folder is None or not (folder / f"{name}.faiss").exists():
            return False
        try:
            return index.load(folder / f"{name}.faiss") == gen
        except StoreCorrupt:
            return False

    def flush(self) -> None:
        folder = self.folder
        if folder is None or not self.dirty_files:
            return
        gen = self.gs.generation()
        for name, index in self._indexes().items():
            index.save(folder / f"{name}.faiss", gen)
        arrays = self._graph()
        arrays.save(folder / "graph.npz")
        self.dirty_files = False

    def reset(self) -> None:
        self.gs.clear()
        for index in self._indexes().values():
            index.rebuild(np.zeros(0, np.int64), np.zeros((0, self.embedder.dim), np.float32))
        self.phrase_by_text, self.phrase_text = {}, {}
        self.arrays = None
        self.dirty_files = True
        super().reset()

    def _graph(self) -> GraphArrays:
        gen = self.gs.generation()
        if self.arrays is None or self.arrays.generation != gen:
            self.arrays = build_arrays(self.gs)
            self.dirty_files = True
        return self.arrays

    # ---- indexing -------------------------------------------------------------------------
    def add(self, items: Sequence[MemoryItem]) -> None:
        self._retry_failed()  # failures of earlier passes first, then the new items
        status = self.gs.passage_status([it.id for it in items])
        todo = [it for it in items if it.id not in status]
        for start in range(0, len(todo), self.batch_size):
            self._index_batch(todo[start:start + self.batch_size])

    def _retry_failed(self) -> None:
        """Re-extract passages whose extraction failed earlier (bounded attempts)."""
        ids = self.gs.failed_passages(limit=self.batch_size, max_attempts=self.max_attempts)
        if not ids:
            return
        items = self.ctx.store.get_many(ids)
        batch = [items[i] for i in ids if i in items]
        gone = [i for i in ids if i not in items]
        if gone:
            self.remove(gone)
        if batch:
            self._index_batch(batch, retry=True)

    def _passage_vectors(self, items: Sequence[MemoryItem]) -> np.ndarray:
        """Reuse the dense backend's vectors when it used the same embedder, else embed."""
        import json

        out: dict[int, np.ndarray] = {}
        conf = self.ctx.store.get_meta("dense.config")
        if conf and json.loads(conf).get("embedder") == self.embedder.name:
            ids = [it.id for it in items]
            marks = ",".join("?" * len(ids))
            try:
                for iid, b in self.ctx.store.conn.execute(
                        f"SELECT item_id, vec FROM dense_vectors WHERE item_id IN ({marks})", ids):
                    v = np.frombuffer(b, dtype=np.float32)
                    if len(v) == self.embedder.dim:
                        out[iid] = v
            except Exception:  # no dense table (yet): embed ourselves
                out = {}
        missing = [it for it in items if it.id not in out]
        if missing:
            vecs = self.embedder.embed([it.text for it in missing])
            out.update({it.id: v for it, v in zip(missing, vecs, strict=True)})
        return np.vstack([out[it.id] for it in items])

    def _index_batch(self, items: Sequence[MemoryItem], retry: bool = False) -> None:
        t0 = time.perf_counter()
        pvecs = self._passage_vectors(items)
        t1 = time.perf_counter()
        try:
            extractions = self.extractor.extract(
                [it.text for it in items], known=lambda n: n in self.phrase_by_text)
        except Exception as exc:  # an extractor bug must not lose the passages
            extractions = [Extraction(error=f"extractor failed: {exc!r}") for _ in items]
        t2 = time.perf_counter()
        up = PassageUpdate()
        next_phrase, next_fact = self.gs.next_ids()
        new_phrase: dict[str, tuple[int, str]] = {}
        new_fact: dict[tuple[int, str, int], tuple[int, str]] = {}

        def phrase_id(surface: str) -> int | None:
            nonlocal next_phrase
            norm = normalise_phrase(surface)
            if not norm:
                return None
            if norm in self.phrase_by_text:
                return self.phrase_by_text[norm]
            if norm not in new_phrase:
                new_phrase[norm] = (next_phrase, surface)
                next_phrase += 1
            return new_phrase[norm][0]

        fact_keys: list[tuple[int, tuple[int, str, int], str]] = []
        for it, ex, vec in zip(items, extractions, pvecs, strict=True):
            status = "ok" if ex.ok else "failed"
            up.passages.append((it.id, status, self.extractor.name, ex.error, vec))
            if not ex.ok:
                continue
            mentioned = {p for p in (phrase_id(e) for e in ex.entities) if p is not None}
            for s, p, o in ex.triples:
                sid, oid = phrase_id(s), phrase_id(o)
                if sid is None or oid is None or sid == oid:
                    continue
                mentioned.update((sid, oid))
                key = (sid, normalise_phrase(p) or p, oid)
                fact_keys.append((it.id, key, f"{s} {p} {o}"))
            up.mentions.extend((it.id, pid) for pid in sorted(mentioned))
        existing = self.gs.fact_ids([k for _, k, _ in fact_keys])
        for iid, key, text in fact_keys:
            fid = existing.get(key)
            if fid is None:
                if key not in new_fact:
                    new_fact[key] = (next_fact, text)
                    next_fact += 1
                fid = new_fact[key][0]
            up.support.append((iid, fid))
        # embed new phrases and facts, then synonymy for the new phrases only
        p_norms = list(new_phrase)
        p_ids = np.array([new_phrase[n][0] for n in p_norms], dtype=np.int64)
        p_vecs = self.embedder.embed(p_norms) if p_norms else \
            np.zeros((0, self.embedder.dim), np.float32)
        f_keys = list(new_fact)
        f_ids = np.array([new_fact[k][0] for k in f_keys], dtype=np.int64)
        f_vecs = self.embedder.embed([new_fact[k][1] for k in f_keys]) if f_keys else \
            np.zeros((0, self.embedder.dim), np.float32)
        t3 = time.perf_counter()
        long_mask = np.array([alnum_count(n) >= 3 for n in p_norms], dtype=bool)
        if len(p_ids):  # staged: removed again below if the transaction fails
            self.phrase_index.add(p_ids[long_mask], p_vecs[long_mask])
        try:
            up.synonyms = synonym_edges(self.phrase_index, p_ids[long_mask],
                                        p_vecs[long_mask],
                                        [n for n, m in zip(p_norms, long_mask, strict=False) if m],
                                        threshold=self.syn_threshold,
                                        max_neighbors=self.syn_max)
            up.new_phrases = [(int(i), n, new_phrase[n][1], v)
                              for i, n, v in zip(p_ids, p_norms, p_vecs, strict=True)]
            up.new_facts = [(int(fid), k[0], k[1], k[2], new_fact[k][1], v)
                            for fid, k, v in zip(f_ids, f_keys, f_vecs, strict=True)]
            self.gs.apply(up)  # one transaction: all of it or nothing
        except BaseException:
            self.phrase_index.remove(p_ids)  # undo the staged phrases: nothing half-done
            raise
        t4 = time.perf_counter()
        for n, (pid, _) in new_phrase.items():
            self.phrase_by_text[n] = pid
            self.phrase_text[pid] = n
        if len(f_ids):
            self.fact_index.add(f_ids, f_vecs)
        ids = np.array([it.id for it in items], dtype=np.int64)
        if retry:
            self.passage_index.remove(ids)
        self.passage_index.add(ids, pvecs)
        self.dirty_files = True
        stats = self.last_index_stats
        for name, val in (("embed_passages_s", t1 - t0), ("extract_s", t2 - t1),
                          ("embed_nodes_s", t3 - t2), ("synonymy_and_write_s", t4 - t3)):
            stats[name] = stats.get(name, 0.0) + val

    def remove(self, ids: Sequence[int]) -> None:
        ids = [int(i) for i in ids]
        if not ids:
            return
        dead_phrases, dead_facts = self.gs.remove_passages(ids)
        for pid in dead_phrases:
            text = self.phrase_text.pop(pid, None)
            if text is not None:
                self.phrase_by_text.pop(text, None)
        self.phrase_index.remove(np.array(dead_phrases, dtype=np.int64))
        self.fact_index.remove(np.array(dead_facts, dtype=np.int64))
        self.passage_index.remove(np.array(ids, dtype=np.int64))
        self.dirty_files = True

    # ---- reading --------------------------------------------------------------------------
    def retrieve(self, query: str, k: int, *, allowed: AllowedIds) -> list[Scored]:
        self._last_cost = {}
        if len(allowed) == 0 or self.passage_index.ntotal == 0:
            return []
        used_before = _usage(self.llm)
        g = self._graph()
        hits = self.search.run(self, g, query, k, allowed, self.ropts)
        spent = _usage(self.llm)
        self._last_cost = {key: spent[key] - used_before[key] for key in spent}
        return hits

    def lookup_phrase(self, norm: str) -> int | None:
        """A phrase id by normalised text (single function words never match)."""
        if " " not in norm and norm in _FUNCTION:
            return None
        return self.phrase_by_text.get(norm)

    def cost(self) -> dict[str, Any]:
        return dict(self._last_cost)

    def stats(self) -> dict[str, Any]:
        g = self._graph()
        failed = self.ctx.store.conn.execute(
            "SELECT COUNT(*) FROM hipporag_passages WHERE status = 'failed'").fetchone()[0]
        syn = self.ctx.store.conn.execute("SELECT COUNT(*) FROM hipporag_synonyms").fetchone()[0]
        return {**g.stats(), "synonymy_edges": int(syn), "failed_extractions": int(failed),
                "extractor": self.extractor.name, "filter": self.ropts.use_filter}


def _usage(llm: Any) -> dict[str, int]:
    u = getattr(llm, "usage", None)
    if u is None:
        return {"llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    return {"llm_calls": int(getattr(u, "calls", 0)),
            "prompt_tokens": int(getattr(u, "prompt_tokens", 0)),
            "completion_tokens": int(getattr(u, "completion_tokens", 0))}


__all__ = ["HippoRAGBackend", "LLM_FREE_DEFAULTS", "link_query_phrases", "minmax",
           "seed_weights", "weighted_rrf"]
