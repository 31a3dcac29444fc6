"""The standing fault suite's kill section, small: seeded SIGKILLs mid write_many, update,
delete and forget, in sync and async indexing, and the record <-> index invariants after
each (the long version: ``python benchmarks/faults.py --only kill``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from faults_kill import run_kills  # noqa: E402


@pytest.mark.slow
def test_seeded_kills_leave_record_and_indexes_consistent() -> None:
    result = run_kills(6, seed=11)
    for mode, r in result.items():
        assert r["violations"] == 0, (mode, r["examples"])
        assert r["steps_completed"] > 0, mode  # the kills did land mid-program


def test_writers_and_a_long_lived_reader_for_a_few_seconds() -> None:
    """Two writer processes and a reader process reading dense and the graph in a loop: the
    reader once crashed building graph arrays from tables another process was writing."""
    from faults_kill import run_load

    r = run_load(4.0)
    assert r["process_failures"] == [] and r["violations"] == []
    assert r["read_errors"] == 0 and r["reads"] > 0
    assert r["lost"] == 0 and r["acknowledged_writes"] > 0
