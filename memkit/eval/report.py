"""Run reports: metrics aggregation, ``report.md``, PNG plots, environment, and ``compare``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from memkit.errors import NotFound
from memkit.eval.datasets import Dataset
from memkit.eval.metrics import abstention_scores, mean, percentile

_PACKAGES = ("memkit", "numpy", "faiss-cpu", "torch", "sentence-transformers", "transformers",
             "llama_cpp_python", "matplotlib")


def environment() -> dict[str, Any]:
    """Python, package versions, CPU, and the git commit of the checkout (if any)."""
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=5,
                                check=False).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "packages": versions, "git_commit": commit}


def _agg(rows: Sequence[dict[str, Any]], ks: Sequence[int]) -> dict[str, Any]:
    with_gold = [r for r in rows if r["gold_evidence"]]
    out: dict[str, Any] = {
        "questions": len(rows), "with_evidence": len(with_gold),
        "recall": {str(k): mean(r["recall"][str(k)] for r in with_gold) for k in ks},
        "ndcg": {str(k): mean(r["ndcg"][str(k)] for r in with_gold) for k in ks},
    }
    answered = [r for r in rows if "prediction" in r]
    if answered:
        scored = [r for r in answered if not r["expected_abstain"]]
        out["em"] = mean(r["em"] for r in scored)
        out["f1"] = mean(r["f1"] for r in scored)
        out["abstention"] = abstention_scores([bool(r["abstained"]) for r in answered],
                                              [bool(r["expected_abstain"]) for r in answered])
    return out


def _category_order(dataset: Dataset, cats: dict[str, Any]) -> list[str]:
    """The data set's own category order (e.g. LoCoMo's 1-5) where it has one, else sorted."""
    preferred = [str(c) for c in dataset.info.get("category_order", [])]
    return [c for c in preferred if c in cats] + sorted(c for c in cats if c not in preferred)


def summarise(rows: Sequence[dict[str, Any]], dataset: Dataset, config: Any,
              builds: dict[str, Any], timing: dict[str, Any]) -> dict[str, Any]:
    """metrics.json: per backend, overall and per category, plus cost and build figures."""
    order = {q.id: i for i, q in enumerate(dataset.questions)}
    per_backend: dict[str, Any] = {}
    for spec in config.backends:
        mine = sorted((r for r in rows if r["backend"] == spec and r["qid"] in order),
                      key=lambda r: order[r["qid"]])
        latencies = [float(r["read_ms"]) for r in mine]
        n = max(len(mine), 1)
        cats: dict[str, list[dict[str, Any]]] = {}
        for r in mine:
            cats.setdefault(str(r["category"]), []).append(r)
        build = builds.get(spec, {})
        per_backend[spec] = {
            **_agg(mine, config.ks),
            "complete": len(mine) == len(dataset.questions),
            "categories": {c: _agg(cats[c], config.ks) for c in _category_order(dataset, cats)}
            if len(cats) > 1 else {},
            "cost": {
                "read_ms_p50": percentile(latencies, 50),
                "read_ms_p95": percentile(latencies, 95),
                "llm_calls_per_q": sum(r["llm_calls"] for r in mine) / n,
                "prompt_tokens_per_q": sum(r["prompt_tokens"] for r in mine) / n,
                "completion_tokens_per_q": sum(r["completion_tokens"] for r in mine) / n,
                "context_tokens_per_q": sum(r["context_tokens"] for r in mine) / n,
                "index_build_s": build.get("build_s"),
                "index_build_embed_s": build.get("build_embed_s"),
                "index_bytes": build.get("bytes"),
                "index_items": build.get("items"),
                "index_reused": build.get("reused"),
            },
            "timing": timing.get(spec),
        }
    return {"dataset": dataset.summary(), "ks": list(config.ks), "reader_k": config.reader_k,
            "llm": config.llm, "embedder": config.embedder, "backends": per_backend}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if x is None else fmt.format(x)


def metrics_table(metrics: dict[str, Any], label: str | None = None) -> list[list[str]]:
    """Rows of the main table: one per backend."""
    ks = metrics["ks"]
    rows = []
    for spec, m in metrics["backends"].items():
        row = [f"{label} / {spec}" if label else spec, str(m["questions"])]
        row += [_pct(m["recall"][str(k)]) for k in ks]
        row += [_pct(m["ndcg"][str(k)]) for k in ks[-1:]]
        row += [_pct(m.get("em")), _pct(m.get("f1"))]
        row += [_num(m["cost"]["read_ms_p50"]), _num(m["cost"]["read_ms_p95"])]
        rows.append(row)
    return rows


def _md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _header(ks: Sequence[int]) -> list[str]:
    return (["backend", "n"] + [f"R@{k}" for k in ks] + [f"NDCG@{ks[-1]}", "EM", "F1",
                                                        "read p50 ms", "read p95 ms"])


def write_report(run_dir: Path, metrics: dict[str, Any], config: Any, dataset: Dataset) -> None:
    """report.md plus PNG plots (when matplotlib is installed: the [eval] extra)."""
    ks = metrics["ks"]
    ds = metrics["dataset"]
    parts = [f"# {run_dir.name}", "",
             f"Data set **{ds['name']}** ({ds['format']}): {ds['questions']} questions, "
             f"{ds['corpus_items']} memory items (corpus hash `{ds['corpus_hash']}`). "
             f"Embedder `{config.embedder}`; reader LLM: {config.llm or 'none (retrieval only)'}.",
             "", "Recall and NDCG in % over questions with gold evidence; EM/F1 in % over "
             "answerable questions.", "",
             _md(_header(ks), metrics_table(metrics)), ""]
    for spec, m in metrics["backends"].items():
        if m["categories"]:
            parts += [f"## Per category ({spec})", ""]
            header = ["category", "n"] + [f"R@{k}" for k in ks] + ["EM", "F1"]
            rows = [[c, str(cm["questions"])] + [_pct(cm["recall"][str(k)]) for k in ks]
                    + [_pct(cm.get("em")), _pct(cm.get("f1"))]
                    for c, cm in m["categories"].items()]
            parts += [_md(header, rows), ""]
        if "abstention" in m:
            a = m["abstention"]
            parts += [f"Abstention ({spec}): precision {_pct(a['precision'])}, recall "
                      f"{_pct(a['recall'])}.", ""]
        c = m["cost"]
        parts += [f"## Cost ({spec})", "",
                  f"- index: {c['index_items']} items, built in {_num(c['index_build_s'])} s "
                  f"(embedding {_num(c['index_build_embed_s'])} s), "
                  f"{_num((c['index_bytes'] or 0) / 1e6, '{:.2f}')} MB on disk"
                  f"{' (reused from cache)' if c['index_reused'] else ''}",
                  f"- per question: {c['llm_calls_per_q']:.2f} LLM calls, "
                  f"{c['prompt_tokens_per_q']:.0f} prompt + {c['completion_tokens_per_q']:.0f} "
                  f"completion tokens, {c['context_tokens_per_q']:.0f} context tokens to the "
                  "reader"]
        t = m.get("timing")
        if t and t["questions"]:
            parts.append(f"- eval loop ({t['sessions']} session(s)): {t['questions']} questions "
                         f"in {t['wall_s']:.1f} s; "
                         f"reads {t['read_s']:.1f} s (query embedding {t['query_embed_s']:.1f} s)"
                         f", reader {t['reader_s']:.1f} s, runner overhead "
                         f"{t['overhead_s']:.2f} s ({t['overhead_ms_per_question']:.2f} ms/q)")
        parts.append("")
    parts += ["Files: `config.json` (exact config), `environment.json`, `metrics.json`, "
              "`predictions.jsonl` (per question).", ""]
    pngs = write_plots(run_dir, metrics) if getattr(config, "plots", True) else []
    parts += [f"![{p.stem}]({p.name})" for p in pngs]
    (run_dir / "report.md").write_text("\n".join(parts) + "\n", encoding="utf-8")


def write_plots(run_dir: Path, metrics: dict[str, Any]) -> list[Path]:
    """recall_at_k.png (curves per backend) and categories.png (per-category bars)."""
    from memkit._deps import require

    mpl = require("matplotlib", "eval", "evaluation plots")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    ks = metrics["ks"]
    out = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for spec, m in metrics["backends"].items():
        ax.plot(ks, [100 * (m["recall"][str(k)] or 0) for k in ks], marker="o", label=spec)
    ax.set_xlabel("k")
    ax.set_ylabel("Recall@k (%)")
    ax.set_ylim(0, 100)
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_title(metrics["dataset"]["name"])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "recall_at_k.png", dpi=100)
    plt.close(fig)
    out.append(run_dir / "recall_at_k.png")
    specs = [s for s, m in metrics["backends"].items() if m["categories"]]
    if specs:
        k = 5 if 5 in ks else ks[len(ks) // 2]
        cats = list(dict.fromkeys(c for s in specs for c in metrics["backends"][s]["categories"]))
        fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(cats)), 3.5))
        width = 0.8 / len(specs)
        for i, spec in enumerate(specs):
            vals = [100 * (metrics["backends"][spec]["categories"].get(c, {}).get("recall", {})
                           .get(str(k)) or 0) for c in cats]
            ax.bar([j + i * width for j in range(len(cats))], vals, width, label=spec)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], cats, rotation=20)
        ax.set_ylabel(f"Recall@{k} (%)")
        ax.set_title(f"{metrics['dataset']['name']}: per category")
        ax.legend()
        fig.tight_layout()
        fig.savefig(run_dir / "categories.png", dpi=100)
        plt.close(fig)
        out.append(run_dir / "categories.png")
    return out


def find_run(ref: str, out: str | Path = "evals/results") -> Path:
    """A run folder from a path or a run name under ``out``."""
    for candidate in (Path(ref), Path(out) / ref):
        if (candidate / "metrics.json").exists():
            return candidate
    raise NotFound(f"no run {ref!r} (looked for {ref}/metrics.json and {out}/{ref}/metrics.json)")


def compare_runs(refs: Sequence[str], out: str | Path = "evals/results") -> str:
    """A markdown table of several runs side by side (the k values they share)."""
    loaded = []
    for ref in refs:
        path = find_run(ref, out)
        loaded.append((path.name, json.loads((path / "metrics.json").read_text("utf-8"))))
    shared = sorted(set.intersection(*(set(m["ks"]) for _, m in loaded)))
    if not shared:
        shared = sorted({k for _, m in loaded for k in m["ks"]})
    rows = []
    for name, m in loaded:
        rows += metrics_table({**m, "ks": [k for k in shared if k in m["ks"]] or m["ks"]},
                              label=name)
    header = ["run / backend", "n"] + [f"R@{k}" for k in shared] + \
        [f"NDCG@{shared[-1]}", "EM", "F1", "read p50 ms", "read p95 ms"]
    datasets = sorted({m["dataset"]["name"] for _, m in loaded})
    note = "" if len(datasets) == 1 else f"\n(note: different data sets: {datasets})"
    return _md(header, rows) + note
