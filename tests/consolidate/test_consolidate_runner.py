"""The synthetic fact stream and the continual-learning runner on a tiny configuration."""

from __future__ import annotations

import json
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
