"""Ingest speed on the MuSiQue-200 corpus (3,141 passages): embedders and builds, in one run.

    python benchmarks/ingest_speed.py                       # encode + dense builds (3 embedders)
    python benchmarks/ingest_speed.py --passages 300        # a quick run on the first passages
    python benchmarks/ingest_speed.py --embedders onnx,onnx-int8
    python benchmarks/ingest_speed.py --embedders "onnx[onnxruntime],onnx[openvino]"
                                                            # one spec on each runtime
    python benchmarks/ingest_speed.py --graphs hipporag,panini  # + dense+hipporag, dense+panini
    python benchmarks/ingest_speed.py --embedders onnx,onnx-int8 --graphs hipporag,panini \
        --graph-embedders onnx-int8                         # the graph builds with int8 only
    python benchmarks/ingest_speed.py --json out.json       # also write every figure as JSON
    python benchmarks/ingest_speed.py --encode-again        # the plain encode first and last:
                                                            # ratios against the faster one
    python benchmarks/ingest_speed.py --embedders onnx --ray 1,2  # + file ingest: single
                                                            # process vs Ray with 1, 2 workers
    python benchmarks/ingest_speed.py --embedders onnx --graphs panini --then 7458d75
                                                            # + dense+panini as the code was
                                                            # at commit 7458d75, same run

Stages, each in a fresh subprocess (so peak RSS is that stage's own, and a torch import in
one stage does not weigh on another):

1. the baseline: plain ``SentenceTransformer.encode(passages, batch_size=64)`` of the packaged
   all-MiniLM-L6-v2 (torch), whose vectors are kept as the reference;
2. for each embedder spec (``minilm`` = the torch path, ``onnx``, ``onnx-int8``):
   ``Memory.write_many`` of the corpus (batch 256) into a new memory with dense only,
   then every question read through ``Memory.read`` (k=10) for R@5, scored as
   ``memkit eval`` does (gold keys in ``metadata["keys"]``, :func:`recall_at_k`);
3. with ``--graphs``: the same for dense+hipporag and dense+panini, R@5 of that backend,
   then ``Memory.rebuild`` of the graph backend: the texts it embeds again (the string-vector
   cache should make that 0) and its seconds;
4. with ``--ray N,M``: the corpus written as a JSONL file and ingested from it (dense, the
   ``--ray-embedder``) by ``memkit.ingest.ingest_paths`` in one process, then by
   ``memkit.scale.ingest_ray`` on a local Ray with N, M workers (each a fresh process, its Ray
   started inside the timed part and counted: that is Ray's overhead on this machine);
5. with ``--then COMMIT``: each ``--graphs`` build again with the code as it was at COMMIT
   (checked out into a temporary git worktree and imported from there, its own default
   embedder), ``write_many`` of the same records then R@5 through that code's ``read``; the
   row's ratio is the build's speed-up of today over then (``7458d75`` is the parent of the
   first ingest-speed commit: the code the ingest-speed issue measured).

Printed per stage: seconds, texts embedded and texts/s, passages/s, peak RSS, R@5, the cosine
of every passage vector against the baseline's (min / 1st percentile / mean), and the ratio of
passages/s to the plain encode. The machine these figures come from is shared (2 cores,
other jobs running), so absolute times vary from run to run: compare the ratios within one
run, never figures from different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def corpus(passages: int | None) -> tuple[Any, list[str]]:
    from memkit.eval.datasets import load_dataset

    ds = load_dataset("musique")
    if passages:
        ds.corpus = ds.corpus[:passages]
    return ds, [c.text for c in ds.corpus]


def stage_encode(args: argparse.Namespace) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    from memkit.embed.packaged import packaged_minilm_path

    _, texts = corpus(args.passages)
    t0 = time.perf_counter()
    model = SentenceTransformer(str(packaged_minilm_path()), device="cpu",
                                local_files_only=True)
    model.max_seq_length = 256
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vecs = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False)
    seconds = time.perf_counter() - t0
    np.save(Path(args.work) / "baseline.npy", np.asarray(vecs, dtype=np.float32))
    return {"stage": "plain SentenceTransformer.encode", "load_s": load_s, "seconds": seconds,
            "texts": len(texts), "passages": len(texts)}


def recording(inner: Any) -> Any:
    """The embedder, counting every text it embeds and keeping the vectors of documents."""
    from memkit.embed import Embedder

    class Recording(Embedder):
        def __init__(self) -> None:
            self.inner, self.name, self.dim, self.spec = inner, inner.name, inner.dim, inner.spec
            self.texts = 0
            self.seen: dict[str, np.ndarray] = {}

        def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
            return self.keep(texts, self.inner.embed_batch(texts))

        def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
                  desc: str = "embedding") -> np.ndarray:
            return self.keep(texts, self.inner.embed(texts, batch_size=batch_size,
                                                     progress=progress, desc=desc))

        def keep(self, texts: Sequence[str], vecs: np.ndarray) -> np.ndarray:
            self.texts += len(texts)
            for text, vec in zip(texts, vecs, strict=True):
                self.seen.setdefault(text, vec)
            return vecs

        def embed_queries(self, texts: Sequence[str],
                          instruction: str | None = None) -> np.ndarray:
            return self.inner.embed_queries(texts, instruction)

        def count_tokens(self, text: str) -> int:
            return int(self.inner.count_tokens(text))

    return Recording()


def stage_build(args: argparse.Namespace) -> dict[str, Any]:
    from memkit import Memory
    from memkit.embed import load_embedder
    from memkit.eval.metrics import recall_at_k

    ds, texts = corpus(args.passages)
    backends = args.backends.split("+")
    t0 = time.perf_counter()
    spec, runtime = split_runtime(args.embedder)
    if runtime:  # what "auto" resolves to in this stage's process
        os.environ["MEMKIT_ONNX_RUNTIME"] = runtime
    inner = load_embedder(spec)
    emb = recording(inner)
    load_s = time.perf_counter() - t0
    options = json.loads(args.backend_options) if args.backend_options else {}
    opts = {b: options[b] for b in backends if b in options}
    directory = Path(args.work) / f"memory-{args.embedder.replace(':', '_')}-{args.backends}"
    mem = Memory.open(directory, backends=backends, embedder=emb, progress=False,
                      backend_options=opts)
    t0 = time.perf_counter()
    report = mem.write_many([c.record() for c in ds.corpus], batch_size=256, progress=False)
    mem.flush()
    seconds = time.perf_counter() - t0
    build_rss = peak_rss_mb()
    read_backend = backends[-1]
    rebuild: dict[str, Any] = {}
    if read_backend != "dense":
        before, t1 = emb.texts, time.perf_counter()
        mem.rebuild([read_backend])
        rebuild = {"rebuild_s": time.perf_counter() - t1, "rebuild_texts": emb.texts - before}
    cached = mem.vectors.strings.count()
    recalls = []
    visible = {key for c in ds.corpus for key in c.keys}
    for q in ds.questions:
        if args.passages and not set(q.evidence) <= visible:
            continue  # a partial corpus: only questions whose evidence is in it
        hits = mem.read(q.question, k=10, scope=q.scope, backend=read_backend).hits
        r = recall_at_k([list(h.item.metadata.get("keys", [])) for h in hits], q.evidence, 5)
        if r is not None:
            recalls.append(r)
    mem.close()
    base = np.load(Path(args.work) / "baseline.npy")
    pairs = [(base[i], emb.seen[t]) for i, t in enumerate(texts) if t in emb.seen]
    cos = np.array([float(a @ b) for a, b in pairs]) if pairs else np.array([np.nan])
    ran_on = getattr(inner, "runtime", None)
    precision = getattr(getattr(inner, "session", None), "precision", None)
    on = f" on {ran_on}{f' {precision}' if precision else ''}" if ran_on else ""
    return {"stage": f"write_many {args.backends} [{spec}{on}]", "load_s": load_s,
            "runtime": ran_on, "precision": precision,
            "seconds": seconds, "texts": emb.texts, "passages": len(report.added),
            "rejected": len(report.rejected), "build_peak_rss_mb": build_rss,
            "r5": float(np.mean(recalls)) if recalls else None, "questions": len(recalls),
            "cos_min": float(cos.min()), "cos_p1": float(np.percentile(cos, 1)),
            "cos_mean": float(cos.mean()), "cos_n": len(pairs),
            "cos_below_099": int((cos < 0.99).sum()), "cached_strings": cached, **rebuild}


def split_runtime(embedder: str) -> tuple[str, str | None]:
    """``"onnx[onnxruntime]"`` -> ``("onnx", "onnxruntime")``: a spec and the runtime its
    stage asks for (``$MEMKIT_ONNX_RUNTIME``), so one run can compare the runtimes of a spec.

    >>> split_runtime("onnx[onnxruntime]"), split_runtime("onnx:/m/x[y]z")
    (('onnx', 'onnxruntime'), ('onnx:/m/x[y]z', None))
    """
    match = re.fullmatch(r"(.+)\[(auto|onnxruntime|openvino)\]", embedder)
    return (match.group(1), match.group(2)) if match else (embedder, None)


def write_corpus_file(ds: Any, work: Path) -> Path:
    """The corpus as one JSONL file for the file-ingest stages (gold keys as a field)."""
    path = work / "corpus" / "musique.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for c in ds.corpus:
                f.write(json.dumps({"text": c.text, "keys": "|".join(c.keys)}) + "\n")
    return path


def stage_files(args: argparse.Namespace) -> dict[str, Any]:
    """Single-process ``ingest_paths`` (workers 0) or ``ingest_ray`` (workers N) of the
    corpus file into a dense memory, then R@5 as in the builds."""
    from memkit import Memory
    from memkit.eval.metrics import recall_at_k
    from memkit.ingest import ingest_paths

    ds, _ = corpus(args.passages)
    path = write_corpus_file(ds, Path(args.work))
    workers = int(args.workers)
    directory = Path(args.work) / f"files-{workers}"
    mem = Memory.open(directory, backends=["dense"], embedder=args.embedder, progress=False)
    t0 = time.perf_counter()
    if workers == 0:
        report = ingest_paths(mem, [path], max_tokens=512, overlap=0, progress=False)
        label = "memkit ingest (single process)"
    else:
        import ray

        from memkit.scale import ingest_ray

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        report = ingest_ray(mem, [path], max_tokens=512, overlap=0, workers=workers,
                            progress=False)
        label = f"memkit ingest --ray, {workers} worker(s)"
    mem.flush()
    seconds = time.perf_counter() - t0
    build_rss = peak_rss_mb()
    recalls = []
    visible = {key for c in ds.corpus for key in c.keys}
    for q in ds.questions:
        if args.passages and not set(q.evidence) <= visible:
            continue
        hits = mem.read(q.question, k=10, backend="dense").hits
        keys = [str(h.item.metadata.get("keys", "")).split("|") for h in hits]
        r = recall_at_k(keys, q.evidence, 5)
        if r is not None:
            recalls.append(r)
    mem.close()
    return {"stage": f"{label} [{args.embedder}]", "load_s": 0.0, "seconds": seconds,
            "texts": len(report.added), "passages": len(report.added),
            "rejected": len(report.rejected), "build_peak_rss_mb": build_rss,
            "r5": float(np.mean(recalls)) if recalls else None, "questions": len(recalls)}


def write_then_inputs(passages: int | None, work: Path) -> None:
    """The records and questions of the corpus as plain JSON, for a stage run on older code."""
    ds, _ = corpus(passages)

    def scope(s: Any) -> dict[str, str]:
        return {k: v for k, v in vars(s).items() if v is not None}

    visible = {key for c in ds.corpus for key in c.keys}
    records = [{**c.record(), "scope": scope(c.scope)} for c in ds.corpus]
    questions = [{"question": q.question, "scope": scope(q.scope), "evidence": list(q.evidence)}
                 for q in ds.questions if not passages or set(q.evidence) <= visible]
    (work / "then-inputs.json").write_text(json.dumps({"records": records,
                                                        "questions": questions}))


def stage_then(args: argparse.Namespace) -> dict[str, Any]:
    """A ``write_many`` build with the memkit checked out at ``args.src`` (an older commit)."""
    src = Path(args.src).resolve()
    if "memkit" in sys.modules:
        raise SystemExit("the then stage must import memkit from the worktree, not this repo")
    sys.path.insert(0, str(src))
    import memkit
    from memkit import Memory
    from memkit.config import MemoryConfig
    from memkit.embed import load_embedder

    if not Path(memkit.__file__).resolve().is_relative_to(src):
        raise SystemExit(f"memkit came from {memkit.__file__}, not from {src}")
    inputs = json.loads((Path(args.work) / "then-inputs.json").read_text())
    backends = args.backends.split("+")
    spec = MemoryConfig().embedder  # that commit's default embedder
    t0 = time.perf_counter()
    emb = load_embedder(spec)
    load_s = time.perf_counter() - t0
    embedded = [0]
    inner = emb.embed_batch

    def counted(texts: Sequence[str]) -> np.ndarray:
        embedded[0] += len(texts)
        return inner(texts)

    emb.embed_batch = counted  # type: ignore[method-assign]
    mem = Memory.open(Path(args.work) / f"then-{args.backends}", backends=backends,
                      embedder=emb, progress=False)
    t0 = time.perf_counter()
    report = mem.write_many(inputs["records"], batch_size=256, progress=False)
    mem.flush()
    seconds = time.perf_counter() - t0
    build_rss, texts = peak_rss_mb(), embedded[0]
    hit_keys = [[list(h.item.metadata.get("keys", []))
                 for h in mem.read(q["question"], k=10, scope=q["scope"],
                                   backend=backends[-1]).hits]
                for q in inputs["questions"]]
    mem.close()
    return {"stage": f"THEN {args.then_label} write_many {args.backends} [{spec}]",
            "load_s": load_s, "seconds": seconds, "texts": texts,
            "passages": len(report.added), "rejected": len(report.rejected),
            "build_peak_rss_mb": build_rss, "hit_keys": hit_keys,
            "evidence": [q["evidence"] for q in inputs["questions"]]}


def then_worktree(commit: str, work: Path) -> Path:
    """A detached git worktree of ``commit`` under ``work`` (removed by :func:`drop_worktree`)."""
    path = work / f"then-src-{commit[:12]}"
    out = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path),
                          commit], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"--then {commit}: git worktree add failed: {out.stderr.strip()}")
    return path


def drop_worktree(path: Path) -> None:
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
                   capture_output=True, check=False)


def scored_then(row: dict[str, Any]) -> dict[str, Any]:
    """R@5 of a then-stage's hits, scored by today's :func:`recall_at_k` as the other rows."""
    from memkit.eval.metrics import recall_at_k

    rs = [recall_at_k(keys, gold, 5) for keys, gold in
          zip(row.pop("hit_keys"), row.pop("evidence"), strict=True)]
    kept = [r for r in rs if r is not None]
    return {**row, "r5": float(np.mean(kept)) if kept else None, "questions": len(kept)}


def run_stage(argv: list[str]) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, __file__, *argv], env=env, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"stage {argv} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def plain_base(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The plain encode the ratios divide by: the faster one when it ran twice (the
    conservative choice: this machine's speed drifts by 10-30 % between minutes)."""
    return min((r for r in rows if r["stage"].startswith("plain ")), key=lambda r: r["seconds"])


def table(rows: list[dict[str, Any]]) -> str:
    base_row = plain_base(rows)
    base = base_row["passages"] / base_row["seconds"]
    lines = [f"{'stage':52s} {'s':>7s} {'texts':>6s} {'texts/s':>8s} {'pass/s':>7s} "
             f"{'x plain':>7s} {'RSS MB':>7s} {'R@5':>6s} {'cos min/p1/mean':>22s}"]
    for r in rows:
        pps = r["passages"] / r["seconds"]
        r5 = f"{100 * r['r5']:.1f}" if r.get("r5") is not None else "-"
        cos = f"{r['cos_min']:.4f}/{r['cos_p1']:.4f}/{r['cos_mean']:.5f}" \
            if "cos_min" in r else "(reference)" if r["stage"].startswith("plain ") else "-"
        lines.append(f"{r['stage'][:52]:52s} {r['seconds']:7.1f} {r['texts']:6d} "
                     f"{r['texts'] / r['seconds']:8.1f} {pps:7.1f} {pps / base:7.2f} "
                     f"{r['peak_rss_mb']:7.0f} {r5:>6s} {cos:>22s}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=None, help="only the first N passages")
    ap.add_argument("--embedders", default="minilm,onnx,onnx-int8",
                    help="embedder specs for the write_many builds (memkit.embed.load_embedder)")
    ap.add_argument("--graphs", default="", help="also build dense+B for each B of "
                    "'hipporag,panini' with every embedder")
    ap.add_argument("--graph-embedders", default=None, help="embedders of the --graphs builds "
                    "(default: every one of --embedders)")
    ap.add_argument("--backend-options", default="", help='JSON, e.g. {"hipporag": {...}}')
    ap.add_argument("--ray", default="", help="worker counts for the Ray file ingest, e.g. "
                    "'1,2' (with a single-process file ingest first)")
    ap.add_argument("--ray-embedder", default="onnx", help="embedder of the file ingests")
    ap.add_argument("--then", default="", help="a git commit: also build each --graphs "
                    "backend with the code as it was there (same run; a speed-up over then)")
    ap.add_argument("--encode-again", action="store_true", help="run the plain encode again "
                    "after the builds; ratios use the faster of the two")
    ap.add_argument("--json", default=None, help="write every figure to this file")
    ap.add_argument("--work", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--stage", choices=["encode", "build", "files", "then"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--then-label", default="", help=argparse.SUPPRESS)
    ap.add_argument("--workers", help=argparse.SUPPRESS)
    ap.add_argument("--embedder", help=argparse.SUPPRESS)
    ap.add_argument("--backends", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.stage:  # inside a stage subprocess: one JSON line on stdout
        stage = {"encode": stage_encode, "build": stage_build, "files": stage_files,
                 "then": stage_then}
        result = stage[args.stage](args)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return 0

    common = ["--passages", str(args.passages)] if args.passages else []
    if args.backend_options:
        common += ["--backend-options", args.backend_options]
    builds = [(e, "dense") for e in args.embedders.split(",") if e]
    graph_embedders = args.graph_embedders or args.embedders
    builds += [(e, f"dense+{g}") for g in args.graphs.split(",") if g
               for e in graph_embedders.split(",") if e]
    with tempfile.TemporaryDirectory(prefix="ingest-speed-") as work:
        print(f"MuSiQue-200 corpus{f' (first {args.passages} passages)' if args.passages else ''}"
              f"; {os.cpu_count()} CPUs (shared: compare ratios within this run)", flush=True)
        rows = [run_stage(["--stage", "encode", "--work", work, *common])]
        print(f"  {rows[-1]['stage']}: {rows[-1]['seconds']:.1f}s", flush=True)
        for embedder, backends in builds:
            rows.append(run_stage(["--stage", "build", "--work", work, "--embedder", embedder,
                                   "--backends", backends, *common]))
            print(f"  {rows[-1]['stage']}: {rows[-1]['seconds']:.1f}s", flush=True)
        for workers in ([0] + [int(w) for w in args.ray.split(",")]) if args.ray else []:
            rows.append(run_stage(["--stage", "files", "--work", work, "--workers",
                                   str(workers), "--embedder", args.ray_embedder, *common]))
            print(f"  {rows[-1]['stage']}: {rows[-1]['seconds']:.1f}s", flush=True)
        if args.then:
            write_then_inputs(args.passages, Path(work))
            src = then_worktree(args.then, Path(work))
            try:
                for g in (g for g in args.graphs.split(",") if g):
                    rows.append(scored_then(run_stage(
                        ["--stage", "then", "--work", work, "--src", str(src),
                         "--then-label", args.then, "--backends", f"dense+{g}", *common])))
                    print(f"  {rows[-1]['stage']}: {rows[-1]['seconds']:.1f}s", flush=True)
            finally:
                drop_worktree(src)
        if args.encode_again:
            rows.append(run_stage(["--stage", "encode", "--work", work, *common]))
            rows[-1]["stage"] += " (again, last)"
            print(f"  {rows[-1]['stage']}: {rows[-1]['seconds']:.1f}s", flush=True)
    print()
    print(table(rows))
    print(f"\nx plain = passages/s over plain SentenceTransformer.encode's "
          f"({plain_base(rows)['seconds']:.1f}s; with --encode-again the faster of the two); "
          f"cos = passage vectors "
          "against the plain encode's; RSS = the stage process's peak (for --ray: the "
          "driver's; the Ray workers are processes of their own).")
    for r in rows:
        if "rebuild_s" in r:
            print(f"rebuild of {r['stage']}: {r['rebuild_s']:.1f}s, {r['rebuild_texts']} texts "
                  f"embedded again ({r['cached_strings']} strings in the vector cache)")
    for then in (r for r in rows if r["stage"].startswith("THEN ")):
        now = [r for r in rows if r["stage"].startswith("write_many ")
               and r["stage"].split()[1] == then["stage"].split()[3]]
        for r in now:
            print(f"{r['stage']} against {then['stage']}: {then['seconds'] / r['seconds']:.2f}x "
                  f"faster ({r['seconds']:.1f}s vs {then['seconds']:.1f}s), R@5 "
                  f"{100 * (r['r5'] or 0):.1f} vs {100 * (then['r5'] or 0):.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
