"""Property-based testing of the REST API against its own OpenAPI spec (schemathesis): for
every operation, schema-valid and schema-violating requests, over HTTP to a real server. No
response may be a 5xx; every error is a JSON error body; every valid response conforms to the
documented response schema. Bounded: a few dozen examples per operation, seeded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

EXAMPLES = 3  # per operation, mode and key in the default run; the slow run uses 100

if TYPE_CHECKING:
    from conftest import Served


def _operations(served: Served) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json", timeout=30)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 11
    return ops


def _seed_items(served: Served, key: str) -> None:
    with served.client(key) as c:
        for i in range(5):
            assert c.post("/v1/memories", json={"text": f"seed memory {i}"}).status_code == 201


def _fuzz(served: Served, op: Any, mode: Any, key: str, stats: dict[str, int],
          examples: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}

    @seed(1234)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=served.url, headers=headers, timeout=30)
        stats["calls"] += 1
        stats[f"{response.status_code // 100}xx"] += 1
        checks = [not_a_server_error]
        if mode == GenerationMode.POSITIVE:
            checks += [status_code_conformance, content_type_conformance,
                       response_schema_conformance]
        case.validate_response(response, checks=checks, headers=headers)
        assert "x-request-id" in response.headers
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"} and body["error"]["message"] is not None
            assert "Traceback" not in response.text

    try:
        run()
    except Unsatisfiable:
        # nothing to violate (an operation without parameters or body): no negative cases
        assert mode == GenerationMode.NEGATIVE, op.label
        stats["no_negative"] += 1


def _run_all(served: Served, examples: int, admin: bool) -> dict[str, int]:
    _seed_items(served, served.keys["acme"])
    stats = {"calls": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, "no_negative": 0}
    runs = [(GenerationMode.POSITIVE, "acme"), (GenerationMode.NEGATIVE, "acme")]
    if admin:
        runs.append((GenerationMode.POSITIVE, "admin"))
    for op in _operations(served):
        for mode, key in runs:
            _fuzz(served, op, mode, served.keys[key], stats, examples)
    print("schemathesis:", stats)
    return stats


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_no_5xx_on_generated_input(served: Served) -> None:
    stats = _run_all(served, EXAMPLES, admin=False)
    assert stats["5xx"] == 0, stats
    assert stats["2xx"] > 15 and stats["4xx"] > 15, stats  # both paths really exercised


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_no_5xx_on_generated_input_long(served: Served) -> None:
    stats = _run_all(served, 100, admin=True)
    assert stats["5xx"] == 0, stats
