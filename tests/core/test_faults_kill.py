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
