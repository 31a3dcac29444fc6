"""Foundation benchmark: write throughput, read latency vs brute-force numpy, HNSW recall@10.

    python benchmarks/foundation.py                 # 10k and 100k items (several minutes)
    python benchmarks/foundation.py --sizes 2000    # quick

The memory layer is measured with precomputed vectors (a lookup "embedder"), so the figures
are SQLite + faiss + facade costs, not the model's; the packaged MiniLM's own embedding
throughput is measured separately on a sample. Vectors are synthetic but clustered (1,000
Gaussian clusters on the unit sphere, 384-d, like sentence embeddings), since uniform random
vectors are an unrealistically hard case for HNSW. Every ratio compares figures measured in
this one run on this machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from memkit import Memory
from memkit.embed.base import Embedder

DIM = 384


class LookupEmbedder(Embedder):
    """'item 17' -> row 17 of the item matrix; 'query 3' -> row 3 of the query matrix."""

    def __init__(self, items: np.ndarray, queries: np.ndarray) -> None:
        self.items, self.queries = items, queries
        self.dim, self.name = items.shape[1], f"lookup-{items.shape[1]}"

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            kind, _, num = text.partition(" ")
            out[row] = (self.items if kind == "item" else self.queries)[int(num)]
        return out


def clustered(n: int, seed: int, centers: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = 0.6 * rng.normal(size=(n, DIM)) / np.sqrt(DIM)  # |noise| ~ 0.6 |center|
    v = (centers[rng.integers(0, len(centers), n)] + noise).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def percentile(ms: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(ms), p))


def bench_size(n: int, n_queries: int, workdir: Path, rng_seed: int = 0) -> dict[str, float]:
    centers = np.random.default_rng(99).normal(size=(1000, DIM))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    items, queries = clustered(n, rng_seed, centers), clustered(n_queries, rng_seed + 1, centers)
    emb = LookupEmbedder(items, queries)
    path = workdir / f"mem-{n}"
    shutil.rmtree(path, ignore_errors=True)
    users = [f"u{i % 10}" for i in range(n)]  # 10 users: a scoped read sees 10 %
    with Memory.open(path, embedder=emb) as mem:
        t0 = time.perf_counter()
        report = mem.write_many(({"text": f"item {i}", "scope": {"user": users[i]}}
                                 for i in range(n)), batch_size=1000, total=n, progress=True)
        mem.flush()
        write_s = time.perf_counter() - t0
        assert len(report.added) == n
        kind = mem.backends["dense"].index.kind
        # ids are 1..n in write order, so item i has id i+1
        read_ms, scoped_ms, np_ms, recall = [], [], [], []
        for j in range(n_queries):
            t = time.perf_counter()
            res = mem.read(f"query {j}", k=10, scope="default")
            read_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            mem.read(f"query {j}", k=10, scope={"user": "u3"})
            scoped_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            scores = items @ queries[j]
            top = np.argpartition(-scores, 10)[:10]
            exact = top[np.argsort(-scores[top])] + 1
            np_ms.append((time.perf_counter() - t) * 1000)
            recall.append(len(set(res.ids) & set(exact.tolist())) / 10)
        disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {"n": n, "kind": kind, "write_items_per_s": n / write_s,
            "read_p50": percentile(read_ms, 50), "read_p95": percentile(read_ms, 95),
            "scoped_p50": percentile(scoped_ms, 50), "scoped_p95": percentile(scoped_ms, 95),
            "numpy_p50": percentile(np_ms, 50), "numpy_p95": percentile(np_ms, 95),
            "recall10": float(np.mean(recall)), "disk_mb": disk / 2**20}


def minilm_throughput(n: int = 512) -> float:
    from memkit.embed import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder()
    texts = [f"Sample memory number {i}: the meeting moved to room {i % 40} on floor {i % 7}."
             for i in range(n)]
    emb.embed(texts[:32])  # warm-up
    t = time.perf_counter()
    emb.embed(texts, batch_size=64)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--no-minilm", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/foundation.md")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            rows.append(bench_size(n, args.queries, Path(d)))
    lines = [
        "# Foundation benchmark", "",
        f"Command: `python benchmarks/foundation.py --sizes {args.sizes} --queries "
        f"{args.queries}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d')}; load average "
        f"at the end {os.getloadavg()[0]:.1f} (other jobs on the machine inflate latencies)", "",
        "Read = `Memory.read(k=10)` end to end (query lookup, scope filter from SQLite, faiss, "
        "items from SQLite); scoped = a user holding 10 % of the items; numpy = brute-force "
        "`items @ q` + argpartition on the same vectors (no filter, no items).", "",
        "| items | index | write items/s | read p50 / p95 ms | scoped p50 / p95 ms | numpy "
        "p50 / p95 ms | read p50 ÷ numpy p50 | recall@10 vs exact | disk MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['kind']} | {r['write_items_per_s']:,.0f} | "
            f"{r['read_p50']:.2f} / {r['read_p95']:.2f} | {r['scoped_p50']:.2f} / "
            f"{r['scoped_p95']:.2f} | {r['numpy_p50']:.2f} / {r['numpy_p95']:.2f} | "
            f"{r['read_p50'] / r['numpy_p50']:.2f} | {r['recall10']:.3f} | {r['disk_mb']:.0f} |")
    if not args.no_minilm:
        lines += ["", f"Packaged all-MiniLM-L6-v2 embedding throughput (max length 256, batch "
                      f"64, CPU): {minilm_throughput():.0f} texts/s — the write cost per item "
                      "with the real model is dominated by this."]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
