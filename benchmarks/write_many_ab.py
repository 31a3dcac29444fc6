"""Seconds of ``Memory.write_many`` of the MuSiQue-200 corpus (dense only, or with graph
backends), for an A/B between two checkouts of memkit on the same machine at the same time.

    git worktree add /tmp/memkit-old <commit>
    for tree in /tmp/memkit-old .; do for spec in onnx onnx-int8; do
        MEMKIT_DATA_DIR=../shared/data PYTHONPATH=$tree python benchmarks/write_many_ab.py $spec
    done; done
    # a graph build of the first 1,000 passages, batch 256 (as benchmarks/ingest_speed.py):
    ... python benchmarks/write_many_ab.py onnx --backends dense,hipporag --passages 1000 \
            --batch-size 256

Each call is one fresh process: embedder loaded and warmed, then the passages written with
``write_many`` (default batch size 64) into a new memory, timed to the end of ``flush``. Run
the pairs alternately, twice or more: the figures of a shared machine move.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import memkit
from memkit import Memory
from memkit.embed import load_embedder
from memkit.eval.datasets import load_dataset


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", nargs="?", default="onnx", help="embedder spec")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backends", default="dense", help="comma-separated backends")
    parser.add_argument("--passages", type=int, default=0, help="first N passages (0: all)")
    parser.add_argument("--backend-options", default="{}",
                        help='JSON, e.g. \'{"hipporag": {"spacy_processes": 2}}\'')
    args = parser.parse_args(argv)
    spec, batch_size, backends = args.spec, args.batch_size, args.backends.split(",")
    ds = load_dataset("musique")
    corpus = ds.corpus[:args.passages] if args.passages else ds.corpus
    emb = load_embedder(spec)
    emb.embed(["warm up"])
    with tempfile.TemporaryDirectory() as tmp, \
            Memory.open(tmp, backends=backends, embedder=emb, progress=False,
                        backend_options=json.loads(args.backend_options)) as mem:
        t0 = time.perf_counter()
        mem.write_many([c.record() for c in corpus], batch_size=batch_size, progress=False)
        mem.flush()
        seconds = time.perf_counter() - t0
        timings = {name: {k: round(v, 1) for k, v in b.index_timings.items()}
                   for name, b in mem.backends.items() if getattr(b, "index_timings", None)}
    print(f"{memkit.__file__} {spec} ({emb.name}) {'+'.join(backends)} "
          f"{args.backend_options} batch {batch_size}: {seconds:.1f} s for {len(corpus)} "
          f"passages; index stage seconds {timings}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
