"""The synthetic fact stream and the continual-learning runner on a tiny configuration."""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path

import pytest
from consolidate_data import TINY

from memkit.consolidate import formulas as F
from memkit.consolidate.runner import MethodRun, RunnerConfig, run_comparison
from memkit.consolidate.synthetic import make_fact_stream
from memkit.consolidate.trainer import TrainConfig


def test_stream_updates_replace_earlier_facts() -> None:
    s = make_fact_stream(n_rounds=4, facts_per_round=10, updates_per_round=3, seed=5)
    assert [len(r) for r in s.rounds] == [10, 10, 13, 13, 13]
    assert not s.updates(0) and not s.updates(1)
    earlier: dict[str, str] = {}
    for j, facts in enumerate(s.rounds):
        for f in facts:
            if f.previous is not None:
                assert earlier[f.question] == f.previous != f.value
            earlier[f.question] = f.value
        task = s.task(j)
        assert all(earlier_value_is_final(s, q, a) for q, a in task)
    updated = {f.question for j in range(5) for f in s.updates(j)}
    assert len(updated) == 9  # each fact updated at most once
    ids = [it.id for j in range(5) for it in s.items(j)]
    assert len(ids) == len(set(ids))
    assert s.items(2)[-1].metadata["answer"] == s.rounds[2][-1].value
    assert len(s.general_train) == 1200 and len(s.general_heldout) == 200


def earlier_value_is_final(s, question: str, answer: str) -> bool:  # type: ignore[no-untyped-def]
    final = {f.question: f.value for r in s.rounds for f in r}
    return final[question] == answer


def test_stream_is_seeded() -> None:
    a = make_fact_stream(n_rounds=2, facts_per_round=5, seed=1)
    b = make_fact_stream(n_rounds=2, facts_per_round=5, seed=1)
    assert a.rounds == b.rounds and a.general_train == b.general_train


@pytest.mark.filterwarnings("ignore::UserWarning:tqdm")
def test_runner_tiny_configuration(tmp_path: Path) -> None:
    cfg = RunnerConfig(
        methods=["sequential", "replay"], seeds=[0], n_rounds=2, facts_per_round=6,
        updates_per_round=2, n_general=40, heldout_general=10, tiny=TINY,
        pretrain=TrainConfig(epochs=2, batch_size=16, lr=3e-3, max_len=32),
        train=TrainConfig(epochs=2, batch_size=8, lr=5e-3, max_len=32),
        fact_repeats_in_pretrain=2,
    )
    runs = run_comparison(cfg, cache=tmp_path, progress=False)
    assert [(r.method, r.seed) for r in runs] == [("sequential", 0), ("replay", 0)]
    for run in runs:
        assert len(run.r) == 3 and all(len(row) == 3 for row in run.r)
        assert all(0.0 <= x <= 1.0 for row in run.r for x in row)
        assert len(run.perplexity) == 3 and all(p > 1.0 for p in run.perplexity)
        assert len(run.train_seconds) == 2 and len(run.updates) == 1
        assert run.updates[0]["n"] == 2
        m = run.metrics()
        assert m["bwt"] == pytest.approx(F.backward_transfer(run.r))
        assert m["avg_acc"] == pytest.approx(sum(run.r[-1]) / 3)
    assert runs[0].r[0] == runs[1].r[0]  # both start from the same pre-trained base
    saved = json.loads((tmp_path / "replay-seed0.json").read_text())
    assert MethodRun.from_dict(saved).r == runs[1].r
    again = run_comparison(cfg, cache=tmp_path, progress=False)  # resumes from the cache
    assert [r.r for r in again] == [r.r for r in runs]


def test_continual_metrics_hand_values() -> None:
    from memkit.consolidate.runner import continual_metrics

    # rounds 0..3; tasks 1, 2 are old at the end
    r = [[1.0, 0.0, 0.0, 0.0],
         [1.0, 0.9, 0.0, 0.0],
         [1.0, 0.7, 0.8, 0.0],
         [1.0, 0.6, 0.5, 1.0]]
    curve = [{"step": 1, "round": 1, "acc": [1.0, 0.3]},
             {"step": 2, "round": 2, "acc": [1.0, 0.2, 0.1]},  # dip on task 1 during round 2
             {"step": 3, "round": 3, "acc": [1.0, 0.4, 0.5, 0.2]},
             {"step": 4, "round": 3, "acc": [1.0, 0.6, 0.3, 0.9]}]
    m = continual_metrics(curve, r)
    # min-ACC: task 1 min over points after round 1 and R[1..3][1] = min(.2,.4,.6,.9,.7,.6)
    # = .2; task 2: min(.5, .3, .8, .5) = .3  ->  (.2 + .3) / 2
    assert m["min_acc"] == pytest.approx(0.25)
    # round 2: before = R[1][1] = .9, lowest during = .2 -> .7; round 3: before =
    # mean(R[2][1:3]) = .75, lowest mean(acc[1:3]) = min(.45, .45) -> .3; mean .5
    assert m["stability_gap"] == pytest.approx(0.5)
    assert m["wc_acc"] == pytest.approx(1.0 / 3 + 2 / 3 * 0.25)
    assert math.isnan(continual_metrics([], r)["min_acc"])


@pytest.mark.filterwarnings("ignore::UserWarning:tqdm")
def test_runner_continual_evaluation_curve(tmp_path: Path) -> None:
    cfg = RunnerConfig(
        methods=["replay"], seeds=[0], n_rounds=2, facts_per_round=6,
        updates_per_round=2, n_general=40, heldout_general=10, tiny=TINY,
        pretrain=TrainConfig(epochs=1, batch_size=16, lr=3e-3, max_len=32),
        train=TrainConfig(epochs=4, batch_size=4, lr=5e-3, max_len=32),
        fact_repeats_in_pretrain=1, eval_every=2, heldout_texts=["a farmer reads a book ."],
    )
    (run,) = run_comparison(cfg, cache=None, progress=False)
    # round 1: 6 facts -> 2 steps/epoch x 4 = 8 steps; round 2: 6 + 2 updates + replay
    assert [p["step"] for p in run.curve if p["round"] == 1] == [2, 4, 6, 8]
    assert all(len(p["acc"]) == p["round"] + 1 for p in run.curve)
    steps2 = [p["step"] for p in run.curve if p["round"] == 2]
    assert steps2 and steps2[0] == 10 and all(b - a == 2 for a, b in pairwise(steps2))
    m = run.metrics()
    assert 0.0 <= m["min_acc"] <= 1.0 and m["stability_gap"] == m["stability_gap"]
    assert m["ku_new"] == run.r[-1][-1]
    assert MethodRun.from_dict(json.loads(json.dumps(run.as_dict()))).curve == run.curve
