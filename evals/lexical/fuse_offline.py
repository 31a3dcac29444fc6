"""Fuse two finished dense runs offline (their top-10 lists), before building an ensemble.

How the ensemble embedder's weighting was chosen: two ``memkit eval`` runs of one data set
with different embedders, fused per question by (a) the plain mean of the two cosines,
(b) the mean of cosines each divided by its model's random-pair spread (what
:class:`memkit.embed.ensemble.EnsembleEmbedder` does, exactly, over all passages), (c) RRF
(C = 60). Only the top-10 of each run is known here, so a passage missing from one list gets
that list's lowest score (or rank 100): an estimate, not the ensemble's figure.

    python evals/lexical/fuse_offline.py /tmp/e5b/results/musique-dense \\
        /tmp/e5b/results/musique-dense-e5
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from memkit.embed.base import similarity_spread  # noqa: E402
from memkit.eval.metrics import recall_at_k  # noqa: E402

Ranked = dict[tuple[str, ...], float]


def predictions(run: Path) -> tuple[str, dict[str, dict]]:
    metrics = json.loads((run / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    return metrics["embedder"], {r["qid"]: r for r in rows}


def fused(sa: Ranked, sb: Ranked, how: str, wa: float, wb: float) -> list[tuple[str, ...]]:
    keys = list(dict.fromkeys([*sa, *sb]))  # a fixed order, so ties break the same every run
    if how == "rrf":
        ra = {k: i for i, k in enumerate(sa)}
        rb = {k: i for i, k in enumerate(sb)}
        return sorted(keys, key=lambda k: -(1 / (61 + ra.get(k, 100)) + 1 / (61 + rb.get(k, 100))))
    ma, mb = min(sa.values()), min(sb.values())
    return sorted(keys, key=lambda k: -(wa * sa.get(k, ma) + wb * sb.get(k, mb)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    args = ap.parse_args()
    (ea, a), (eb, b) = predictions(args.run_a), predictions(args.run_b)
    from memkit.embed import load_embedder

    spread = [similarity_spread(load_embedder(e).name) for e in (ea, eb)]
    modes = {ea: None, eb: None, "plain mean": (1.0, 1.0),
             "spread-weighted mean": (1 / spread[0], 1 / spread[1]), "rrf": (1.0, 1.0)}
    for name, w in modes.items():
        r2, r5 = [], []
        for qid, row_a in a.items():
            gold = row_a["gold_evidence"]
            if not gold or qid not in b:
                continue
            sa = {tuple(h["keys"]): h["score"] for h in row_a["retrieved"]}
            sb = {tuple(h["keys"]): h["score"] for h in b[qid]["retrieved"]}
            if w is None:
                ranked = list(sa if name == ea else sb)
            else:
                ranked = fused(sa, sb, "rrf" if name == "rrf" else "mean", *w)
            r2.append(recall_at_k(ranked, gold, 2) or 0.0)  # gold is not empty here
            r5.append(recall_at_k(ranked, gold, 5) or 0.0)
        print(f"{name:22s} R@2 {100 * sum(r2) / len(r2):5.1f}  R@5 {100 * sum(r5) / len(r5):5.1f}"
              f"  ({len(r5)} questions)")


if __name__ == "__main__":
    main()
