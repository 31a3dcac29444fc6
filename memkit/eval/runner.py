"""The benchmark runner: build (or reuse) a memory per backend, read every question through
``Memory.read``, optionally answer with a reader LLM, and write the run folder.

Every backend is measured the same way: the corpus is written with ``Memory.write_many``,
each question is read with ``Memory.read(question, k, scope=question.scope, backend=...)``,
and hits are matched to gold evidence through the keys stored in ``metadata["keys"]``.

Builds are cached under ``cache_dir`` keyed by (corpus hash, embedder, backends, backend
options); per-question results are appended to ``predictions.jsonl`` so a rerun with the same
config resumes where the last one stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from memkit.embed import Embedder, load_embedder
from memkit.errors import ConfigError, InvalidInput
from memkit.eval.datasets import Dataset, Question, load_dataset
from memkit.eval.embcache import CachingEmbedder
from memkit.eval.metrics import exact_match, ndcg_at_k, recall_at_k, token_f1
from memkit.fusion import approx_tokens
from memkit.memory import Memory

#: config fields that do not change results (a resumed run may differ in these)
_READ_DEFAULTS: dict[str, Any] = {"read_options": {}, "fusion": "rrf", "weights": {}}
_VOLATILE = ("progress", "out", "cache", "name", "overwrite", "recipe", "plots", "embed_cache")


@dataclass
class EvalConfig:
    """Everything a run depends on (saved as ``config.json``)."""

    dataset: str
    format: str | None = None
    corpus: str | None = None
    loader_options: dict[str, Any] = field(default_factory=dict)
    backends: list[str] = field(default_factory=lambda: ["dense"])
    embedder: str = "minilm"
    backend_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    ks: list[int] = field(default_factory=lambda: [1, 2, 5, 10])
    limit: int | None = None
    llm: str | None = None
    reader_k: int = 5
    max_context_tokens: int | None = None
    name: str | None = None
    out: str = "evals/results"
    cache: str = "evals/cache"
    store: str | None = None  # a postgresql:// DSN: built memories live there, one schema each
    progress: bool = True
    plots: bool = True
    embed_cache: bool = True
    overwrite: bool = False
    recipe: str | None = None
    #: time-aware reads (memkit.temporal.query), resolved against each question's date
    #: (``metadata["question_date"]``, e.g. LoCoMo's last session)
    time_aware: bool = False
    #: per-read options by backend (``Memory.read(read_options=...)``): retrieval variants of
    #: one built memory, so an ablation does not rebuild it
    read_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: how an ``a+b`` spec fuses (``Memory.read(fusion=..., weights=...)``)
    fusion: str = "rrf"
    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.backends or not all(isinstance(b, str) and b.strip() for b in self.backends):
            raise ConfigError(f"backends must be non-empty names, got {self.backends}")
        if not self.ks or any(not isinstance(k, int) or k <= 0 for k in self.ks):
            raise ConfigError(f"k values must be positive integers, got {self.ks}")
        self.ks = sorted(set(self.ks))
        if self.reader_k <= 0:
            raise ConfigError(f"reader_k must be positive, got {self.reader_k}")

    def identity(self) -> dict[str, Any]:
        """The fields that determine results (of a store, its engine: not where it runs;
        the read settings and time-aware reads only when set, so runs from before they
        existed keep their identity)."""
        out = {k: v for k, v in asdict(self).items() if k not in _VOLATILE and k != "store"
               and not (k in _READ_DEFAULTS and v == _READ_DEFAULTS[k])}
        if self.store:  # runs on SQLite keep the identity they always had
            out["store"] = "postgres"
        if not self.time_aware:
            out.pop("time_aware")
        return out


@dataclass
class RunResult:
    path: Path
    metrics: dict[str, Any]
    dataset: Dataset


class TimedEmbedder(Embedder):
    """Wraps an embedder, adding up the time spent embedding (to separate runner overhead)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.seconds = 0.0

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_batch(texts)

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
              desc: str = "embedding") -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.inner.embed(texts, batch_size=batch_size, progress=progress, desc=desc)
        finally:
            self.seconds += time.perf_counter() - t0

    def embed_queries(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.inner.embed_queries(texts, instruction)
        finally:
            self.seconds += time.perf_counter() - t0


def run_name(config: EvalConfig, dataset: Dataset) -> str:
    """The default run folder name: data set, backends, embedder, limit, reader."""
    parts = [dataset.name, "_".join(config.backends), config.embedder.replace(":", "")]
    if config.limit:
        parts.append(f"n{config.limit}")
    if config.store:
        parts.append("postgres")
    if config.llm:
        parts.append(re.sub(r"[^\w.-]+", "", config.llm.split("/")[-1])[:40] or "llm")
    return re.sub(r"[^\w.+-]+", "_", "-".join(parts))


def build_key(dataset: Dataset, embedder_name: str, components: Sequence[str],
              backend_options: dict[str, dict[str, Any]]) -> str:
    """The cache key of a built memory."""
    payload = json.dumps({"corpus": dataset.corpus_hash(), "embedder": embedder_name,
                          "backends": sorted(components),
                          "options": {b: backend_options.get(b, {}) for b in sorted(components)}},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_memory(dataset: Dataset, components: Sequence[str], embedder: TimedEmbedder,
                 config: EvalConfig, *, llm: Any = None) -> tuple[Memory, dict[str, Any]]:
    """Open the cached memory for this corpus and backends, building it if needed."""
    key = build_key(dataset, embedder.name, components, config.backend_options)
    directory = Path(config.cache) / f"{dataset.name}-{'+'.join(components)}-{key}"
    where: dict[str, Any] = {}
    if config.store:
        from memkit.store.postgres import with_schema

        directory = directory.with_name(directory.name + "-pg")
        where["store"] = with_schema(config.store, f"eval_{key}")
    marker = directory / "build.json"
    opts = {b: config.backend_options[b] for b in components if b in config.backend_options}
    if marker.exists() and config.store:
        from memkit.store.postgres import PostgresStore

        if not PostgresStore.holds_memory(where["store"]):  # another server, or dropped
            shutil.rmtree(directory)
    if marker.exists():
        info = json.loads(marker.read_text(encoding="utf-8"))
        mem = Memory.open(directory, backends=list(components), embedder=embedder, llm=llm,
                          progress=config.progress, backend_options=opts, **where)
        return mem, {**info, "reused": True}
    t0 = time.perf_counter()
    embed0 = embedder.seconds
    cached = embedder.inner if isinstance(embedder.inner, CachingEmbedder) else None
    hits0, misses0 = (cached.hits, cached.misses) if cached else (0, 0)
    mem = Memory.open(directory, backends=list(components), embedder=embedder, llm=llm,
                      progress=config.progress, backend_options=opts, **where)
    report = mem.write_many([c.record() for c in dataset.corpus], batch_size=256,
                            progress=config.progress, desc=f"building {'+'.join(components)}")
    mem.flush()
    if report.rejected:
        mem.close()
        raise InvalidInput(f"{len(report.rejected)} corpus item(s) rejected, first: "
                           f"{report.rejected[0]}")
    info = {"key": key, "items": mem.store.count(), "build_s": time.perf_counter() - t0,
            "build_embed_s": embedder.seconds - embed0,
            "bytes": dir_bytes(directory) + (mem.store.size_bytes() if config.store else 0),
            "store": mem.store.kind,
            "written": len(report.added), "already_there": report.skipped_duplicates,
            "embed_cache_hits": cached.hits - hits0 if cached else None,
            "embed_cache_misses": cached.misses - misses0 if cached else None,
            "directory": str(directory), "embedder": embedder.name,
            "backends": list(components), "stats": _jsonable(mem.stats())}
    marker.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return mem, {**info, "reused": False}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ---- predictions file -------------------------------------------------------------------------
def load_predictions(path: Path) -> list[dict[str, Any]]:
    """Rows written so far; a torn last line (interrupted write) is dropped and truncated."""
    if not path.exists():
        return []
    rows, good_bytes = [], 0
    with path.open("rb") as fh:
        for raw in fh:
            try:
                rows.append(json.loads(raw))
            except json.JSONDecodeError:
                break
            if not raw.endswith(b"\n"):
                rows.pop()
                break
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with path.open("r+b") as fh:
            fh.truncate(good_bytes)
    return rows


def score_question(q: Question, ranked_keys: list[list[str]], ks: Sequence[int]) -> dict[str, Any]:
    """Retrieval metrics of one question at every k (None when it has no gold evidence)."""
    return {"recall": {str(k): recall_at_k(ranked_keys, q.evidence, k) for k in ks},
            "ndcg": {str(k): ndcg_at_k(ranked_keys, q.evidence, k) for k in ks}}


def _read_one(mem: Memory, q: Question, spec: str, config: EvalConfig, llm: Any,
              embedder: TimedEmbedder) -> dict[str, Any]:
    fetch = max(max(config.ks), config.reader_k)
    components = spec.split("+")
    e0 = embedder.seconds
    extra: dict[str, Any] = {}
    if config.time_aware:
        extra["time_aware"] = {"reference": q.metadata.get("question_date")}
    result = mem.read(q.question, k=fetch, scope=q.scope,
                      backend=components if len(components) > 1 else spec,
                      read_options={b: o for b, o in config.read_options.items()
                                    if b in components} or None,
                      fusion=config.fusion,
                      weights={b: w for b, w in config.weights.items() if b in components}
                      or None, **extra)
    query_embed_ms = (embedder.seconds - e0) * 1000
    ranked = [list(h.item.metadata.get("keys", [])) for h in result.hits]
    from memkit.generate.reader import answer_from_hits, format_hit, select_hits

    reader_hits = select_hits(result.hits[:config.reader_k], config.max_context_tokens)
    row: dict[str, Any] = {
        "qid": q.id, "backend": spec, "question": q.question, "category": q.category,
        "answers": list(q.answers), "expected_abstain": q.abstain,
        "gold_evidence": list(q.evidence),
        "retrieved": [{"id": h.item.id, "keys": keys, "score": round(float(h.score), 6)}
                      for h, keys in zip(result.hits, ranked, strict=True)],
        **score_question(q, ranked, config.ks),
        "read_ms": result.cost.ms, "query_embed_ms": query_embed_ms,
        "llm_calls": result.cost.llm_calls, "prompt_tokens": result.cost.prompt_tokens,
        "completion_tokens": result.cost.completion_tokens,
        "context_tokens": sum(approx_tokens(format_hit(h)) for h in reader_hits),
    }
    if llm is not None:
        result.hits = result.hits[:config.reader_k]
        ans = answer_from_hits(llm, q.question, result,
                               max_context_tokens=config.max_context_tokens)
        row.update({
            "prediction": ans.text, "abstained": ans.abstained, "raw": ans.raw,
            "reader_ms": ans.cost.ms, "context_tokens": ans.context_tokens,
            "llm_calls": row["llm_calls"] + ans.cost.llm_calls,
            "prompt_tokens": row["prompt_tokens"] + ans.cost.prompt_tokens,
            "completion_tokens": row["completion_tokens"] + ans.cost.completion_tokens,
            "em": None if q.abstain else exact_match(ans.text, q.answers),
            "f1": None if q.abstain else token_f1(ans.text, q.answers),
        })
    return row


def run_eval(config: EvalConfig, *, llm: Any = None, embedder: Embedder | None = None,
             dataset: Dataset | None = None) -> RunResult:
    """Run (or resume) one evaluation; returns the run folder and its metrics.

    ``llm``/``embedder``/``dataset`` objects override the config's specs (tests, notebooks)."""
    from memkit.eval.report import environment, summarise, write_report

    ds = dataset if dataset is not None else load_dataset(
        config.dataset, format=config.format, corpus=config.corpus,
        options=config.loader_options)
    ds = ds.limit(config.limit)
    ids = [q.id for q in ds.questions]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidInput(f"{ds.info.get('source', ds.name)}: duplicate question id {dup!r}")
    if llm is None and config.llm:
        from memkit.llm import load_llm  # type: ignore[attr-defined]

        llm = load_llm(config.llm)
    run_dir = Path(config.out) / (config.name or run_name(config, ds))
    run_dir.mkdir(parents=True, exist_ok=True)
    pred_path = run_dir / "predictions.jsonl"
    identity = {**config.identity(), "corpus_hash": ds.corpus_hash(),
                "questions": len(ds.questions)}
    cfg_path = run_dir / "config.json"
    if cfg_path.exists() and not config.overwrite:
        old = json.loads(cfg_path.read_text(encoding="utf-8")).get("identity")
        if old != identity:
            changed = sorted(k for k in set(old or {}) | set(identity)
                             if (old or {}).get(k) != identity.get(k))
            raise ConfigError(f"{run_dir} holds a run with a different config (differs in "
                              f"{changed}); pass another --name, or --overwrite to restart it")
    if config.overwrite and pred_path.exists():
        pred_path.unlink()
    saved = asdict(config)
    if config.store:
        from memkit.store.postgres import redact

        saved["store"] = redact(config.store)  # never a password in a results folder
    cfg_path.write_text(json.dumps({"identity": identity, "config": saved,
                                    "dataset": ds.summary(), "dataset_info": ds.info},
                                   indent=2, default=str), encoding="utf-8")
    (run_dir / "environment.json").write_text(json.dumps(environment(), indent=2),
                                              encoding="utf-8")
    rows = load_predictions(pred_path)
    done = {(r["backend"], r["qid"]) for r in rows}
    base = embedder if embedder is not None else load_embedder(config.embedder)
    if config.embed_cache:
        base = CachingEmbedder(base, Path(config.cache) / "embeddings.sqlite")
    timed = TimedEmbedder(base)
    builds: dict[str, Any] = {}
    try:
        for spec in config.backends:
            todo = [q for q in ds.questions if (spec, q.id) not in done]
            components = list(dict.fromkeys(spec.split("+")))
            mem, builds[spec] = build_memory(ds, components, timed, config, llm=llm)
            reader = mem.llm if llm is not None else None
            t0, e0 = time.perf_counter(), timed.seconds
            n = 0
            read_ms = reader_ms = 0.0
            try:
                bar = tqdm(todo, desc=f"eval {spec}", disable=not config.progress, unit="q")
                with pred_path.open("a", encoding="utf-8") as out:
                    for q in bar:
                        row = _read_one(mem, q, spec, config, reader, timed)
                        read_ms += row["read_ms"]
                        reader_ms += row.get("reader_ms", 0.0)
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
                        out.flush()
                        n += 1
            finally:
                mem.close()
                if n:  # also when interrupted: the timings of what was done are kept
                    wall = time.perf_counter() - t0
                    record = {"backend": spec, "at": time.time(), "questions": n, "wall_s": wall,
                              "read_s": read_ms / 1000, "query_embed_s": timed.seconds - e0,
                              "reader_s": reader_ms / 1000,
                              "overhead_s": wall - read_ms / 1000 - reader_ms / 1000}
                    with (run_dir / "timings.jsonl").open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(record) + "\n")
    finally:
        if isinstance(base, CachingEmbedder):
            base.close()
    rows = load_predictions(pred_path)
    metrics = summarise(rows, ds, config, builds, total_timing(run_dir / "timings.jsonl"))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    write_report(run_dir, metrics, config, ds)
    return RunResult(run_dir, metrics, ds)


def total_timing(path: Path) -> dict[str, dict[str, float]]:
    """Wall-clock figures summed over every session of a run (a resumed run has several)."""
    totals: dict[str, dict[str, float]] = {}
    if not path.exists():
        return totals
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        t = totals.setdefault(row["backend"], {"sessions": 0})
        t["sessions"] += 1
        for key in ("questions", "wall_s", "read_s", "query_embed_s", "reader_s", "overhead_s"):
            t[key] = t.get(key, 0) + row.get(key, 0)
    for t in totals.values():
        t["overhead_ms_per_question"] = 1000 * t["overhead_s"] / max(t["questions"], 1)
    return totals


def load_recipe(path: Path) -> dict[str, Any]:
    """An index recipe (TOML): ``dataset``, ``backends``, ``embedder``, ``k``, ``limit``,
    ``llm``, ``name``, ``format``, ``corpus``, tables ``[backend_options.<name>]`` and
    ``[loader]``. Relative data paths are resolved against the recipe's folder."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc}") from exc
    allowed = {"dataset", "format", "corpus", "backends", "embedder", "k", "limit", "llm",
               "name", "reader_k", "max_context_tokens", "backend_options", "loader",
               "description", "read_options", "fusion", "weights"}
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"{path}: unknown recipe key(s) {sorted(unknown)}; allowed: "
                          f"{sorted(allowed)}")
    if "dataset" not in data:
        raise ConfigError(f"{path}: a recipe needs 'dataset'")
    for key in ("dataset", "corpus"):
        value = data.get(key)
        if isinstance(value, str) and ("/" in value or value.endswith((".json", ".jsonl"))):
            candidate = (path.parent / value)
            if not Path(value).is_absolute() and candidate.exists():
                data[key] = str(candidate)
    if isinstance(data.get("backends"), str):
        data["backends"] = [b.strip() for b in data["backends"].split(",")]
    return data


def remove_run(path: Path) -> None:
    """Delete a run folder (used by ``--overwrite`` callers that want a clean slate)."""
    shutil.rmtree(path, ignore_errors=True)
