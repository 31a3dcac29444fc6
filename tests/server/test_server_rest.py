"""The REST API over a real uvicorn server on 127.0.0.1: auth, scope confinement, error
mapping (JSON bodies with request ids, never stack traces), limits and timeouts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from memkit.server.auth import KeyStore

if TYPE_CHECKING:
    from conftest import Served


def err(response) -> dict:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"}
    assert "Traceback" not in response.text
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]


def test_health_docs_and_request_ids(served: Served) -> None:
    with served.client() as c:
        r = c.get("/health")
        assert r.status_code == 200 and r.json()["status"] == "ok"
        assert r.json()["auth"] == "required"
        assert len(r.headers["x-request-id"]) == 32
        assert c.get("/health", headers={"X-Request-ID": "trace-42"}).headers[
            "x-request-id"] == "trace-42"
        assert c.get("/health", headers={"X-Request-ID": "bad id!"}).headers[
            "x-request-id"] != "bad id!"
        assert c.get("/docs").status_code == 200
        spec = c.get("/openapi.json").json()
        assert {"/v1/memories", "/v1/read", "/v1/memories/{item_id}"} <= set(spec["paths"])
        assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])


def test_requests_without_a_valid_key_get_401(served: Served) -> None:
    for key in (None, "mk_000000000000_" + "x" * 43, "nonsense"):
        with served.client(key) as c:
            r = c.post("/v1/read", json={"query": "anything"})
            assert r.status_code == 401, key
            assert err(r)["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
    with served.client() as c:  # X-API-Key works too
        r = c.get("/v1/whoami", headers={"X-API-Key": served.keys["acme"]})
        assert r.status_code == 200 and r.json()["namespace"] == "acme"


def test_revoked_key_is_refused_by_the_running_server(served: Served) -> None:
    with served.client(served.keys["globex"]) as c:
        assert c.get("/v1/whoami").status_code == 200
        ks = KeyStore.open(served.directory)
        ks.revoke(served.keys["globex"])
        ks.close()
        assert c.get("/v1/whoami").status_code == 401


def test_write_says_created_201_or_duplicate_200(served: Served) -> None:
    text = "The office opens at 9."
    with served.client(served.keys["acme"]) as c:
        first = c.post("/v1/memories", json={"text": text, "scope": {"user": "u"}})
        again = c.post("/v1/memories", json={"text": text, "scope": {"user": "u"}})
        other = c.post("/v1/memories", json={"text": text, "scope": {"user": "v"}})
        spec = c.get("/openapi.json").json()["paths"]["/v1/memories"]["post"]["responses"]
    assert (first.status_code, first.json()["created"]) == (201, True)
    assert (again.status_code, again.json()) == (200, {"id": first.json()["id"], "created": False})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert {"200", "201"} <= set(spec)


def test_write_get_read_are_confined_to_the_keys_namespace(served: Served) -> None:
    acme, globex = served.client(served.keys["acme"]), served.client(served.keys["globex"])
    a = acme.post("/v1/memories", json={"text": "Acme's launch is on May 3.",
                                        "scope": {"user": "u1"}}).json()["id"]
    g = globex.post("/v1/memories", json={"text": "Globex's launch is on June 9."}).json()["id"]
    item = acme.get(f"/v1/memories/{a}").json()
    assert item["scope"] == {"namespace": "acme", "user": "u1", "agent": None, "session": None}
    hits = acme.post("/v1/read", json={"query": "When is the launch?", "k": 10}).json()["hits"]
    assert [h["item"]["id"] for h in hits] == [a]
    # the other tenant's item is invisible, and indistinguishable from a missing one
    missing = acme.get("/v1/memories/999999")
    foreign = acme.get(f"/v1/memories/{g}")
    assert foreign.status_code == missing.status_code == 404
    assert err(foreign)["message"] == f"no item with id {g}"
    for r in (acme.get(f"/v1/memories/{g}/versions"),
              acme.patch(f"/v1/memories/{g}", json={"text": "hijacked"}),
              acme.delete(f"/v1/memories/{g}")):
        assert r.status_code == 404
    assert globex.get(f"/v1/memories/{g}").json()["text"] == "Globex's launch is on June 9."
    # asking for another namespace is refused, not silently rewritten
    r = acme.post("/v1/memories", json={"text": "x", "scope": {"namespace": "globex"}})
    assert r.status_code == 403 and err(r)["type"] == "ScopeViolation"
    r = acme.post("/v1/read", json={"query": "launch", "scope": {"namespace": "globex"}})
    assert r.status_code == 403
    acme.close()
    globex.close()


def test_user_confined_key(served: Served) -> None:
    with served.client(served.keys["acme"]) as acme, \
            served.client(served.keys["acme_u1"]) as u1:
        other = acme.post("/v1/memories", json={"text": "u2 likes tea",
                                                "scope": {"user": "u2"}}).json()["id"]
        mine = u1.post("/v1/memories", json={"text": "u1 likes coffee"}).json()["id"]
        assert acme.get(f"/v1/memories/{mine}").json()["scope"]["user"] == "u1"
        hits = u1.post("/v1/read", json={"query": "likes", "k": 10}).json()["hits"]
        assert [h["item"]["id"] for h in hits] == [mine]
        assert u1.get(f"/v1/memories/{other}").status_code == 404
        assert u1.post("/v1/read", json={"query": "x", "scope": {"user": "u2"}}).status_code \
            == 403
        # the namespace key sees both users
        ids = {h["item"]["id"] for h in
               acme.post("/v1/read", json={"query": "likes", "k": 10}).json()["hits"]}
        assert ids == {mine, other}


def test_delete_is_all_or_nothing_across_tenants(served: Served) -> None:
    with served.client(served.keys["acme"]) as acme, \
            served.client(served.keys["globex"]) as globex:
        a1 = acme.post("/v1/memories", json={"text": "a1"}).json()["id"]
        a2 = acme.post("/v1/memories", json={"text": "a2"}).json()["id"]
        g1 = globex.post("/v1/memories", json={"text": "g1"}).json()["id"]
        r = acme.post("/v1/memories/delete", json={"ids": [a1, g1]})
        assert r.status_code == 404 and str(g1) in err(r)["message"]
        assert acme.get(f"/v1/memories/{a1}").status_code == 200
        assert globex.get(f"/v1/memories/{g1}").status_code == 200
        assert acme.post("/v1/memories/delete", json={"ids": [a1, a2]}).json() == {
            "ids": [a1, a2]}
        assert acme.get(f"/v1/memories/{a1}").status_code == 404


def test_update_versions_and_as_of(served: Served) -> None:
    with served.client(served.keys["acme"]) as c:
        old = c.post("/v1/memories", json={"text": "Dana lives in Oslo."}).json()["id"]
        time.sleep(0.01)
        t_between = time.time()
        time.sleep(0.01)
        new = c.patch(f"/v1/memories/{old}", json={"text": "Dana lives in Bergen.",
                                                   "reason": "moved"}).json()["id"]
        assert new != old
        chain = c.get(f"/v1/memories/{new}/versions").json()
        assert [v["id"] for v in chain] == [old, new]
        assert chain[0]["valid_until"] is not None and chain[1]["supersedes"] == old
        now = c.post("/v1/read", json={"query": "Where does Dana live?"}).json()["hits"]
        then = c.post("/v1/read", json={"query": "Where does Dana live?",
                                         "as_of": t_between}).json()["hits"]
        assert [h["item"]["id"] for h in now] == [new]
        assert [h["item"]["id"] for h in then] == [old]


def test_write_many_confines_every_record(served: Served) -> None:
    with served.client(served.keys["acme"]) as c:
        r = c.post("/v1/memories/batch", json={"records": [
            "plain one", {"text": "with user", "scope": {"user": "u7"}, "source": "chat"},
            {"text": "   "}, "plain one"], "batch_size": 2}).json()
        assert len(r["added"]) == 2 and r["skipped_duplicates"] == 1
        assert r["rejected"] == [{"what": "record 2", "reason": "text is empty or whitespace only"}]
        items = [c.get(f"/v1/memories/{i}").json() for i in r["added"]]
        assert [it["scope"]["namespace"] for it in items] == ["acme", "acme"]
        assert items[1]["scope"]["user"] == "u7" and items[1]["source"] == "chat"
        before = c.get("/v1/stats").json()["items"]
        r = c.post("/v1/memories/batch", json={"records": [
            "fine", {"text": "sneaky", "scope": {"namespace": "globex"}}]})
        assert r.status_code == 403
        assert c.get("/v1/stats").json()["items"] == before  # nothing of the batch written


def test_error_mapping_and_limits(served: Served) -> None:
    with served.client(served.keys["acme"]) as c:
        cases = [
            (c.post("/v1/memories", json={"text": "  "}), 400, "invalid_input"),
            (c.post("/v1/memories", json={"text": "a\x00b"}), 400, "invalid_input"),
            (c.post("/v1/memories", json={"text": "x", "bogus": 1}), 422, "validation_error"),
            (c.post("/v1/memories", content=b"{not json",
                    headers={"content-type": "application/json"}), 422, "validation_error"),
            (c.post("/v1/read", json={"query": "q", "k": 0}), 422, "validation_error"),
            (c.post("/v1/read", json={"query": "q", "backend": "nope"}), 400, "invalid_input"),
            (c.post("/v1/answer", json={"question": "why?"}), 501, "not_configured"),
            (c.post("/v1/forget", json={"policy": "superseded"}), 403, "forbidden"),
            (c.post("/v1/forget", json={"policy": "everything"}), 400, "invalid_input"),
            (c.get("/v1/memories/0"), 422, "validation_error"),
            (c.get("/v1/memories/99999999999999999999"), 422, "validation_error"),
            (c.get("/no/such/path"), 404, "not_found"),
        ]
        for r, status, code in cases:
            assert (r.status_code, err(r)["code"]) == (status, code), r.text
        assert c.post("/v1/forget", json={"policy": "ttl"}).json() == {"ids": []}
    with served.client(served.keys["admin"]) as admin:
        assert admin.post("/v1/forget", json={"policy": "superseded"}).status_code == 200


def test_body_limit_413_by_header_and_by_stream(tmp_path: Any, new_memory: Any,
                                               start_served: Any) -> None:
    new_memory(tmp_path / "m")
    srv = start_served(tmp_path / "m", max_body_bytes=4096)
    with srv.client() as c:
        r = c.post("/v1/memories", json={"text": "x" * 10_000})
        assert r.status_code == 413 and err(r)["code"] == "payload_too_large"

        def chunks():  # type: ignore[no-untyped-def]
            yield b'{"text": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}'

        r = c.post("/v1/memories", content=chunks(),
                   headers={"content-type": "application/json"})
        assert r.status_code == 413 and err(r)["code"] == "payload_too_large"
        assert c.post("/v1/memories", json={"text": "small"}).status_code == 201
        assert c.get("/v1/stats").json()["items"] == 1


def test_slow_call_answers_504_with_json(tmp_path: Any, new_memory: Any,
                                        start_served: Any) -> None:
    new_memory(tmp_path / "m")
    srv = start_served(tmp_path / "m", request_timeout_s=0.3)
    mem = srv.app.state.memkit.memory
    real = mem.read

    def slow(*a, **k):  # type: ignore[no-untyped-def]
        time.sleep(1.0)
        return real(*a, **k)

    mem.read = slow
    with srv.client() as c:
        r = c.post("/v1/read", json={"query": "anything"})
        assert r.status_code == 504 and err(r)["code"] == "timeout"
        mem.read = real
        assert c.post("/v1/read", json={"query": "anything"}).status_code == 200


def test_stats_are_scoped_for_tenants(served: Served) -> None:
    with served.client(served.keys["acme"]) as acme, \
            served.client(served.keys["globex"]) as globex, \
            served.client(served.keys["admin"]) as admin:
        acme.post("/v1/memories", json={"text": "one"})
        acme.post("/v1/memories", json={"text": "two"})
        globex.post("/v1/memories", json={"text": "three"})
        assert acme.get("/v1/stats").json()["items"] == 2
        assert "namespaces" not in acme.get("/v1/stats").json()
        assert globex.get("/v1/stats").json()["items"] == 1
        assert admin.get("/v1/stats").json()["namespaces"] == {"acme": 2, "globex": 1}


def test_open_mode_on_loopback_needs_no_key(open_served: Served) -> None:
    with open_served.client() as c:
        assert c.get("/health").json()["auth"] == "open"
        i = c.post("/v1/memories", json={"text": "hello", "scope": {"namespace": "x"}}).json()
        assert c.get(f"/v1/memories/{i['id']}").json()["scope"]["namespace"] == "x"
        assert c.get("/v1/whoami").json()["admin"] is True
        # creating the first key locks the running server
        ks = KeyStore.open(open_served.directory)
        key, _ = ks.create("x")
        ks.close()
        assert c.get("/v1/whoami").status_code == 401
        assert c.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"}).json()[
            "namespace"] == "x"


@pytest.mark.parametrize("method,path", [("get", "/v1/stats"), ("post", "/v1/read")])
def test_method_errors_are_json(served: Served, method: str, path: str) -> None:
    with served.client(served.keys["acme"]) as c:
        r = c.request("DELETE", path)
        assert r.status_code == 405 and err(r)["code"] == "method_not_allowed"


def test_answer_with_a_configured_llm_reads_only_the_keys_scope(
        tmp_path: Any, new_memory: Any, start_served: Any) -> None:
    from memkit.llm.fake import ScriptedLLM

    prompts: list[str] = []

    def reply(prompt: str) -> str:
        prompts.append(prompt)
        return "Answer: Paris."

    new_memory(tmp_path / "m")
    ks = KeyStore.open(tmp_path / "m")
    acme, globex = ks.create("acme")[0], ks.create("globex")[0]
    ks.close()
    srv = start_served(tmp_path / "m", llm=ScriptedLLM({r".": reply}))
    with srv.client(acme) as a, srv.client(globex) as g:
        mine = a.post("/v1/memories", json={"text": "Alice moved to Paris in 2021."}).json()["id"]
        g.post("/v1/memories", json={"text": "Globex's Alice moved to Rome in 2020."})
        r = a.post("/v1/answer", json={"question": "Where did Alice move?", "k": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["answer"] == "Paris" and body["cited_ids"] == [mine]
        assert body["detail"]["abstained"] is False
        assert "Paris" in prompts[-1] and "Rome" not in prompts[-1]  # other tenant unseen
        assert "/v1/answer" in a.get("/openapi.json").json()["paths"]


def test_structured_access_log_carries_request_id_and_key(served: Served,
                                                          caplog: Any) -> None:
    import json
    import logging
    import time

    from memkit.server.middleware import JsonFormatter

    with caplog.at_level(logging.INFO, logger="memkit.server.access"), \
            served.client(served.keys["acme"]) as c:
        c.post("/v1/read", json={"query": "q"}, headers={"X-Request-ID": "req-77"})
        # the access line is written once the response has gone out: it may trail the reply
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                getattr(r, "request_id", None) == "req-77" for r in caplog.records):
            time.sleep(0.02)
    (rec,) = [r for r in caplog.records if getattr(r, "request_id", None) == "req-77"]
    line = json.loads(JsonFormatter().format(rec))
    assert line["msg"] == "request" and line["level"] == "info"
    assert line["path"] == "/v1/read" and line["method"] == "POST" and line["status"] == 200
    assert line["key_id"] == served.keys["acme"][3:15]  # the key id, never the secret
    assert served.keys["acme"] not in json.dumps(line) and line["ms"] >= 0


def test_reads_run_in_parallel_and_writes_one_at_a_time(open_served: Served) -> None:
    import threading

    mem = open_served.app.state.memkit.memory
    dense = mem.backends["dense"]
    active = {"read": 0, "write": 0}
    peak = {"read": 0, "write": 0}
    lock = threading.Lock()

    def tracked(kind: str, fn: Any) -> Any:
        def run(*a: Any, **k: Any) -> Any:
            with lock:
                active[kind] += 1
                peak[kind] = max(peak[kind], active[kind])
            try:
                time.sleep(0.3)
                return fn(*a, **k)
            finally:
                with lock:
                    active[kind] -= 1
        return run

    dense.retrieve = tracked("read", dense.retrieve)
    dense.add = tracked("write", dense.add)

    def call(path: str, body: dict) -> None:
        with open_served.client() as c:
            assert c.post(path, json=body).status_code in (200, 201)

    jobs = [threading.Thread(target=call, args=("/v1/read", {"query": f"q{i}"}))
            for i in range(4)]
    jobs += [threading.Thread(target=call, args=("/v1/memories", {"text": f"t{i}"}))
             for i in range(3)]
    for j in jobs:
        j.start()
    for j in jobs:
        j.join(timeout=60)
    assert peak["write"] == 1  # one writer at a time (the memory's write lock)
    assert peak["read"] >= 2   # reads overlap
    with open_served.client() as c:
        assert c.get("/v1/stats").json()["items"] == 3


def test_a_fused_read_over_rest_equals_the_embedded_one(tmp_path: Path,
                                                        start_served: Any) -> None:
    pytest.importorskip("bm25s", reason="needs the [lexical] extra")
    from memkit import Memory

    directory = tmp_path / "fused"
    texts = ["Oslo is the capital of Norway.", "Bergen has a harbour.",
             "Zorblat is a rare word only BM25 finds.", "Norway exports fish."]
    with Memory.open(directory, embedder="hash", backends=["dense", "bm25"]) as mem:
        mem.write_many(texts)
        want = {f: [(h.id, round(h.score, 6)) for h in mem.read(
            "zorblat capital", k=4, backend="dense,bm25", fusion=f,
            weights={"dense": 1.0, "bm25": 2.0}).hits] for f in ("rrf", "minmax")}
    srv = start_served(directory)
    with srv.client(None) as c:
        for f in ("rrf", "minmax"):
            r = c.post("/v1/read", json={"query": "zorblat capital", "k": 4,
                                         "backend": "dense,bm25", "fusion": f,
                                         "weights": {"dense": 1.0, "bm25": 2.0}})
            assert r.status_code == 200, r.text
            assert [(h["item"]["id"], round(h["score"], 6)) for h in r.json()["hits"]] == want[f]
        assert c.post("/v1/read", json={"query": "q", "fusion": "borda"}).status_code == 422
    assert want["rrf"] and want["minmax"]
