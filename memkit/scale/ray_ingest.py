"""Batch ingest on Ray Data: read -> chunk -> [extract] -> embed run as parallel Ray stages;
the driver commits to the memory in idempotent batches.

Stages (one Ray Data operator each, each with Ray's own progress bar)::

    read+chunk  flat_map over files (tasks): memkit.ingest.file_records, token-aware chunks
             (the embedder's tokenizer), each marked ``dup`` when its text is already current
             in the target scope (nothing already in is embedded again)
    extract  (``extract="ray"``) map_batches on an actor pool: hipporag's extractor, plus the
             phrase and fact strings it yields
    embed    map_batches on an actor pool: passage vectors, and those strings' vectors
    commit   the driver, streaming: memkit.ingest.stages.commit_batch (items + vectors in one
             transaction; content-hash dedup), strings into the memory's vector cache,
             extractions handed to hipporag, then the memory's indexer catches up

The functions are the ones ``Memory.write_many`` and ``memkit ingest`` use, so the result is
the same memory: same items, same graph facts (with ``extract="driver"``, the default, the
graph is built exactly as a single-process ingest builds it; ``extract="ray"`` extracts every
passage against the graph's phrases as they were when the job started, so n-gram matches of
phrases first seen in the same job can differ). Idempotent and resumable: a rerun skips (and
does not embed) what is in; a killed actor's batches are retried by Ray Data, and if the job
fails anyway, rerunning it completes it with no duplicates. A text the embedder fails on (the
stage retries its batch in halves down to single texts, as the local pipeline does) is
reported per record, by its source, with the local pipeline's reason; the rest of its batch
is committed and nothing of it is written (no item, vector, extraction or string).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from memkit._deps import require
from memkit.admission import admit_record
from memkit.embed import Embedder, load_embedder
from memkit.errors import ConfigError, InvalidInput
from memkit.ingest import Unreadable, discover, file_records
from memkit.ingest.stages import commit_batch, embed_texts, unembeddable
from memkit.store.sqlite import NewItem, content_hash, scope_key
from memkit.types import Scope, WriteReport

_COLUMNS = ("kind", "text", "source", "metadata", "what", "reason")


def _row(**kw: Any) -> dict[str, Any]:
    return {c: kw.get(c, "") for c in _COLUMNS}


_COUNTERS: dict[str, Any] = {}


def _counter(factory: Callable[[], Embedder]) -> Any:
    """The token counter of the memory's embedder, built once per worker process (by its
    spec) - chunk boundaries are then exactly those of a single-process ingest."""
    key = repr(factory)
    if key not in _COUNTERS:
        _COUNTERS.clear()
        _COUNTERS[key] = getattr(factory(), "count_tokens", None)
    return _COUNTERS[key]


def read_stage(row: dict[str, Any], *, factory: Callable[[], Embedder], text_field: str,
               max_tokens: int, overlap: int, existing: Any) -> list[dict[str, Any]]:
    """One file -> its chunk records (or why it cannot be read), as uniform rows; a chunk
    whose text is already current in the target scope is marked ``dup``."""
    seen = _resolve(existing)
    out: list[dict[str, Any]] = []
    count = _counter(factory)
    for rec in file_records(Path(str(row["path"])), max_tokens=max_tokens, overlap=overlap,
                            text_field=text_field, count=count):
        if isinstance(rec, Unreadable):
            out.append({**_row(kind="error", what=rec.what, reason=rec.reason), "dup": False})
        else:
            out.append({**_row(kind="chunk", text=rec["text"], source=rec["source"],
                               metadata=json.dumps(rec["metadata"], ensure_ascii=False)),
                        "dup": content_hash(rec["text"]) in seen})
    return out


class ExtractStage:
    """hipporag's extractor over the new chunks: the extraction (JSON) and the phrase and
    fact strings it yields, for the embed stage."""

    def __init__(self, kind: str, options: dict[str, Any], known: Any) -> None:
        from memkit.backends.hipporag.extractors import make_extractor
        from memkit.backends.hipporag.options import HippoRAGOptions

        self.extractor = make_extractor(kind, HippoRAGOptions(**options))
        self.known = _resolve(known)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from memkit.backends.hipporag.extraction import node_strings

        todo = [n for n in range(len(batch["kind"]))
                if batch["kind"][n] == "chunk" and not batch["dup"][n]]
        extractions = self.extractor.extract([str(batch["text"][n]) for n in todo],
                                             known=lambda p: p in self.known)
        ex_col = np.full(len(batch["kind"]), "", dtype=object)
        str_col = np.full(len(batch["kind"]), "[]", dtype=object)
        for n, ex in zip(todo, extractions, strict=True):
            ex_col[n] = json.dumps({"entities": ex.entities, "triples": ex.triples,
                                    "error": ex.error}, ensure_ascii=False)
            str_col[n] = json.dumps(node_strings(ex), ensure_ascii=False)
        return {**batch, "extraction": ex_col, "strings": str_col}


class EmbedStage:
    """Vectors of the new chunks (and of the strings the extract stage found), by
    :func:`memkit.ingest.stages.embed_texts`: a text the embedder fails on gets its error in
    the ``error`` column instead of a vector, and the rest of the batch goes on."""

    def __init__(self, factory: Callable[[], Embedder], batch_size: int) -> None:
        self.embedder = factory()
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        size = len(batch["kind"])
        todo = [n for n in range(size) if batch["kind"][n] == "chunk" and not batch["dup"][n]]
        vecs = np.zeros((size, self.embedder.dim), dtype=np.float32)
        errors = np.full(size, "", dtype=object)
        got = embed_texts(self.embedder, [str(batch["text"][n]) for n in todo],
                          self.batch_size)
        for n, v in zip(todo, got, strict=True):
            if isinstance(v, str):
                errors[n] = v
            else:
                vecs[n] = v
        svecs = np.full(size, b"", dtype=object)
        out = {**batch}
        if "strings" in batch:
            strings_col = np.array(batch["strings"], dtype=object)
            for n in todo:
                strings = json.loads(str(batch["strings"][n]))
                if not strings or errors[n]:
                    continue
                svs = embed_texts(self.embedder, strings, self.batch_size)
                if any(isinstance(v, str) for v in svs):
                    strings_col[n] = "[]"  # the indexer embeds them (and reports why not)
                else:
                    svecs[n] = np.vstack(svs).astype(np.float32).tobytes()
            out["strings"] = strings_col
        name = np.full(size, f"{self.embedder.name}/{self.embedder.dim}", dtype=object)
        return {**out, "vec": vecs, "svecs": svecs, "embedder": name, "error": errors}


_RESOLVED: dict[str, Any] = {}


def _resolve(value: Any) -> Any:
    """A broadcast object (an ObjectRef), fetched once per worker process."""
    ray = require("ray", "ray", "Ray ingest")
    if not isinstance(value, ray.ObjectRef):
        return value
    key = value.hex()
    if key not in _RESOLVED:
        if len(_RESOLVED) > 4:
            _RESOLVED.clear()
        _RESOLVED[key] = ray.get(value)
    return _RESOLVED[key]


def ingest_ray(memory: Any, paths: Sequence[str | Path], *, scope: Any = None,
               max_tokens: int = 200, overlap: int = 32, text_field: str = "text",
               batch_size: int = 64, workers: int = 2, address: str | None = None,
               extract: str = "driver", progress: bool = True,
               embedder_factory: Callable[[], Embedder] | None = None) -> WriteReport:
    """Ingest files/folders into ``memory`` (a :class:`~memkit.Memory` or a memory
    directory) with Ray Data; returns the same report as :func:`memkit.ingest.ingest_paths`.

    ``workers``: actors per pool stage; ``address``: a Ray cluster (``"auto"``; default: the
    running Ray, else a local one); ``extract``: ``"driver"`` (the memory's indexer extracts,
    as a single-process ingest does) or ``"ray"`` (hipporag's spaCy/rules extractor runs as a
    Ray stage); ``embedder_factory``: builds the embedder in each actor (default: the
    memory's embedder spec; it must be the memory's model)."""
    ray = require("ray", "ray", "Ray ingest")
    if extract not in ("driver", "ray"):
        raise InvalidInput(f"extract must be 'driver' or 'ray', got {extract!r}")
    if workers < 1 or batch_size < 1:
        raise InvalidInput("workers and batch_size must be >= 1")
    from memkit.memory import Memory

    owned = not isinstance(memory, Memory)
    mem: Memory = Memory.open(memory) if owned else memory
    try:
        return _ingest(ray, mem, paths, scope=scope, max_tokens=max_tokens, overlap=overlap,
                       text_field=text_field, batch_size=batch_size, workers=workers,
                       address=address, extract=extract, progress=progress,
                       factory=embedder_factory)
    finally:
        if owned:
            mem.close()


def _factory(mem: Any, given: Callable[[], Embedder] | None) -> Callable[[], Embedder]:
    if given is not None:
        return given
    spec = mem.embedder.spec or mem.config.embedder
    if not spec:
        raise ConfigError("the memory's embedder cannot be rebuilt in Ray workers from a "
                          "spec: pass embedder_factory=")
    return partial(load_embedder, spec)


def _ingest(ray: Any, mem: Any, paths: Sequence[str | Path], *, scope: Any, max_tokens: int,
            overlap: int, text_field: str, batch_size: int, workers: int, address: str | None,
            extract: str, progress: bool, factory: Callable[[], Embedder] | None
            ) -> WriteReport:
    if not ray.is_initialized():
        ray.init(address=address, **({} if address else {"num_cpus": max(workers, 1)}),
                 include_dashboard=False, log_to_driver=False)
    report = WriteReport()
    files: list[str] = []
    for entry in discover([Path(p) for p in paths]):
        if isinstance(entry, Unreadable):
            report.rejected.append((entry.what, entry.reason))
        else:
            files.append(str(entry))
    if not files:
        return report
    scope_obj = Scope.coerce(scope)
    key = scope_key(scope_obj)
    existing = ray.put(frozenset(r[0] for r in mem.store.conn.execute(
        "SELECT content_hash FROM items WHERE scope_key = ? AND valid_until IS NULL", (key,))))
    make = _factory(mem, factory)
    hippo = mem.backends.get("hipporag") if extract == "ray" else None
    if extract == "ray" and hippo is None:
        raise ConfigError("extract='ray' needs a memory with the hipporag backend")
    data = ray.data
    data.DataContext.get_current().execution_options.preserve_order = True
    ds = data.from_items([{"path": f} for f in files],
                         override_num_blocks=max(1, min(len(files), 4 * workers)))
    # logical CPUs: actors hold theirs for the whole job, so on a small machine they must
    # leave room for the read tasks (else the job waits forever for a free CPU)
    pools = 2 if extract == "ray" else 1
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    per_actor = min(1.0, max(0.05, (cpus - 0.5) / (pools * workers)))
    ds = ds.flat_map(read_stage, num_cpus=0.25, fn_kwargs={
        "factory": make, "text_field": text_field, "max_tokens": max_tokens,
        "overlap": overlap, "existing": existing})
    if hippo is not None:
        opts = hippo.options.model_dump(exclude_none=True)
        kind = hippo.extractor.name
        if kind not in ("spacy", "rules"):
            raise ConfigError(f"extract='ray' runs the spacy or rules extractor; this memory "
                              f"extracts with {kind!r} (use extract='driver')")
        known = ray.put(frozenset(hippo.phrase_by_text))
        ds = ds.map_batches(ExtractStage, fn_constructor_args=(kind, opts, known),
                            batch_size=batch_size, batch_format="numpy", concurrency=workers,
                            num_cpus=per_actor)
    ds = ds.map_batches(EmbedStage, fn_constructor_args=(make, batch_size),
                        batch_size=batch_size, batch_format="numpy", concurrency=workers,
                        num_cpus=per_actor)
    bar = tqdm(desc="committing", unit="item", disable=not progress)
    try:
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            _commit(mem, batch, scope_obj, report, hippo)
            bar.update(len(batch["kind"]))
    finally:
        bar.close()
    mem.indexer.changed()
    return report


def _commit(mem: Any, batch: dict[str, np.ndarray], scope: Scope, report: WriteReport,
            hippo: Any) -> None:
    """The driver's stage: one idempotent commit per batch."""
    expect = f"{mem.embedder.name}/{mem.embedder.dim}"
    items: list[NewItem] = []
    vecs: list[np.ndarray] = []
    offered: dict[str, Any] = {}
    strings: list[str] = []
    string_vecs: list[np.ndarray] = []
    for n in range(len(batch["kind"])):
        kind = str(batch["kind"][n])
        if kind == "error":
            report.rejected.append((str(batch["what"][n]), str(batch["reason"][n])))
            continue
        if bool(batch["dup"][n]):
            report.skipped_duplicates += 1
            continue
        if str(batch["embedder"][n]) != expect:
            raise ConfigError(f"Ray workers embedded with {batch['embedder'][n]}, the memory "
                              f"uses {expect}: pass the memory's embedder")
        record = {"text": str(batch["text"][n]), "source": str(batch["source"][n]),
                  "metadata": json.loads(str(batch["metadata"][n]))}
        if str(batch["error"][n]):  # not written, nor its extraction or strings
            report.rejected.append((record["source"], unembeddable(str(batch["error"][n]))))
            continue
        try:
            item = admit_record(record, default_scope=scope,
                                max_chars=mem.config.max_item_chars)
        except InvalidInput as exc:
            report.rejected.append((record["source"], str(exc)))
            continue
        items.append(item)
        vecs.append(np.asarray(batch["vec"][n], dtype=np.float32))
        if hippo is not None and str(batch["extraction"][n]):
            offered[content_hash(item.text)] = _extraction(str(batch["extraction"][n]))
            got = json.loads(str(batch["strings"][n]))
            if got:
                strings += got
                string_vecs.append(np.frombuffer(batch["svecs"][n], dtype=np.float32)
                                   .reshape(len(got), -1))
    if strings:
        mem.vectors.strings.put(strings, np.vstack(string_vecs))
    if offered:
        hippo.offer_extractions(hippo.extractor.name, offered)
    if not items:
        return
    with mem._op():
        with mem._record_lock:
            out = commit_batch(mem.store, mem.vectors, items, items, vecs)
    for iid, created in out:
        if created:
            report.added.append(iid)
        else:
            report.skipped_duplicates += 1
    mem.indexer.changed()


def _extraction(raw: str) -> Any:
    from memkit.backends.hipporag.extraction import Extraction

    d = json.loads(raw)
    return Extraction([str(e) for e in d["entities"]],
                      [(str(s), str(p), str(o)) for s, p, o in d["triples"]], d["error"])
