"""How much time does the runner add on top of the memory reads it measures?

Baseline, measured in the same process on the same built (cached) memory: a bare loop of
``Memory.read(question, k, scope=...)`` over the questions. Then the runner's eval loop over the
same questions (fresh run folder; the build is reused from the cache). Prints both, the
difference per question, and the ratio.

    python evals/bench_overhead.py musique --embedder minilm      # MuSiQue-200, MiniLM
    python evals/bench_overhead.py musique-sample --embedder hash # seconds, no model
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from memkit.embed import load_embedder
from memkit.eval.datasets import load_dataset
from memkit.eval.runner import EvalConfig, TimedEmbedder, build_memory, run_eval


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--cache", default="evals/cache")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    emb = TimedEmbedder(load_embedder(args.embedder))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = EvalConfig(dataset=args.dataset, embedder=args.embedder, cache=args.cache,
                         out=str(Path(tmp) / "results"), ks=[args.k], progress=False,
                         plots=False)
        mem, build = build_memory(ds, ["dense"], emb, cfg)
        try:
            mem.read(ds.questions[0].question, k=args.k, scope=ds.questions[0].scope)  # warm-up
            t0 = time.perf_counter()
            for q in ds.questions:
                mem.read(q.question, k=args.k, scope=q.scope)
            bare = time.perf_counter() - t0
        finally:
            mem.close()
        t0 = time.perf_counter()
        result = run_eval(cfg, embedder=emb.inner, dataset=ds)
        runner_total = time.perf_counter() - t0
    timing = result.metrics["backends"]["dense"]["timing"]
    n = len(ds.questions)
    print(f"data set {ds.name}: {n} questions, {len(ds.corpus)} items, embedder {emb.name}, "
          f"index reused: {build['reused']}")
    print(f"baseline  bare Memory.read loop     {bare:8.2f} s  ({1000 * bare / n:.2f} ms/q)")
    print(f"runner    eval loop (wall)          {timing['wall_s']:8.2f} s  "
          f"({1000 * timing['wall_s'] / n:.2f} ms/q)")
    print(f"runner    of which inside read      {timing['read_s']:8.2f} s "
          f"(query embedding {timing['query_embed_s']:.2f} s)")
    print(f"runner    overhead outside read     {timing['overhead_s']:8.2f} s  "
          f"({timing['overhead_ms_per_question']:.2f} ms/q)")
    print(f"runner    whole run_eval call       {runner_total:8.2f} s  (load, open, report)")
    print(f"ratio     eval loop / bare loop     {timing['wall_s'] / bare:8.3f}")


if __name__ == "__main__":
    main()
