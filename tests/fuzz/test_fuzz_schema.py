"""schemathesis against the app's own OpenAPI spec, counted into the fuzz tally (issue 15):
schema-valid and schema-violating requests for every operation, as a tenant and as admin, on
a real server. No 5xx; every valid response conforms to the documented schema; every error is
a JSON error body. (tests/server/test_server_schema.py runs a few examples per operation in
the server suite; this is the budgeted run that benchmarks/faults.py scales up.)"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

SCALE = float(os.environ.get("MEMKIT_FUZZ_SCALE", "1"))


def _fuzz_operation(url: str, op: Any, mode: Any, key: str, target: Any, examples: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}

    @seed(4321)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        target.cases += 1
        response = case.call(base_url=url, headers=headers, timeout=60)
        checks = [not_a_server_error]
        if mode == GenerationMode.POSITIVE:
            checks += [status_code_conformance, content_type_conformance,
                       response_schema_conformance]
        try:
            case.validate_response(response, checks=checks, headers=headers)
            if response.status_code >= 400:
                error = response.json()["error"]
                assert error["type"] and error["message"] is not None
        except (AssertionError, KeyError, ValueError, TypeError) as exc:
            target.fail(f"{op.label} ({mode.value}): {type(exc).__name__}: {exc}"[:600])
            return
        if response.status_code >= 400:
            target.rejected += 1
        else:
            target.accepted += 1

    try:
        run()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, op.label  # nothing to violate


def _run(fuzz_server: Any, tally: Any, name: str, examples: int) -> None:
    target = tally[name]
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json", timeout=30)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 11
    runs = [(GenerationMode.POSITIVE, "acme"), (GenerationMode.NEGATIVE, "acme"),
            (GenerationMode.POSITIVE, "admin")]
    for op in ops:
        for mode, key in runs:
            _fuzz_operation(fuzz_server.url, op, mode, fuzz_server.keys[key], target, examples)
    assert target.failures == 0, target.examples


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_schemathesis_fuzz(fuzz_server: Any, tally: Any) -> None:
    _run(fuzz_server, tally, "rest (schemathesis)", max(1, int(4 * SCALE)))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_schemathesis_fuzz_long(fuzz_server: Any, tally: Any) -> None:
    _run(fuzz_server, tally, "rest (schemathesis, long)", max(1, int(60 * SCALE)))
