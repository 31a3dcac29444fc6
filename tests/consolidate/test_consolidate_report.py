"""Summaries, verdicts and figures of a comparison, on hand-made accuracy matrices."""

from __future__ import annotations

from pathlib import Path

import pytest

from memkit.consolidate.report import markdown, plot_curves, plot_heatmaps, summarize, verdicts
from memkit.consolidate.runner import MethodRun


def run(method: str, seed: int, r: list[list[float]]) -> MethodRun:
    return MethodRun(method, seed, r, [2.0, 3.0, 4.0], [{"new": 1.0, "stale": 0.0}],
                     {"new": 0.5, "stale": 0.25}, [1.0, 2.0], {})


SEQ = [[1.0, 0.0, 0.0], [0.2, 1.0, 0.0], [0.2, 0.2, 1.0]]  # BWT -0.8, new acc 1.0
REPLAY = [[1.0, 0.0, 0.0], [0.7, 0.9, 0.0], [0.7, 0.7, 1.0]]  # BWT -0.25, new acc 0.95
WEAK = [[1.0, 0.0, 0.0], [0.6, 0.5, 0.0], [0.6, 0.5, 0.5]]  # BWT -0.2, new acc 0.5


def test_summary_and_verdicts() -> None:
    runs = [run("sequential", 0, SEQ), run("sequential", 1, SEQ), run("replay", 0, REPLAY),
            run("weak", 0, WEAK)]
    s = summarize(runs)
    assert list(s) == ["sequential", "replay", "weak"]
    assert s["sequential"]["bwt"] == pytest.approx((-0.8, 0.0))
    assert s["sequential"]["seeds"][0] == 2
    assert s["replay"]["new_acc"][0] == pytest.approx(0.95)
    assert s["replay"]["train_s"][0] == pytest.approx(3.0)
    v = verdicts(s)
    assert v["replay"]["forgetting_vs_baseline"] == pytest.approx(0.25 / 0.8)
    assert v["replay"]["new_acc_loss"] == pytest.approx(0.05)
    assert v["replay"]["passes"] is True
    assert v["weak"]["passes"] is False  # halves forgetting but loses half the new-task acc
    text = markdown(runs, {"seeds": [0, 1]}, "python benchmarks/consolidation.py")
    assert "| replay | 0.31 | +5.0 % | yes |" in text
    assert "| weak | 0.25 | +50.0 % | no |" in text


def test_figures_are_png(tmp_path: Path) -> None:
    runs = [run("sequential", 0, SEQ), run("replay", 0, REPLAY)]
    plot_heatmaps(runs, tmp_path / "h.png")
    plot_curves(runs, tmp_path / "c.png")
    for name in ("h.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
