"""HippoRAGBackend: the HippoRAG 2 graph memory as a memkit backend.

Options (``backend_options={"hipporag": {...}}``):

* ``extractor``: ``"auto"`` (default: the LLM OpenIE when the memory has an LLM, else spaCy
  when the ``[nlp]`` extra is installed, else the rule extractor), ``"llm"`` (LLM OpenIE:
  two calls per passage, NER then triples, cached as LLM responses; the calls and tokens this
  process spent extracting add up in ``backend.extraction_cost``), ``"spacy"``, ``"rules"``;
* ``defaults``: ``"auto"`` (the paper's retrieval defaults with an LLM, ``LLM_FREE_DEFAULTS``
  without), ``"paper"``, ``"llm_free"`` (e.g. an LLM memory reading with the LLM-free seeds,
  plus the filter and/or decomposition);

LLM features at read time, one flag each, settable here or for one read
(``read_options={"hipporag": {"filter": False, "decompose": True}}``, or ``memkit eval ...
--read-option hipporag.decompose=true`` / ``--backend-option hipporag.filter=false``):

* ``filter``: the LLM recognition filter over the top facts (default: with an LLM and the
  paper defaults). On the LLM-free defaults it turns the fact channel on and the kept facts
  seed beside the other channels;
* ``decompose`` [off]: LLM query decomposition (one call; the prompt and parser are
  :mod:`memkit.decomposition`, shared with panini); each sub-question seeds the walk and a
  hop that refers to an earlier one gets the entities of that hop's
  ``decompose_bridge_passages`` [2] best passages (:mod:`.decomposed` says why one walk
  from the hops' normalised union).

Each LLM call of a read is listed in its trace (``trace["llm"]``: feature, query, calls,
tokens) and summed into the read's ``cost``.

Other settings:

* ``synonymy_threshold`` [0.8, on all-MiniLM-L6-v2's cosine scale: with another model the
  cosine that passes the same share of random phrase pairs, ``Embedder.threshold``],
  ``synonymy_max`` [100], ``passage_node_weight`` [0.05],
  ``damping`` [0.5], ``fact_top_k`` [5], ``linking_top_k`` [5], ``ppr_method``
  (``"power"``/``"push"``), and the LLM-free seeding knobs of
  :class:`~memkit.backends.hipporag.retriever.RetrievalOptions` (``query_phrase_weight``,
  ``dense_seed_passages``, ``fusion``, ``graph_rrf_weight``, the lexical channel, linking
  across passages, session and speaker links). With no LLM the LLM-free defaults measured on
  MuSiQue and LoCoMo are used (see ``evals/hipporag/`` and ``evals/lexical/``);
* ``fact_vectors`` [``"auto"``]: facts are embedded while indexing (``"write"``) or on the
  first read that uses the fact channel (``"read"``, :mod:`.factvecs`); auto: while indexing
  when the backend's reads use facts (an LLM with the paper defaults or the filter,
  ``use_facts``), else on read. The LLM-free defaults seed without facts, so their build
  embeds none (MuSiQue-200: 14,387 fewer strings, ``benchmarks/results/ingest_speed.md``);
* ``max_attempts`` [3]: extraction retries of a failed passage; ``batch_size`` [32];
* ``spacy_processes`` [1]: spaCy parse worker processes (``nlp.pipe(n_process=...)``; 0 =
  one per core, at most 4); with more than one, each indexing chunk is extracted in one
  call so that the workers get enough passages to pay for starting.

Files in the memory directory: ``hipporag/graph.npz`` (CSR + node maps) and
``hipporag/{phrases,facts,passages}.faiss``, each saved with the tables' generation and
rebuilt from the tables when stale, missing or corrupt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memkit.backends.base import AllowedIds, Backend, BackendContext, Retrieval
from memkit.backends.hipporag.decomposed import decomposed_read
from memkit.backends.hipporag.extract_rules import _FUNCTION
from memkit.backends.hipporag.extraction import Extraction, Extractor
from memkit.backends.hipporag.extractors import make_extractor
from memkit.backends.hipporag.factvecs import DeferredFacts
from memkit.backends.hipporag.graph import GraphArrays, build_arrays
from memkit.backends.hipporag.options import (
    LLM_FREE_DEFAULTS,
    HippoRAGOptions,
    HippoRAGReadOptions,
    retrieval_options,
)
from memkit.backends.hipporag.passages import PassageExtraction
from memkit.backends.hipporag.retriever import (
    link_query_phrases,
    minmax,
    seed_weights,
    weighted_rrf,
)
from memkit.backends.hipporag.search import GraphSearch, llm_cost
from memkit.backends.hipporag.store import GraphChanged, GraphStore, PassageUpdate
from memkit.backends.hipporag.synonymy import synonym_edges
from memkit.errors import ConfigError, InvalidInput, StoreCorrupt
from memkit.nlp import alnum_count, normalise_phrase
from memkit.nlp.prefetch import AHEAD_MIN
from memkit.options import Options
from memkit.types import Cost, MemoryItem
from memkit.vectors import FaissIndex


@dataclass
class Prepared:
    """The slow part of indexing a batch, done without the write lock: passage vectors,
    extractions, and the vectors of phrases and facts this process did not know yet."""

    items: list[MemoryItem]
    pvecs: np.ndarray
    extractions: list[Extraction]
    phrase_vecs: dict[str, np.ndarray] = field(default_factory=dict)
    fact_vecs: dict[str, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Staged:
    """A batch's preparation before its phrase and fact strings are embedded."""

    items: list[MemoryItem]
    pvecs: np.ndarray
    extractions: list[Extraction]
    phrases: list[str]
    facts: list[str]
    timings: dict[str, float]


class HippoRAGBackend(Backend):
    name = "hipporag"
    options_model = HippoRAGOptions
    read_options_model = HippoRAGReadOptions
    components = frozenset({"extractor"})

    def __init__(self, ctx: BackendContext, options: Options | None = None) -> None:
        super().__init__(ctx, options)
        o: Any = self.options
        self.opts = o
        self.embedder = ctx.embedder
        self.llm = ctx.llm
        self.gs = GraphStore(ctx.store)
        custom = ctx.components.get("extractor")
        self.extractor: Extractor = custom if custom is not None else \
            self._make_extractor(o.extractor)
        self.ropts = retrieval_options(o, self.llm is not None)
        # facts are embedded while indexing only when this backend's reads use them
        self.embed_facts = o.fact_vectors == "write" or (o.fact_vectors == "auto"
                                                         and self.ropts.use_facts)
        self.deferred_facts = DeferredFacts()
        if self.ropts.decompose and self.llm is None:
            raise ConfigError("hipporag decompose=True needs an LLM")
        # the option is on the reference (MiniLM) cosine scale; another model's equivalent
        self.syn_threshold = self.embedder.threshold(float(o.synonymy_threshold))
        self.syn_max = int(o.synonymy_max)
        self.max_attempts = int(o.max_attempts)
        self.batch_size = int(o.batch_size)
        dim = self.embedder.dim
        self.phrase_index = FaissIndex(dim, hnsw_threshold=o.hnsw_threshold)
        self.fact_index = FaissIndex(dim, hnsw_threshold=o.hnsw_threshold)
        self.passage_index = FaissIndex(dim, hnsw_threshold=o.hnsw_threshold)
        self.phrase_by_text: dict[str, int] = {}
        self.phrase_text: dict[int, str] = {}
        self.arrays: GraphArrays | None = None
        self._arrays_lock = threading.Lock()
        self.search = GraphSearch()
        self.dirty_files = False
        # the tables' generation this process's in-memory state matches (-1: unknown)
        self._synced_gen = -1
        self.index_timings: dict[str, float] = {}
        self.passages = PassageExtraction(self.extractor, ctx.store)

    # ---- configuration --------------------------------------------------------------------
    def _make_extractor(self, kind: str) -> Extractor:
        return make_extractor(kind, self.opts, self.llm)

    def offer_extractions(self, extractor: str, by_hash: dict[str, Extraction]) -> int:
        """Extractions made elsewhere (the Ray ingest's extract stage), by the content hash
        of the passage text (:meth:`PassageExtraction.offer`)."""
        return self.passages.offer(extractor, by_hash)

    @property
    def extraction_cost(self) -> Cost:
        """What this process's extraction spent (LLM OpenIE; 0 for the others)."""
        return self.passages.cost

    def close(self) -> None:
        close = getattr(self.extractor, "close", None)  # e.g. spaCy worker processes
        if callable(close):
            close()
        super().close()

    # ---- persistence ----------------------------------------------------------------------
    @property
    def folder(self) -> Path | None:
        d = self.ctx.directory
        return None if d is None else d / "hipporag"

    def open(self) -> int | None:
        self._load_state()
        self._retry_failed()
        return None

    def _load_state(self) -> None:
        """Load the in-memory state (phrase maps, faiss indexes, graph arrays) from the
        tables and the files that match their generation, in one snapshot of the tables."""
        with self.ctx.store.snapshot():
            self._load_state_snapshot()

    def _load_state_snapshot(self) -> None:
        gen = self.gs.generation()  # read first: what is written after it shows as foreign
        rows = self.ctx.store.conn.execute("SELECT id, text FROM hipporag_phrases").fetchall()
        self.phrase_by_text = {t: i for i, t in rows}
        self.phrase_text = {i: t for i, t in rows}
        for name, index in self._indexes().items():
            if not self._load_index(name, index, gen):
                ids, vecs = self.gs.vectors(name)
                if name == "phrases" and len(ids):
                    keep = np.array([alnum_count(self.phrase_text.get(int(i), "")) >= 3
                                     for i in ids])
                    ids, vecs = ids[keep], vecs[keep]
                index.rebuild(ids, vecs if len(ids) else
                              np.zeros((0, self.embedder.dim), np.float32))
                self.dirty_files = True
        self.deferred_facts.invalidate()
        self.arrays = None
        folder = self.folder
        if folder is not None and (folder / "graph.npz").exists():
            try:
                arrays = GraphArrays.load(folder / "graph.npz")
                if arrays.generation == gen:
                    self.arrays = arrays
            except StoreCorrupt:
                self.arrays = None
        self._synced_gen = gen

    def _refresh_if_foreign(self) -> None:
        """Another process changed the graph tables since this process last matched them:
        reload, so that its phrases, facts and passages are seen (and never re-inserted)."""
        if self.gs.generation() != self._synced_gen:
            self._load_state()

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

    def flush(self, position: int = 0) -> None:
        folder = self.folder
        if folder is None or not self.dirty_files:
            return
        self._refresh_if_foreign()  # never label a stale in-memory index as current
        gen = self._synced_gen
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
        self.deferred_facts.invalidate()
        self.arrays = None
        self.dirty_files = True
        self._synced_gen = self.gs.generation()
        super().reset()

    def _graph(self) -> GraphArrays:
        """The CSR arrays of the current tables (built once per generation; safe under
        concurrent readers)."""
        with self._arrays_lock:
            if self.arrays is None or self.arrays.generation != self.gs.generation():
                self.arrays = build_arrays(self.gs)
                self.dirty_files = True
            return self.arrays

    # ---- indexing -------------------------------------------------------------------------
    def prepare(self, items: Sequence[MemoryItem]) -> Any:
        """Embed passages, extract them, and embed the phrases and facts not known yet: the
        slow part, run while readers keep reading."""
        status = self.gs.passage_status([it.id for it in items])
        todo = [it for it in items if it.id not in status]
        whole = None  # an extractor with worker processes gets the whole chunk in one call
        if getattr(self.extractor, "n_process", 1) > 1 and len(todo) > self.batch_size:
            whole = self._extract(todo)
        chunks = [todo[s:s + self.batch_size] for s in range(0, len(todo), self.batch_size)]
        # otherwise a worker parses the next sub-batch while this one's phrases and facts are
        # embedded (parsing takes one core; the embedder the others)
        prefetch = getattr(self.extractor, "prefetch", None) if whole is None else None
        # and one thread embeds the new phrases (in calls of >= STRINGS_PER_CALL strings: the
        # embedder sorts them by length, so fewer pad tokens) while this one extracts the
        # next sub-batches (extraction is Python on one core; the embedder releases the GIL)
        staged: list[_Staged] = []
        calls: list[Future[tuple[dict[str, np.ndarray], float]]] = []
        submitted: set[str] = set()
        waiting: list[str] = []
        with ThreadPoolExecutor(1, thread_name_prefix="memkit-hipporag-embed") as embedding:
            for n, chunk in enumerate(chunks):
                if callable(prefetch) and n + 1 < len(chunks):
                    prefetch(self.passages.still_to_extract([it.text for it in chunks[n + 1]]))
                batch = self._stage_batch(
                    chunk, None if whole is None else whole[n * self.batch_size:
                                                            (n + 1) * self.batch_size])
                staged.append(batch)
                new = [t for t in dict.fromkeys([*batch.phrases, *batch.facts])
                       if t not in submitted]  # a string new to several sub-batches: once
                submitted.update(new)
                waiting += new
                if waiting and (len(waiting) >= STRINGS_PER_CALL or n + 1 == len(chunks)):
                    calls.append(embedding.submit(self._embed_new, waiting))
                    waiting = []
            vec_of: dict[str, np.ndarray] = {}
            seconds = 0.0
            for call in calls:
                got, sec = call.result()
                vec_of.update(got)
                seconds += sec
        return [self._prepared(batch, (vec_of, seconds if n == 0 else 0.0))
                for n, batch in enumerate(staged)]

    def expect(self, items: Sequence[Any]) -> None:
        """Start parsing passages about to be written (an extractor that parses ahead, i.e.
        spaCy's), so the parse runs beside ``write_many``'s embedding of them."""
        if len(items) >= AHEAD_MIN:
            self.passages.expect([it.text for it in items])

    def _extract(self, items: Sequence[MemoryItem]) -> list[Extraction]:
        known = dict(self.phrase_by_text)  # a snapshot: the apply step re-checks
        return self.passages.extract(items, lambda p: p in known)

    def _prepare_batch(self, items: Sequence[MemoryItem],
                       extractions: list[Extraction] | None = None) -> Prepared:
        staged = self._stage_batch(items, extractions)
        return self._prepared(staged, self._embed_new([*staged.phrases, *staged.facts]))

    def _stage_batch(self, items: Sequence[MemoryItem],
                     extractions: list[Extraction] | None = None) -> _Staged:
        """Passage vectors, extractions and the phrases (and facts, when they are embedded
        now) new to the graph: everything of a batch's preparation but the string vectors."""
        t0 = time.perf_counter()
        pvecs = self.ctx.vectors.ensure(items)
        t1 = time.perf_counter()
        known = dict(self.phrase_by_text)
        if extractions is None:
            extractions = self._extract(items)
        t2 = time.perf_counter()
        phrases: dict[str, None] = {}
        facts: dict[str, None] = {}
        for ex in extractions:
            if not ex.ok:
                continue
            for surface in (*ex.entities, *(x for s, _, o in ex.triples for x in (s, o))):
                norm = normalise_phrase(surface)
                if norm and norm not in known:
                    phrases[norm] = None
            if self.embed_facts:
                for s_, p_, o_ in ex.triples:
                    facts[f"{s_} {p_} {o_}"] = None
        return _Staged(list(items), pvecs, extractions, list(phrases), list(facts),
                       {"embed_passages_s": t1 - t0, "extract_s": t2 - t1})

    def _embed_new(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], float]:
        """Vectors of these phrase/fact strings through the memory's string cache (a string
        an earlier build, another process or another backend embedded is not embedded
        again), and the seconds it took."""
        t0 = time.perf_counter()
        texts = list(dict.fromkeys(texts))
        vecs = self.ctx.vectors.embed_strings(texts) if texts else None
        got = dict(zip(texts, vecs, strict=True)) if vecs is not None else {}
        return got, time.perf_counter() - t0

    @staticmethod
    def _prepared(staged: _Staged, embedded: tuple[dict[str, np.ndarray], float]) -> Prepared:
        vec_of, seconds = embedded
        return Prepared(staged.items, staged.pvecs, staged.extractions,
                        {p: vec_of[p] for p in staged.phrases},
                        {f: vec_of[f] for f in staged.facts},
                        {**staged.timings, "embed_nodes_s": seconds})

    def add(self, items: Sequence[MemoryItem], prepared: Any = None) -> None:
        self._refresh_if_foreign()  # what is known shapes extraction of the unprepared items
        self._retry_failed()  # failures of earlier passes first, then the new items
        status = self.gs.passage_status([it.id for it in items])
        batches: list[Prepared] = list(prepared or [])
        covered = {it.id for b in batches for it in b.items}
        todo = [it for it in items if it.id not in status and it.id not in covered]
        batches += [self._prepare_batch(todo[s:s + self.batch_size])
                    for s in range(0, len(todo), self.batch_size)]
        for batch in batches:  # each drops what another process indexed meanwhile
            if batch.items:
                self._apply_batch(batch)

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
            self._apply_batch(self._prepare_batch(batch), retry=True)

    def _embed_missing(self, texts: list[str], have: dict[str, np.ndarray]) -> np.ndarray:
        missing = [t for t in texts if t not in have]
        if missing:
            have = {**have, **dict(zip(missing, self.ctx.vectors.embed_strings(missing),
                                       strict=True))}
        if not texts:
            return np.zeros((0, self.embedder.dim), np.float32)
        return np.vstack([have[t] for t in texts])

    def _apply_batch(self, prep: Prepared, retry: bool = False) -> None:
        """Apply a prepared batch; when another process wrote the graph between this
        process's last sync and the write, reload its rows and compute the update again (the
        ids and the phrases already known depend on them)."""
        for attempt in range(_APPLY_ATTEMPTS):
            self._refresh_if_foreign()
            status = self.gs.passage_status([it.id for it in prep.items])
            fresh = [i for i, it in enumerate(prep.items) if retry or it.id not in status]
            if not fresh:
                return  # the other process indexed these passages
            if len(fresh) < len(prep.items):
                prep = Prepared([prep.items[i] for i in fresh], prep.pvecs[fresh],
                                [prep.extractions[i] for i in fresh], prep.phrase_vecs,
                                prep.fact_vecs, prep.timings)
            try:
                self._apply_once(prep, retry)
                return
            except GraphChanged:
                if attempt + 1 == _APPLY_ATTEMPTS:
                    raise
                self._synced_gen = -1  # reload on the next attempt

    def _apply_once(self, prep: Prepared, retry: bool) -> None:
        items, pvecs, extractions = prep.items, prep.pvecs, prep.extractions
        t3 = time.perf_counter()
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
        # vectors of new phrases and facts: prepared outside the lock (embed any stragglers)
        p_norms = list(new_phrase)
        p_ids = np.array([new_phrase[n][0] for n in p_norms], dtype=np.int64)
        p_vecs = self._embed_missing(p_norms, prep.phrase_vecs)
        f_keys = list(new_fact)
        f_ids = np.array([new_fact[k][0] for k in f_keys], dtype=np.int64)
        f_vecs = self._embed_missing([new_fact[k][1] for k in f_keys], prep.fact_vecs) \
            if self.embed_facts else np.zeros((len(f_keys), 0), np.float32)  # deferred
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
            before = self._synced_gen
            self.gs.apply(up, expect_generation=before)  # one transaction: all or nothing
        except BaseException:
            self.phrase_index.remove(p_ids)  # undo the staged phrases: nothing half-done
            raise
        after = self.gs.generation()
        # our own write moved the generation by one; anything else was another process
        self._synced_gen = after if before == self._synced_gen and after == before + 1 else -1
        t4 = time.perf_counter()
        for n, (pid, _) in new_phrase.items():
            self.phrase_by_text[n] = pid
            self.phrase_text[pid] = n
        if len(f_ids) and self.embed_facts:
            self.fact_index.add(f_ids, f_vecs)
        ids = np.array([it.id for it in items], dtype=np.int64)
        if retry:
            self.passage_index.remove(ids)
        self.passage_index.add(ids, pvecs)
        self.dirty_files = True
        for name, val in (*prep.timings.items(), ("synonymy_and_write_s", t4 - t3)):
            self.index_timings[name] = self.index_timings.get(name, 0.0) + val

    def remove(self, ids: Sequence[int]) -> None:
        ids = [int(i) for i in ids]
        if not ids:
            return
        self._refresh_if_foreign()
        before = self.gs.generation()
        dead_phrases, dead_facts = self.gs.remove_passages(ids)
        after = self.gs.generation()
        if before == self._synced_gen and after in (before, before + 1):
            self._synced_gen = after
        else:
            self._synced_gen = -1
        for pid in dead_phrases:
            text = self.phrase_text.pop(pid, None)
            if text is not None:
                self.phrase_by_text.pop(text, None)
        self.phrase_index.remove(np.array(dead_phrases, dtype=np.int64))
        self.fact_index.remove(np.array(dead_facts, dtype=np.int64))
        self.passage_index.remove(np.array(ids, dtype=np.int64))
        self.dirty_files = True

    # ---- reading --------------------------------------------------------------------------
    def retrieve(self, query: str, k: int, *, allowed: AllowedIds,
                 options: Options | None = None) -> Retrieval:
        """Graph retrieval; the trace names the seed phrases and facts and how the walk went,
        and ``trace["llm"]`` each LLM call site (feature ``decompose`` or ``filter``) with
        its calls and tokens, summed into the result's cost."""
        if len(allowed) == 0 or self.passage_index.ntotal == 0:
            return Retrieval([], trace={"mode": "empty"})
        ropts = self.ropts if options is None else \
            retrieval_options(self.opts, self.llm is not None, options)
        if ropts.decompose and self.llm is None:
            raise InvalidInput("hipporag decompose needs an LLM (Memory.open(..., llm=...))")
        trace: dict[str, Any] = {}
        if ropts.decompose:
            hits = decomposed_read(self.search, self, self._graph(), query, k, allowed, ropts,
                                   trace)
        else:
            hits = self.search.run(self, self._graph(), query, k, allowed, ropts, trace=trace)
        return Retrieval(hits, cost=llm_cost(trace), trace=trace)

    def fact_vectors_ready(self) -> bool:
        """Whether the fact index has vectors to search, after embedding those of the facts
        indexed with deferred vectors (``fact_vectors="read"``: once per generation)."""
        if self.deferred_facts.ensure(self._synced_gen, self.gs.facts_without_vectors,
                                      self.fact_index, self.ctx.vectors.embed_strings):
            self.dirty_files = True
        return self.fact_index.ntotal > 0

    def lookup_phrase(self, norm: str) -> int | None:
        """A phrase id by normalised text (single function words never match)."""
        if " " not in norm and norm in _FUNCTION:
            return None
        return self.phrase_by_text.get(norm)

    def erasure_terms(self, ids: Sequence[int]) -> list[str]:
        """Phrases and facts that only these passages support (they go with them)."""
        ids = [int(i) for i in ids]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        conn = self.ctx.store.conn
        phrases = conn.execute(
            f"SELECT p.surface, p.text FROM hipporag_phrases p WHERE p.id IN (SELECT phrase_id "
            f"FROM hipporag_mentions WHERE item_id IN ({marks})) AND NOT EXISTS (SELECT 1 FROM "
            f"hipporag_mentions m WHERE m.phrase_id = p.id AND m.item_id NOT IN ({marks}))",
            [*ids, *ids]).fetchall()
        facts = conn.execute(
            f"SELECT f.text FROM hipporag_facts f WHERE f.id IN (SELECT fact_id FROM "
            f"hipporag_support WHERE item_id IN ({marks})) AND NOT EXISTS (SELECT 1 FROM "
            f"hipporag_support s WHERE s.fact_id = f.id AND s.item_id NOT IN ({marks}))",
            [*ids, *ids]).fetchall()
        return [x for row in phrases for x in row] + [r[0] for r in facts]

    def stats(self) -> dict[str, Any]:
        g = self._graph()
        failed = self.ctx.store.conn.execute(
            "SELECT COUNT(*) FROM hipporag_passages WHERE status = 'failed'").fetchone()[0]
        syn = self.ctx.store.conn.execute("SELECT COUNT(*) FROM hipporag_synonyms").fetchone()[0]
        deferred = len(self.gs.facts_without_vectors())
        vectors = {"phrases": self.phrase_index.ntotal, "facts": self.fact_index.ntotal,
                   "facts_deferred": deferred, "passages": self.passage_index.ntotal,
                   "why": "phrases (3+ letters/digits: query linking and synonymy), facts "
                          "(query-to-fact matching; embedded while indexing only when the "
                          "reads use facts, else on the first read that does), passages "
                          "(dense seeds)"}
        return {**g.stats(), "vectors": vectors, "synonymy_edges": int(syn),
                "failed_extractions": int(failed),
                "extractor": self.extractor.name, "filter": self.ropts.use_filter,
                "decompose": self.ropts.decompose}


__all__ = ["HippoRAGBackend", "LLM_FREE_DEFAULTS", "link_query_phrases", "minmax",
           "seed_weights", "weighted_rrf"]


_APPLY_ATTEMPTS = 8  # writers racing on one graph: each retry reloads the other's rows
#: phrase and fact strings per embedding call while preparing: one call per sub-batch of 32
#: passages (~250 strings, sorted by length in fewer, more padded batches) embedded MuSiQue's
#: phrases 1.5x slower than one call; 1,024 keeps most of the gain and still lets the
#: extraction of later sub-batches overlap the embedding of earlier ones
STRINGS_PER_CALL = 1024
