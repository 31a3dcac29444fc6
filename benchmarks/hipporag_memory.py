"""Peak memory (RSS) of HippoRAG graphs, each measured in a fresh process.

* ``--part musique``: reopen the MuSiQue-200 memory built by ``hipporag_musique.py`` (graph,
  phrase/fact/passage faiss indexes, dense index) and answer one query; prints the RSS with
  only MiniLM loaded and after opening + querying.
* ``--part synthetic``: a synthetic graph with 1M passages assembled by the backend's own code
  (:func:`memkit.backends.hipporag.graph.assemble`): 400k phrases, 6 mentions and 4 relations
  per passage, 2 synonymy edges per phrase; then the PPR operator, one power-iteration query
  and one local push query, graph.npz save/load. Vectors are not included (a 1M x 384 float32
  passage index alone is 1.5 GB).

    python benchmarks/hipporag_memory.py --part synthetic
    python benchmarks/hipporag_memory.py --part musique
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(n_passages: int, n_phrases: int) -> None:
    from memkit.backends.hipporag.graph import GraphArrays, assemble
    from memkit.backends.hipporag.ppr import PPROperator
    from memkit.backends.hipporag.push import LocalPPR

    base = rss_mb()
    rng = np.random.default_rng(0)
    phrase_ids = np.arange(1, n_phrases + 1, dtype=np.int64)
    passage_ids = np.arange(1, n_passages + 1, dtype=np.int64)
    # Zipf-like phrase popularity
    pop = 1.0 / np.arange(1, n_phrases + 1) ** 0.8
    pop /= pop.sum()
    ctx = np.column_stack([np.repeat(passage_ids, 6),
                           rng.choice(phrase_ids, 6 * n_passages, p=pop)]).astype(np.float64)
    rel = np.column_stack([rng.choice(phrase_ids, 4 * n_passages, p=pop),
                           rng.choice(phrase_ids, 4 * n_passages, p=pop),
                           np.ones(4 * n_passages)])
    rel = rel[rel[:, 0] != rel[:, 1]]
    syn = np.column_stack([rng.choice(phrase_ids, 2 * n_phrases),
                           rng.choice(phrase_ids, 2 * n_phrases),
                           rng.uniform(0.8, 1.0, 2 * n_phrases)])
    facts = np.column_stack([np.arange(1, len(rel) + 1), rel[:, 0], rel[:, 1]]).astype(np.int64)
    inputs = rss_mb()
    t = time.perf_counter()
    g = assemble(phrase_ids, passage_ids, rel, ctx, syn, facts, 1)
    build_s = time.perf_counter() - t
    del ctx, rel, syn
    after_graph = rss_mb()
    t = time.perf_counter()
    op = PPROperator(g.adj)
    op_s = time.perf_counter() - t
    reset = np.zeros(g.n_nodes)
    reset[rng.choice(g.n_phrases, 5, replace=False)] = 1.0
    t = time.perf_counter()
    res = op.run(reset, 0.5)
    ppr_s = time.perf_counter() - t
    lp = LocalPPR(g.adj)
    seeds = {int(i): 1.0 for i in np.flatnonzero(reset)}
    t = time.perf_counter()
    lp.run(seeds, 0.5, 1e-5)
    push_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "graph.npz"
        g.save(path)
        size = path.stat().st_size
        t = time.perf_counter()
        GraphArrays.load(path)
        load_s = time.perf_counter() - t
    print(f"synthetic graph: {n_passages:,} passages, {n_phrases:,} phrases, {g.stats()}")
    print("| measure | value |")
    print("|---|---|")
    print(f"| RSS at start (python + numpy/scipy) | {base:.0f} MB |")
    print(f"| RSS with the raw edge lists | {inputs:.0f} MB |")
    print(f"| RSS with the assembled graph (CSR) | {after_graph:.0f} MB |")
    print(f"| peak RSS incl. PPR operator, power + push queries, save/load | {peak_mb():.0f} MB |")
    print(f"| assemble graph | {build_s:.1f} s |")
    print(f"| build PPR operator | {op_s:.1f} s |")
    print(f"| one PPR query (power, {res.iterations} iterations) | {1000 * ppr_s:.0f} ms |")
    print(f"| one local push query (eps 1e-5) | {1000 * push_s:.0f} ms |")
    print(f"| graph.npz size / load | {size / 2**20:.0f} MB / {1000 * load_s:.0f} ms |")


def musique() -> None:
    import torch

    torch.set_num_threads(1)
    from benchmarks.hipporag_data import cache_dir, load_musique, minilm_cached
    from memkit import Memory

    corpus, qs = load_musique()
    emb = minilm_cached()
    emb.embed_queries(["warm"])
    before = rss_mb()
    directory = cache_dir() / f"mem-spacy-syn0.8-{len(corpus)}"
    if not directory.exists():
        raise SystemExit(f"{directory} missing: run benchmarks/hipporag_musique.py first")
    t = time.perf_counter()
    mem = Memory.open(directory, embedder=emb)
    open_s = time.perf_counter() - t
    opened = rss_mb()
    mem.read(qs[0].question, backend="hipporag")
    after = rss_mb()
    stats = mem.backends["hipporag"].stats()
    files = sum(p.stat().st_size for p in (directory / "hipporag").iterdir())
    mem.close()
    print(f"MuSiQue-200 graph: {stats}")
    print("| measure | value |")
    print("|---|---|")
    print(f"| RSS with MiniLM loaded, before opening | {before:.0f} MB |")
    print(f"| RSS after opening the memory (hipporag + dense) | {opened:.0f} MB "
          f"(+{opened - before:.0f}) |")
    print(f"| RSS after the first hipporag query | {after:.0f} MB (+{after - before:.0f}) |")
    print(f"| peak RSS of the process | {peak_mb():.0f} MB |")
    print(f"| open time (loads graph.npz + faiss files) | {open_s:.2f} s |")
    print(f"| hipporag files on disk | {files / 2**20:.1f} MB |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["synthetic", "musique"], required=True)
    ap.add_argument("--passages", type=int, default=1_000_000)
    ap.add_argument("--phrases", type=int, default=400_000)
    args = ap.parse_args()
    if args.part == "synthetic":
        synthetic(args.passages, args.phrases)
    else:
        musique()
    print(f"\ncommand: python benchmarks/hipporag_memory.py --part {args.part}")


if __name__ == "__main__":
    main()
