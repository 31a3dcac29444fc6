"""GET /metrics on a real server: Prometheus text with request counts by route template,
latency histograms, item count and LLM usage; admin-only when keys exist."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memkit import Memory
from memkit.llm import ScriptedLLM

if TYPE_CHECKING:
    from conftest import Served


def parse(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_count_requests_by_route_template(served: Served) -> None:
    admin, tenant = served.keys["admin"], served.keys["acme"]
    with served.client(tenant) as c:
        ids = [c.post("/v1/memories", json={"text": f"fact {i}"}).json()["id"] for i in range(3)]
        for i in ids:
            assert c.get(f"/v1/memories/{i}").status_code == 200
        assert c.get("/v1/memories/999999").status_code == 404
        c.post("/v1/read", json={"query": "fact", "k": 2})
        assert c.get("/metrics").status_code == 401  # a tenant key is not enough
    with served.client() as anon:
        assert anon.get("/metrics").status_code == 401
    with served.client(admin) as c:
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = parse(r.text)
    get_item = 'memkit_http_requests_total{method="GET",route="/v1/memories/{item_id}",'
    assert m[get_item + 'status="200"}'] == 3 and m[get_item + 'status="404"}'] == 1
    assert m['memkit_http_requests_total{method="POST",route="/v1/memories",status="201"}'] == 3
    assert m['memkit_http_requests_total{method="GET",route="/metrics",status="401"}'] == 2
    labels = 'method="GET",route="/v1/memories/{item_id}"'
    assert m[f"memkit_http_request_duration_seconds_count{{{labels}}}"] == 4
    assert m[f'memkit_http_request_duration_seconds_bucket{{{labels},le="+Inf"}}'] == 4
    buckets = [v for k, v in m.items() if k.startswith(
        f"memkit_http_request_duration_seconds_bucket{{{labels}")]
    assert buckets == sorted(buckets)  # cumulative
    assert m["memkit_items"] == 3
    assert not re.search(r"fact \d|/v1/memories/\d", r.text)  # no text, no raw ids in labels


def test_metrics_report_llm_usage(tmp_path: Path, start_served: Callable[..., Any]) -> None:
    directory = tmp_path / "llm"
    with Memory.open(directory, embedder="hash") as mem:
        mem.write("Alice moved to Paris.")
    llm = ScriptedLLM({"Alice": '{"answer": "Paris [1]", "cited_ids": [1]}'},
                      default='{"answer": "Paris", "cited_ids": []}')
    srv = start_served(directory, llm=llm)
    with srv.client() as c:
        assert c.post("/v1/answer", json={"question": "Where did Alice move?"}
                      ).status_code == 200
        m = parse(c.get("/metrics").text)
    assert m["memkit_llm_calls_total"] == 1 and m["memkit_llm_prompt_tokens_total"] > 0
    assert m["memkit_llm_completion_tokens_total"] > 0
    assert m["memkit_llm_cached_calls_total"] == 0
