"""Hypothesis fuzzing of the REST API over HTTP (issue 15): random requests to every endpoint
with well-formed and hostile JSON (lone surrogates as ``\\ud800`` escapes, NaN, 300 KB strings,
deep nesting, wrong types, unknown fields), raw bodies that are not JSON or not UTF-8, and
random keys (tenants, a user-confined key, admin, none, a bad one), against a real uvicorn
server. No response may be a 5xx; every error is a JSON error body whose message names the
offending field (4xx validation / invalid input); a tenant never sees another namespace."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("MEMKIT_FUZZ_SCALE", "1"))
NAMESPACE = {"acme": "acme", "acme_u1": "acme", "globex": "globex"}

ENDPOINTS = ["write", "write", "write", "batch", "batch", "read", "read", "get", "versions",
             "patch", "patch", "delete_one", "delete_many", "forget", "stats", "whoami", "raw"]
# words a 400 may use to name the field it rejects
FIELD_WORDS = ("body", "text", "query", "metadata", "scope", "source", "reason", "k",
               "backend", "ids", "id", "record", "records", "policy", "ttl", "confidence",
               "as_of", "budget_tokens", "rerank", "created_at", "user", "namespace",
               "session", "agent", "batch_size", "item")


def _request(data: Any, fields: Any) -> tuple[str, str, str, bytes | None]:
    """(endpoint, method, path, body bytes)."""
    ep = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
    f = fields(data)
    iid = f("ids", "id")
    if isinstance(iid, list):
        iid = iid[0] if iid else 1
    path_id = iid if isinstance(iid, int) and not isinstance(iid, bool) else \
        data.draw(st.sampled_from(["x", "-1", "0", "1.5", str(2**64), "%00"]), label="path id")
    body: Any = None
    if ep == "write":
        body = {"text": f("text", "text"), **f.optional(
            scope="scope", source="text", confidence="number", ttl="time", metadata="metadata")}
        method, path = "POST", "/v1/memories"
    elif ep == "batch":
        body = {"records": f("records", "records"), **f.optional(scope="scope", batch_size="k")}
        method, path = "POST", "/v1/memories/batch"
    elif ep == "read":
        body = {"query": f("text", "query"), **f.optional(
            k="k", scope="scope", backend="backend", as_of="time", budget_tokens="k")}
        method, path = "POST", "/v1/read"
    elif ep in ("get", "versions", "delete_one"):
        method = "DELETE" if ep == "delete_one" else "GET"
        path = f"/v1/memories/{path_id}" + ("/versions" if ep == "versions" else "")
    elif ep == "patch":
        body = {"text": f("text", "text"), **f.optional(
            reason="text", metadata="metadata", confidence="number", source="text")}
        method, path = "PATCH", f"/v1/memories/{path_id}"
    elif ep == "delete_many":
        ids = f("ids", "ids")
        body = {"ids": ids if isinstance(ids, list) else [ids], **f.optional(reason="text")}
        method, path = "POST", "/v1/memories/delete"
    elif ep == "forget":
        body = {"policy": f("policy", "policy")}
        method, path = "POST", "/v1/forget"
    elif ep in ("stats", "whoami"):
        method, path = "GET", "/v1/stats" if ep == "stats" else "/v1/whoami"
    else:  # bytes that are not a JSON object of the endpoint's fields
        raw = data.draw(st.one_of(
            st.binary(max_size=40), st.sampled_from([b"", b"{", b"[]", b"null", b'"x"',
                                                     b'{"text": "a\xffb"}', b'{"text": NaN}',
                                                     b'{"query": "q", "k": 1e400}']),
            st.integers(1, 200_000).map(lambda n: b'{"text": "x", "metadata": ' +
                                        b"[" * n + b"]" * n + b"}")), label="raw")
        path = data.draw(st.sampled_from(["/v1/memories", "/v1/read", "/v1/memories/batch",
                                          "/v1/memories/delete", "/v1/forget"]), label="path")
        return ep, "POST", path, raw
    if body is not None and f.hostile and data.draw(st.booleans(), label="extra field"):
        body[data.draw(st.sampled_from(["bogus", "id", "namespace", ""]), label="extra")] = 1
    encoded = None
    if body is not None:
        try:  # ensure_ascii: lone surrogates become \\udXXX escapes, as a hostile client sends
            encoded = json.dumps(body, default=str).encode("ascii")
        except (ValueError, RecursionError):
            encoded = b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    return ep, method, path, encoded


def _check(ep: str, key_name: str, response: httpx.Response, target: Any) -> None:
    status = response.status_code
    what = f"{ep} as {key_name}: HTTP {status}: {response.text[:300]!r}"
    if status >= 500:
        target.fail(what)
        return
    try:
        body = response.json()
    except ValueError:
        target.fail("not JSON: " + what)
        return
    if status >= 400:
        target.rejected += 1
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or not error.get("type") or "message" not in error:
            target.fail("malformed error body: " + what)
        elif status in (400, 422) and not any(w in error["message"] for w in FIELD_WORDS):
            target.fail("rejection names no field: " + what)
        elif "Traceback" in response.text:
            target.fail("traceback in body: " + what)
        return
    target.accepted += 1
    own = NAMESPACE.get(key_name)
    if own is None:
        return
    items = [h["item"] for h in body.get("hits", [])] if isinstance(body, dict) else []
    if ep in ("get",) and isinstance(body, dict):
        items = [body]
    if ep == "versions" and isinstance(body, list):
        items = body
    for item in items:
        if item["scope"]["namespace"] != own:
            target.fail("cross-tenant item: " + what)


def _run(fuzz_server: Any, fields: Any, tally: Any, name: str, examples: int) -> None:
    target = tally[name]
    keys = {**fuzz_server.keys, "none": None, "bad": "mk_000000000000_" + "A" * 43}
    clients = {n: httpx.Client(base_url=fuzz_server.url, timeout=60, headers={
        "Authorization": f"Bearer {k}"} if k else {}) for n, k in keys.items()}
    try:
        for i in range(5):
            clients["acme"].post("/v1/memories", json={"text": f"seed memory {i} harbour"})

        @seed(20261202)
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def run(data: Any) -> None:
            key_name = data.draw(st.sampled_from(
                ["acme", "acme", "globex", "acme_u1", "admin", "none", "bad"]), label="key")
            ep, method, path, body = _request(data, fields)
            target.cases += 1
            headers = {"Content-Type": "application/json"} if body is not None else {}
            response = clients[key_name].request(method, path, content=body, headers=headers)
            _check(ep, key_name, response, target)

        run()
        # still serving, and the record is intact
        with httpx.Client(base_url=fuzz_server.url, timeout=60, headers={
                "Authorization": f"Bearer {fuzz_server.keys['acme']}"}) as c:
            iid = c.post("/v1/memories", json={"text": "REST fuzz sentinel in Narvik",
                                               "scope": {"session": "sentinel"}}).json()["id"]
            hits = c.post("/v1/read", json={"query": "REST fuzz sentinel Narvik", "k": 1,
                                            "scope": {"session": "sentinel"}}).json()["hits"]
            assert [h["item"]["id"] for h in hits] == [iid]
        state = fuzz_server.app.state.memkit
        assert state.memory.store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        for c in clients.values():
            c.close()
    assert target.failures == 0, target.examples


def test_rest_fuzz(fuzz_server: Any, fields: Any, tally: Any) -> None:
    _run(fuzz_server, fields, tally, "rest", int(700 * SCALE))


@pytest.mark.slow
def test_rest_fuzz_long(fuzz_server: Any, fields: Any, tally: Any) -> None:
    _run(fuzz_server, fields, tally, "rest (long)", int(5_000 * SCALE))
