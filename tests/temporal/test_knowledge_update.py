"""The generated knowledge-update benchmark and the facts reranker it uses."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from pgtools import memory_target

from memkit import Memory
from memkit.cli import main
from memkit.embed import HashEmbedder
from memkit.eval.knowledge_update import generate


def test_generator_is_seeded_and_its_model_answers_hand_checks() -> None:
    a, b = generate(5, seed=3), generate(5, seed=3)
    assert [(c.person, c.value, c.at) for c in a.changes] == \
        [(c.person, c.value, c.at) for c in b.changes]
    assert a.changes != generate(5, seed=4).changes
    person = a.people[0]
    moves = [c for c in a.changes if c.person == person and c.attribute == "lives in"]
    assert len(moves) >= 2 and moves == sorted(moves, key=lambda c: c.at)
    assert a.value_at(person, "lives in", moves[1].at) == moves[1].value
    assert a.value_at(person, "lives in", moves[0].at - 1) is None


def test_facts_reranker_puts_the_asked_relation_first() -> None:
    with Memory.open(memory_target(), embedder=HashEmbedder(dim=64)) as mem:
        mem.remember([{"role": "user", "name": "Ann Smith", "content": "I live in Paris.",
                       "at": "2021-01-01"},
                      {"role": "user", "name": "Ann Smith", "content": "I joined Initech.",
                       "at": "2021-01-01"}], {"user": "u"})
        res = mem.read("Where does Ann Smith work?", k=3, rerank="facts", trace=True)
        assert res[0].text.startswith("Ann Smith works at Initech.")
        assert res.traces["rerank"]["relation"] == "works at"


def test_benchmark_command_writes_results_and_contradictions_cut_staleness(
        tmp_path: Path) -> None:
    out = tmp_path / "ku"
    r = CliRunner().invoke(main, ["eval", "knowledge-update", "--people", "6", "--seed", "1",
                                  "--checkpoints", "2", "--embedder", "hash:128",
                                  "--config", "facts", "--config", "facts+contradictions",
                                  "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads((out / "results.json").read_text())
    off, on = data["results"]
    assert (off["config"], on["config"]) == ("facts", "facts+contradictions")
    assert on["staleness_at5"] < off["staleness_at5"] and on["staleness_at5"] < 0.05
    assert all(0.0 <= x[m] <= 1.0 for x in (off, on)
               for m in ("current_top1", "past_top1_valid_at", "staleness_at5"))
    assert "| facts+contradictions |" in (out / "report.md").read_text()
