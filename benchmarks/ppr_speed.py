"""PPR speed: memkit (scipy power iteration, and local push) vs networkx vs igraph PRPACK.

Synthetic undirected graphs with n nodes and 4n random weighted edges (average degree ≈ 8),
5 random seed nodes, damping 0.5, all engines in the same run on the same graph. memkit's
operator is built once per graph (as the backend does, cached per graph generation), so the
per-query time is the iteration; the one-off build time is reported separately. networkx is
timed up to 100k nodes (it takes minutes beyond). Errors are L1 against memkit float64 at
tol 1e-10.

    python benchmarks/ppr_speed.py                 # 10k, 100k, 1M
    python benchmarks/ppr_speed.py --sizes 10000   # quick
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memkit.backends.hipporag.ppr import PPROperator  # noqa: E402
from memkit.backends.hipporag.push import LocalPPR  # noqa: E402


def random_graph(n: int, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = 4 * n
    a = rng.integers(0, n, m)
    b = rng.integers(0, n, m)
    keep = a != b
    a, b = a[keep], b[keep]
    w = rng.uniform(0.1, 1.0, len(a))
    A = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([a, b]),
                                                np.concatenate([b, a]))), shape=(n, n)).tocsr()
    A.sum_duplicates()
    return A


def timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    out = fn()  # warm-up (and the result)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times), out


def bench_size(n: int, repeat: int) -> tuple:  # type: ignore[type-arg]
    """One graph size: every engine on the same graph and seeds."""
    import igraph as ig
    import networkx as nx

    A = random_graph(n)
    rng = np.random.default_rng(1)
    seeds = rng.choice(n, 5, replace=False)
    weights = rng.uniform(0.2, 1.0, 5)
    reset = np.zeros(n)
    reset[seeds] = weights
    rep = repeat if n < 1_000_000 else 3
    t = time.perf_counter()
    op64 = PPROperator(A)
    build_ms = 1000 * (time.perf_counter() - t)
    op32 = PPROperator(A, dtype=np.float32)
    exact = op64.run(reset, 0.5, tol=1e-10).scores
    ms64, r64 = timed(lambda: op64.run(reset, 0.5, tol=1e-7), rep)
    ms32, r32 = timed(lambda: op32.run(reset, 0.5, tol=1e-7), rep)
    # igraph PRPACK on the same weighted graph
    coo = sp.triu(A, k=1).tocoo()
    g = ig.Graph(n=n, edges=np.column_stack([coo.row, coo.col]).tolist(), directed=False)
    g.es["weight"] = coo.data.tolist()
    reset_list = reset.tolist()
    ms_ig, r_ig = timed(lambda: g.personalized_pagerank(
        directed=False, damping=0.5, reset=reset_list, weights="weight",
        implementation="prpack"), rep)
    err_ig = float(np.abs(np.asarray(r_ig) - exact).sum())
    # networkx (reference implementation; slow)
    ms_nx, err_nx = float("nan"), float("nan")
    if n <= 100_000:
        G = nx.from_scipy_sparse_array(A)
        pers = {int(s): float(w) for s, w in zip(seeds, weights, strict=True)}
        t = time.perf_counter()
        r_nx = nx.pagerank(G, alpha=0.5, personalization=pers, tol=1e-7 / n,
                           weight="weight")
        ms_nx = 1000 * (time.perf_counter() - t)
        err_nx = float(np.abs(np.array([r_nx[i] for i in range(n)]) - exact).sum())
    # local push
    lp = LocalPPR(A)
    seed_map = {int(s): float(w) for s, w in zip(seeds, weights, strict=True)}
    push = {}
    for eps in (1e-4, 1e-5):
        ms_p, (p, res) = timed(lambda eps=eps: lp.run(seed_map, 0.5, eps), rep)
        top_exact = set(np.argsort(-exact)[:10].tolist())
        top_push = set(np.argsort(-p)[:10].tolist())
        push[eps] = (ms_p, float(np.abs(p - exact).sum()), float(res.sum()),
                     len(top_exact & top_push))
    row = (n, A.nnz // 2, build_ms, ms64, r64.iterations, float(np.abs(
        r64.scores - exact).sum()), ms32, float(np.abs(r32.scores - exact).sum()),
        ms_ig, err_ig, ms_nx, err_nx, push)
    print(f"n={n}: memkit f64 {ms64:.1f} ms ({r64.iterations} it), f32 {ms32:.1f} ms, "
          f"igraph {ms_ig:.1f} ms, networkx {ms_nx:.1f} ms, push {push[1e-4][0]:.1f} / "
          f"{push[1e-5][0]:.1f} ms", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    rows = [bench_size(n, args.repeat) for n in (int(x) for x in args.sizes.split(","))]
    print("\n| nodes | edges | memkit f64 ms (iters) | memkit f32 ms | igraph PRPACK ms | "
          "networkx ms | igraph / memkit f64 | igraph / memkit f32 | "
          "L1 err f64 / f32 / igraph / nx | operator build ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (n, e, b, m64, it, e64, m32, e32, mig, eig, mnx, enx, _) in rows:
        print(f"| {n:,} | {e:,} | {m64:.1f} ({it}) | {m32:.1f} | {mig:.1f} | {mnx:.0f} | "
              f"{mig / m64:.2f}x | {mig / m32:.2f}x | {e64:.1e} / {e32:.1e} / {eig:.1e} / "
              f"{enx:.1e} | {b:.0f} |")
    print("\nlocal push PPR (same graphs and seeds)")
    print("| nodes | eps | ms/query | L1 error vs exact | residual bound | top-10 overlap |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        for eps, (ms, err, bound, overlap) in row[-1].items():
            print(f"| {row[0]:,} | {eps:g} | {ms:.1f} | {err:.2e} | {bound:.2e} | "
                  f"{overlap}/10 |")
    print("\ncommand: python benchmarks/ppr_speed.py --sizes " + args.sizes)


if __name__ == "__main__":
    main()
