"""Summaries, markdown tables and plots for a continual-learning comparison."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memkit._deps import require
from memkit.consolidate.runner import MethodRun

HALF = 0.5  # "cut forgetting by half or more"
MAX_NEW_LOSS = 0.10  # "at <= 10 % loss of new-task accuracy"


def _ms(xs: Sequence[float]) -> tuple[float, float]:
    vals = [x for x in xs if not math.isnan(x)]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def summarize(runs: Sequence[MethodRun]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per method: every metric as (mean, std) over seeds, in first-seen method order."""
    by_method: dict[str, list[MethodRun]] = {}
    for run in runs:
        by_method.setdefault(run.method, []).append(run)
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for name, group in by_method.items():
        metrics = [g.metrics() for g in group]
        out[name] = {k: _ms([m[k] for m in metrics]) for k in metrics[0]}
        out[name]["seeds"] = (float(len(group)), 0.0)
    return out


def mean_matrix(runs: Sequence[MethodRun], method: str) -> list[list[float]]:
    rs = [r.r for r in runs if r.method == method]
    n = len(rs[0])
    return [[statistics.fmean(r[i][j] for r in rs) for j in range(n)] for i in range(n)]


def verdicts(summary: dict[str, dict[str, tuple[float, float]]], baseline: str = "sequential"
             ) -> dict[str, dict[str, Any]]:
    """For each method: forgetting relative to the baseline and the loss of new-task accuracy."""
    if baseline not in summary:
        return {}
    base_bwt = summary[baseline]["bwt"][0]
    base_new = summary[baseline]["new_acc"][0]
    out = {}
    for name, s in summary.items():
        if name == baseline:
            continue
        forgetting_ratio = s["bwt"][0] / base_bwt if base_bwt < 0 else float("nan")
        new_loss = (base_new - s["new_acc"][0]) / base_new if base_new > 0 else float("nan")
        out[name] = {
            "forgetting_vs_baseline": forgetting_ratio,
            "new_acc_loss": new_loss,
            "passes": bool(forgetting_ratio <= HALF and new_loss <= MAX_NEW_LOSS),
        }
    return out


def _f(ms: tuple[float, float], digits: int = 3, signed: bool = False) -> str:
    m, s = ms
    if math.isnan(m):
        return "–"
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{fmt.format(m)} ± {s:.{digits}f}"


def markdown(runs: Sequence[MethodRun], config: dict[str, Any], command: str) -> str:
    """The full report: setup, main table, verdicts, updated facts, figure links."""
    summary = summarize(runs)
    verdict = verdicts(summary)
    seeds = sorted({r.seed for r in runs})
    n_rounds = len(runs[0].r) - 1 if runs else 0
    lines = [
        "# Parametric consolidation: forgetting on a synthetic fact stream",
        "",
        f"Command: `{command}`",
        "",
        f"Round 0 pre-trains the base model on task 0 + general text (full fine-tune); rounds "
        f"1–{n_rounds} consolidate each new task into a LoRA adapter with the method named. "
        f"Seeds: {seeds}. R[i][j] = accuracy on task j after round i (greedy answer = the "
        "current value). Tasks j count only facts never replaced later; updated facts are "
        "scored separately below.",
        "",
        "Metrics (mean ± std over seeds): **avg acc** = mean_j R[T][j]; **BWT** = "
        "mean_{j<T}(R[T][j] − R[j][j]) (negative = forgetting); **new acc** = mean_{i≥1} R[i][i]; "
        "**FWT** = mean_{j≥2}(R[j−1][j] − R[0][j]); **task-0 Δ** = R[T][0] − R[0][0] (the base "
        "model's own knowledge); **ppl** = held-out general-text perplexity after the last round "
        "(base in brackets); **train s** = wall seconds of all consolidation rounds.",
        "",
        "| method | avg acc | BWT | new acc | FWT | task-0 Δ | ppl (base) | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {_f(s['avg_acc'])} | {_f(s['bwt'], signed=True)} | "
            f"{_f(s['new_acc'])} | {_f(s['fwt'], signed=True)} | "
            f"{_f(s['base_retained'], signed=True)} | {s['ppl_final'][0]:.2f} "
            f"({s['ppl_base'][0]:.2f}) | {s['train_s'][0]:.1f} |"
        )
    if verdict:
        lines += [
            "",
            "## Against sequential LoRA",
            "",
            "Forgetting ratio = BWT(method) / BWT(sequential) (≤ 0.5 halves forgetting); new-acc "
            "loss = relative drop of new-task accuracy (≤ 10 % allowed).",
            "",
            "| method | forgetting ratio | new-acc loss | halves forgetting at ≤ 10 % loss |",
            "|---|---|---|---|",
        ]
        for name, v in verdict.items():
            lines.append(f"| {name} | {v['forgetting_vs_baseline']:.2f} | "
                         f"{100 * v['new_acc_loss']:+.1f} % | {'yes' if v['passes'] else 'no'} |")
    lines += [
        "",
        "## Updated facts",
        "",
        "Facts whose value a later round replaces. *At round*: right after the round that wrote "
        "the update; *end*: after the last round, over every update. Shares of questions "
        "answered with the new value / the stale value (the rest: something else).",
        "",
        "| method | new (at round) | stale (at round) | new (end) | stale (end) |",
        "|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(f"| {name} | {_f(s['update_new_at_round'], 2)} | "
                     f"{_f(s['update_stale_at_round'], 2)} | {_f(s['update_new'], 2)} | "
                     f"{_f(s['update_stale'], 2)} |")
    lines += [
        "",
        "## Knowledge-update protocol",
        "",
        "After the last round, scored separately (\"Towards Continual Knowledge Learning\"): "
        "**retained** = accuracy on facts consolidated in rounds 1..T−1 and never replaced "
        "(mean_{1≤j<T} R[T][j]); **updated** = share of updated facts answered with the new "
        "value (**stale**: with the replaced one); **new** = accuracy on round T's new facts "
        "R[T][T]; **FUAR** = forgotten / gained = max(0, −BWT) / mean(updated, new) (lower is "
        "better; 0 = nothing forgotten).",
        "",
        "| method | retained | updated | stale | new | FUAR |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(f"| {name} | {_f(s['ku_retained'], 2)} | {_f(s['ku_updated'], 2)} | "
                     f"{_f(s['ku_stale'], 2)} | {_f(s['ku_new'], 2)} | {_f(s['ku_fuar'], 2)} |")
    if any(r.curve for r in runs):
        lines += [
            "",
            "## Continual evaluation",
            "",
            f"Accuracy on every seen task every {config.get('eval_every')} optimiser steps "
            "during training (De Lange et al., \"Continual evaluation for lifelong learning\"); "
            "rounds ≥ 2, task 0 (base knowledge) excluded. **min-ACC** = mean over tasks j of the "
            "lowest accuracy on j at any point after round j (worst case on old rounds); "
            "**stability gap** = accuracy on old tasks at the end of round i−1 minus its lowest "
            "value during round i (the dip after a round starts), mean over rounds; **WC-ACC** "
            "= R[T][T]/T + (1 − 1/T)·min-ACC; **final old acc** = retained above, for contrast.",
            "",
            "| method | min-ACC | stability gap | WC-ACC | final old acc |",
            "|---|---|---|---|---|",
        ]
        for name, s in summary.items():
            lines.append(f"| {name} | {_f(s['min_acc'], 2)} | {_f(s['stability_gap'], 2)} | "
                         f"{_f(s['wc_acc'], 2)} | {_f(s['ku_retained'], 2)} |")
    lines += [
        "",
        "## Figures",
        "",
        "![R heat maps](heatmaps.png)",
        "",
        "![accuracy on seen tasks per round](curves.png)",
        "",
        *(["![continual evaluation: accuracy on old tasks during training](continual.png)", ""]
          if any(r.curve for r in runs) else []),
        "## Configuration",
        "",
        "```json",
        _json(config),
        "```",
        "",
    ]
    return "\n".join(lines)


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=1, sort_keys=True, default=str)


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "eval", "consolidation plots")
    matplotlib.use("Agg")  # files only; never open a window
    return require("matplotlib.pyplot", "eval", "consolidation plots")


def plot_heatmaps(runs: Sequence[MethodRun], path: Path) -> None:
    """One R heat map per method (mean over seeds), annotated with the values."""
    plt = _pyplot()
    methods = list(dict.fromkeys(r.method for r in runs))
    cols = min(4, len(methods))
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    image = None
    for k, (ax, name) in enumerate(zip(axes.flat, methods, strict=False)):
        r = mean_matrix(runs, name)
        image = ax.imshow(r, vmin=0.0, vmax=1.0, cmap="viridis")
        n = len(r)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{r[i][j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if r[i][j] < 0.6 else "black")
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xlabel("task j", fontsize=8)
        if k % cols == 0:
            ax.set_ylabel("after round i", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(methods):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="accuracy")
    fig.suptitle("R[i][j]: accuracy on task j after round i (mean over seeds)", fontsize=11)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def plot_curves(runs: Sequence[MethodRun], path: Path) -> None:
    """Mean accuracy over the tasks seen so far, after each round, per method."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name in dict.fromkeys(r.method for r in runs):
        r = mean_matrix(runs, name)
        seen = [statistics.fmean(r[i][: i + 1]) for i in range(len(r))]
        ax1.plot(range(len(r)), seen, marker="o", label=name)
        group = [x for x in runs if x.method == name]
        ppl = [statistics.fmean(g.perplexity[i] for g in group) for i in range(len(r))]
        ax2.plot(range(len(r)), ppl, marker="o", label=name)
    n_rows = len(runs[0].r) if runs else 0
    for ax in (ax1, ax2):
        ax.set_xticks(range(n_rows))
    ax1.set_xlabel("after round i")
    ax1.set_ylabel("mean accuracy on tasks 0..i")
    ax1.set_ylim(0, 1.02)
    ax1.grid(alpha=0.3)
    ax2.set_xlabel("after round i")
    ax2.set_ylabel("held-out general perplexity")
    ax2.set_yscale("log")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_continual(runs: Sequence[MethodRun], path: Path, seed: int | None = None) -> None:
    """Accuracy on the old consolidated tasks (1..i-1) during each round i, per method (one
    seed: the first), with round boundaries: the stability gap is the dip after each line."""
    plt = _pyplot()
    picked = [r for r in runs if r.curve and (seed is None or r.seed == seed)]
    if seed is None and picked:
        first = picked[0].seed
        picked = [r for r in picked if r.seed == first]
    if not picked:
        return
    fig, ax = plt.subplots(figsize=(10, 4))
    bounds: set[int] = set()
    colors = plt.get_cmap("tab20").colors
    for k, run in enumerate(picked):
        xs, ys = [], []
        for p in run.curve:
            i = p["round"]
            if i >= 2:
                xs.append(p["step"])
                ys.append(statistics.fmean(p["acc"][1:i]))
        ax.plot(xs, ys, label=run.method, linewidth=1.3, color=colors[(2 * k) % 20 + k // 10],
                linestyle=("-", "--", ":")[k % 3])
        rounds: dict[int, int] = {}
        for p in run.curve:
            rounds.setdefault(p["round"], p["step"])
        bounds.update(v for k, v in rounds.items() if k >= 2)
    for b in sorted(bounds):
        ax.axvline(b, color="grey", alpha=0.15, linewidth=0.8)
    ax.set_xlabel("optimiser step (all rounds)")
    ax.set_ylabel("mean accuracy on old tasks 1..i-1")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="lower left")
    ax.set_title(f"continual evaluation (seed {picked[0].seed})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
