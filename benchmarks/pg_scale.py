"""Scale figures for the README's "Scaling" section, on synthetic data (seeded):

1. dense read latency at N items (default 100,000): pgvector HNSW in a Postgres memory vs
   faiss in an SQLite memory, the same vectors (hash embedder, 384 dimensions), the same
   queries, through ``Memory.read``; unscoped and with a scope holding 1 % of the items;
2. RAM per passage of what each process keeps in memory: the faiss index (measured on the
   same N vectors) and the HippoRAG graph (built from synthetic entity passages with the
   rule extractor), both extrapolated linearly to a million passages.

    python benchmarks/pg_scale.py                     # N = 100,000 (about 10 minutes here)
    python benchmarks/pg_scale.py --items 20000 --graph-passages 5000

Prints a markdown table and writes it to benchmarks/results/pg_scale.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORDS = ("harbour invoice river tokyo budget laptop violin glacier orchard museum tariff "
         "rocket meadow quartz lantern saddle falcon ledger canyon pepper").split()


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"record {i}: " + " ".join(rng.choice(WORDS) for _ in range(12)) for i in range(n)]


def timed_reads(mem: Any, queries: list[str], scope: Any) -> dict[str, float]:
    for q in queries[:5]:  # warm up
        mem.read(q, k=10, scope=scope)
    lat, got = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = mem.read(q, k=10, scope=scope).hits
        lat.append(time.perf_counter() - t0)
        got.append(len(hits))
    a = np.asarray(lat) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "mean_hits": float(np.mean(got))}


def build(target: Any, items: list[str], users: list[str], options: dict[str, Any],
          **kw: Any) -> Any:
    from memkit import Memory
    from memkit.embed import HashEmbedder

    mem = Memory.open(target, embedder=HashEmbedder(384), backend_options=options, **kw)
    t0 = time.perf_counter()
    for start in range(0, len(items), 5000):
        chunk = [{"text": t, "scope": {"user": u}} for t, u in
                 zip(items[start:start + 5000], users[start:start + 5000], strict=True)]
        mem.write_many(chunk, batch_size=1000)
        print(f"  {start + len(chunk)} items, {time.perf_counter() - t0:.0f} s", flush=True)
    return mem, time.perf_counter() - t0


CHILD = r"""
import json, sys
from pathlib import Path
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
from memkit import Memory
from memkit.embed import HashEmbedder
backend = sys.argv[2]
r0 = rss()
mem = Memory.open(sys.argv[1], embedder=HashEmbedder(384))
mem.read("Where does Person1 live?", k=5, backend=backend)  # indexes loaded and built
r1 = rss()
stats = mem.stats()["backends"][backend]
print(json.dumps({"rss_mb": r1 - r0, "stats": stats}, default=str))
"""


def process_ram(directory: Path, backend: str) -> dict[str, Any]:
    """RSS growth of a fresh process that opens the memory and reads it once (what a
    server worker holds for that backend), measured in a subprocess so that nothing freed
    by building it is counted."""
    import json
    import subprocess

    out = subprocess.run([sys.executable, "-c", CHILD, str(directory), backend],
                         capture_output=True, text=True, check=True, cwd=REPO)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def empty_memory(backend: str) -> Path:
    """A memory with one item: the baseline a process pays for the code, not the data."""
    from memkit import Memory
    from memkit.embed import HashEmbedder

    d = Path(tempfile.mkdtemp(prefix="memkit-empty-"))
    opts = {"hipporag": {"extractor": "rules"}} if backend == "hipporag" else {}
    with Memory.open(d, backends=[backend], embedder=HashEmbedder(384),
                     backend_options=opts) as mem:
        mem.write("Person0 lives in Town0. Person1 works for Person2 Company.")
    return d


def graph_memory(n: int) -> Path:
    """A HippoRAG memory of ``n`` synthetic entity passages (rule extractor)."""
    from memkit import Memory
    from memkit.embed import HashEmbedder

    rng = random.Random(7)
    people = [f"Person{i}" for i in range(n // 2)]
    places = [f"Town{i}" for i in range(n // 4)]
    passages = [f"{rng.choice(people)} lives in {rng.choice(places)}. "
                f"{rng.choice(people)} works for {rng.choice(people)} Company." for _ in range(n)]
    d = Path(tempfile.mkdtemp(prefix="memkit-graph-"))
    opts = {"hipporag": {"extractor": "rules"}}
    with Memory.open(d, backends=["hipporag"], embedder=HashEmbedder(384),
                     backend_options=opts) as mem:
        mem.write_many(passages, batch_size=1000)
    return d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--graph-passages", type=int, default=20_000)
    ap.add_argument("--report", default=str(REPO / "benchmarks" / "results" / "pg_scale.md"))
    args = ap.parse_args(argv)
    from memkit.store.local_pg import start_local_postgres

    server, dsn = start_local_postgres(schema="scale")
    items = texts(args.items, 1)
    users = [f"u{i % 100}" for i in range(args.items)]  # each user holds 1 % of the items
    queries = texts(args.queries, 2)
    rows: list[tuple[str, str, dict[str, float]]] = []
    build_s = {}
    try:
        print("pgvector (Postgres memory) ...", flush=True)
        pg, build_s["pgvector"] = build(dsn, items, users, {"dense": {"index": "pgvector"}})
        print("faiss (SQLite memory) ...", flush=True)
        faiss_dir = Path(tempfile.mkdtemp(prefix="memkit-faiss-"))
        fa, build_s["faiss"] = build(faiss_dir, items, users, {})
        index = fa.indexer.backend("dense").index  # type: ignore[attr-defined]
        for label, scope in (("all items", None), ("a 1 % scope", {"user": "u7"})):
            rows.append(("pgvector HNSW", label, timed_reads(pg, queries, scope)))
            rows.append((f"faiss {index.kind}", label, timed_reads(fa, queries, scope)))
        pg.close()
        fa.close()
    finally:
        server.cleanup()
    faiss_mb = float(process_ram(faiss_dir, "dense")["rss_mb"]) - float(
        process_ram(empty_memory("dense"), "dense")["rss_mb"])
    g = process_ram(graph_memory(args.graph_passages), "hipporag")
    g0 = process_ram(empty_memory("hipporag"), "hipporag")
    graph = {"passages": args.graph_passages, "rss_mb": float(g["rss_mb"]) - float(g0["rss_mb"]),
             "phrases": float(g["stats"].get("phrases", 0)),
             "facts": float(g["stats"].get("facts", 0))}
    lines = [f"# Scale figures (synthetic, seeded)\n\nCommand: `python benchmarks/pg_scale.py "
             f"{' '.join(argv or sys.argv[1:])}`\n",
             f"Dense read latency through `Memory.read`, k=10, {args.items:,} items, hash "
             f"embedder (384 d), {args.queries} queries:\n",
             "| index | scope | p50 ms | p95 ms | hits per read |", "|---|---|---|---|---|"]
    for name, label, r in rows:
        lines.append(f"| {name} | {label} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{r['mean_hits']:.1f} |")
    per_m = 1_000_000 / args.items
    lines += ["", f"Build (write_many, 5,000 per call): pgvector {build_s['pgvector']:.0f} s, "
              f"faiss {build_s['faiss']:.0f} s.", "",
              "Memory per process (RSS growth of a fresh process opening the memory and "
              "reading it once, minus the same for a one-item memory; extrapolated "
              "linearly):", "",
              "| structure | measured on | RSS MB | per million passages |", "|---|---|---|---|",
              f"| faiss dense index (384 d) | {args.items:,} vectors | {faiss_mb:.0f} | "
              f"{faiss_mb * per_m / 1024:.1f} GB |",
              f"| HippoRAG graph (arrays + phrase/fact vectors) | {graph['passages']:,} passages"
              f" ({graph['phrases']:.0f} phrases, {graph['facts']:.0f} facts) | "
              f"{graph['rss_mb']:.0f} | "
              f"{graph['rss_mb'] * 1_000_000 / graph['passages'] / 1024:.1f} GB |",
              "", "A pgvector memory keeps no dense index in the process: the vectors and the "
              "HNSW graph are the database's."]
    text = "\n".join(lines) + "\n"
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
