"""LoCoMo / MuSiQue training-data builders on the real shared files."""

from __future__ import annotations

import json

import pytest

from memkit.sifterlab.data import (
    build_rows,
    curriculum_select,
    load_rows,
    locomo_examples,
    musique_examples,
    rows_units,
    save_rows,
)
from memkit.sifterlab.reward import ndcg_at_k
from tests.conftest import SHARED_DATA

LOCOMO = SHARED_DATA / "locomo10.json"
MUSIQUE = SHARED_DATA / "musique_dev200.jsonl"
needs_data = pytest.mark.skipif(not LOCOMO.exists(), reason="shared data not present")


@needs_data
def test_locomo_sessions_are_units_and_evidence_maps_to_gold_sessions():
    exs = locomo_examples(LOCOMO, samples=[0])
    first = exs[0]
    raw = json.loads(LOCOMO.read_text())[0]
    assert first.question == raw["qa"][0]["question"]      # "When did Caroline go to ..."
    assert first.answers == ["7 May 2023"]
    assert first.gold == [0]                               # evidence D1:3 -> session 1
    u = first.units[0]
    assert u.date == "1:56 pm on 8 May, 2023"
    assert u.text.startswith("Caroline: Hey Mel! Good to see you!")
    n_sessions = sum(1 for k in raw["conversation"] if k.startswith("session_")
                     and not k.endswith("date_time"))
    assert len(first.units) == n_sessions
    assert all(e.category in (1, 2, 3, 4) for e in exs)
    assert {e.source for e in exs} == {"locomo"}


@needs_data
def test_locomo_full_counts():
    exs = locomo_examples(LOCOMO)
    # 1,540 questions in categories 1-4; the few without usable evidence are dropped
    assert 1520 <= len(exs) <= 1540
    assert all(e.gold and max(e.gold) < len(e.units) for e in exs)


@needs_data
def test_musique_paragraphs_are_units():
    exs = musique_examples(MUSIQUE)
    assert len(exs) == 200
    assert all(len(e.units) == 20 for e in exs)
    assert all(2 <= len(e.gold) <= 4 for e in exs)
    assert exs[0].answers[0] and exs[0].units[1].text.startswith("Mountrail County Courthouse:")


@needs_data
def test_build_rows_keeps_gold_under_budget_and_round_trips(tmp_path, embedder):
    exs = locomo_examples(LOCOMO, samples=[0])[:6]
    rows = build_rows(exs, embedder, budget_tokens=2500, cache_dir=tmp_path / "cache")
    for ex, row in zip(exs, rows, strict=True):
        units = rows_units(row)
        assert row["n_candidates"] == len(units) < len(ex.units)
        assert sum(max(len(u.text) // 4, len(u.text.split())) for u in units) <= 2500 or \
            len(units) == len(ex.gold)
        gold_uids = {ex.units[g].uid for g in ex.gold}
        assert {units[g].uid for g in row["gold"]} == gold_uids         # gold kept
        orders = [u.order for u in units]
        assert orders == sorted(orders)                                 # chronological
        assert sorted(row["prefilter_ranking"]) == list(range(len(units)))
        assert row["prefilter_ndcg10"] == ndcg_at_k(row["prefilter_ranking"], row["gold"], 10)
        assert "<session0>" in row["prompt"][-1]["content"]
    assert list((tmp_path / "cache").glob("sifter-units-*.npy"))       # vectors cached
    save_rows(rows, tmp_path / "rows.jsonl")
    assert load_rows(tmp_path / "rows.jsonl") == rows


def test_curriculum_select_prefers_ndcg_near_anchor():
    rows = [{"prefilter_ndcg10": v, "i": i} for i, v in enumerate([1.0, 0.2, 0.0, 0.3, 0.6])]
    picked = curriculum_select(rows, 3)
    # priorities: 0.2, 1.0, 0.8, 0.9, 0.6 -> rows 1, 3, 2 (returned in input order)
    assert [r["i"] for r in picked] == [1, 2, 3]
