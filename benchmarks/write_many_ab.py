"""Seconds of ``Memory.write_many`` (dense only) of the MuSiQue-200 corpus, for an A/B between
two checkouts of memkit on the same machine at the same time.

    git worktree add /tmp/memkit-old <commit>
    for tree in /tmp/memkit-old .; do for spec in onnx onnx-int8; do
        MEMKIT_DATA_DIR=../shared/data PYTHONPATH=$tree python benchmarks/write_many_ab.py $spec
    done; done

Each call is one fresh process: embedder loaded and warmed, then the 3,141 passages written
with ``write_many``'s default batch size (64) into a new memory, timed to the end of
``flush``. Run the pairs alternately, twice or more: the figures of a shared machine move.
"""

from __future__ import annotations

import sys
import tempfile
import time

import memkit
from memkit import Memory
from memkit.embed import load_embedder
from memkit.eval.datasets import load_dataset


def main(argv: list[str]) -> int:
    spec = argv[0] if argv else "onnx"
    batch_size = int(argv[1]) if len(argv) > 1 else 64
    ds = load_dataset("musique")
    emb = load_embedder(spec)
    emb.embed(["warm up"])
    with tempfile.TemporaryDirectory() as tmp, \
            Memory.open(tmp, backends=["dense"], embedder=emb, progress=False) as mem:
        t0 = time.perf_counter()
        mem.write_many([c.record() for c in ds.corpus], batch_size=batch_size, progress=False)
        mem.flush()
        seconds = time.perf_counter() - t0
    print(f"{memkit.__file__} {spec} ({emb.name}) batch {batch_size}: {seconds:.1f} s for "
          f"{len(ds.corpus)} passages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
