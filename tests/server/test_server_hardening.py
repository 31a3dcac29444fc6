"""Issue 15 over HTTP: bad input is a 4xx naming the field (never a 500), request fields are
bounded in the OpenAPI spec, and item ids are opaque per namespace, so one tenant cannot count
another's writes (defects 8 and 10)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from memkit import Memory

if TYPE_CHECKING:
    from conftest import Served


def _raw(c: Any, path: str, body: bytes) -> Any:
    return c.post(path, content=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/memories", b'{"text": "ok", "metadata": {"x": "\\udfff"}}', "metadata['x']"),
    ("/v1/memories", b'{"text": "ok", "metadata": {"\\ud800": 1}}', "metadata key"),
    ("/v1/memories", b'{"text": "a\\ud800b"}', "text"),
    ("/v1/memories", b'{"text": "ok", "source": "\\udc80"}', "source"),
    ("/v1/memories", b'{"text": "ok", "scope": {"user": "\\udc80"}}', "user"),
    ("/v1/read", b'{"query": "\\ud800"}', "query"),
    ("/v1/memories/delete", b'{"ids": [1], "reason": "\\ud800"}', "reason"),
    ("/v1/memories", b'{"text": "caf\xe9 \xff"}', "body"),  # not UTF-8 at all
])
def test_lone_surrogates_and_invalid_utf8_are_4xx_naming_the_field(
        served: Served, path: str, body: bytes, field: str) -> None:
    with served.client(served.keys["acme"]) as c:
        r = _raw(c, path, body)
        assert r.status_code in (400, 422), r.text
        error = r.json()["error"]
        assert error["type"] == "InvalidInput" and field in error["message"], error
        assert c.get("/v1/stats").json()["items"] == 0


def test_deep_metadata_and_oversized_fields_are_rejected(served: Served) -> None:
    deep = b'{"text": "ok", "metadata": ' + b'{"a": ' * 40 + b'1' + b'}' * 40 + b'}'
    with served.client(served.keys["acme"]) as c:
        r = _raw(c, "/v1/memories", deep)
        assert r.status_code == 400 and "nested deeper than 32" in r.json()["error"]["message"]
        very_deep = b'{"text": "ok", "metadata": ' + b'[' * 100_000 + b']' * 100_000 + b'}'
        assert _raw(c, "/v1/memories", very_deep).status_code in (400, 422)
        # refused at the edge (it used to run 50,000 fusions: 20 s of server CPU)
        r = c.post("/v1/read", json={"query": "q", "backend": ",".join(["dense"] * 50_000)})
        assert r.status_code == 422 and "backend" in r.json()["error"]["message"]
        r = c.post("/v1/read", json={"query": "q", "k": 10**9})
        assert r.status_code == 422 and "k" in r.json()["error"]["message"]
        r = c.post("/v1/memories", json={"text": "ok", "metadata": {"n": 10**30}})
        assert r.status_code == 400 and "64 bits" in r.json()["error"]["message"]
        assert c.get("/v1/stats").json()["items"] == 0


def test_openapi_documents_the_bounds(served: Served) -> None:
    with served.client() as c:
        spec = c.get("/openapi.json").json()
    props = spec["components"]["schemas"]
    backend = props["ReadRequest"]["properties"]["backend"]["anyOf"]
    assert {"maxLength": 1616, "type": "string"} in backend
    assert any(b.get("maxItems") == 16 for b in backend)
    assert props["ReadRequest"]["properties"]["k"]["maximum"] == 1000
    meta = props["WriteRequest"]["properties"]["metadata"]["anyOf"][0]
    assert meta["maxProperties"] == 1000 and "32 levels deep" in meta["description"]
    assert props["WriteRequest"]["properties"]["source"]["anyOf"][0]["maxLength"] == 2000
    assert props["DeleteRequest"]["properties"]["ids"]["maxItems"] == 10_000
    assert "opaque" in json.dumps(props["WriteResponse"]["properties"]["id"])


def test_ids_do_not_reveal_other_tenants_writes(served: Served) -> None:
    with served.client(served.keys["acme"]) as acme, \
            served.client(served.keys["globex"]) as globex:
        a1 = acme.post("/v1/memories", json={"text": "acme one"}).json()["id"]
        for n in range(7):
            globex.post("/v1/memories", json={"text": f"globex {n}"})
        a2 = acme.post("/v1/memories", json={"text": "acme two"}).json()["id"]
        a3 = acme.post("/v1/memories", json={"text": "acme three"}).json()["id"]
        # internal ids are 1, 9, 10: the public ones neither count nor order
        assert {a1, a2, a3}.isdisjoint({1, 9, 10}) and abs(a3 - a2) != 1
        assert max(a1, a2, a3) < 2**52  # exact in JavaScript
        for iid in (a1, a2, a3):
            assert globex.get(f"/v1/memories/{iid}").status_code == 404
        # the same item under the other namespace's mapping is not the same id either
        g_ids = [h["item"]["id"] for h in globex.post(
            "/v1/read", json={"query": "globex", "k": 10}).json()["hits"]]
        assert len(g_ids) == 7 and not set(g_ids) & {a1, a2, a3}
    with served.client(served.keys["admin"]) as admin:  # the operator sees the record's ids
        hits = admin.post("/v1/read", json={"query": "acme", "k": 3,
                                             "scope": {"namespace": "acme"}}).json()["hits"]
        assert sorted(h["item"]["id"] for h in hits) == [1, 9, 10]


def test_every_id_a_tenant_gets_is_in_its_own_space(served: Served) -> None:
    with served.client(served.keys["acme"]) as c:
        first = c.post("/v1/memories", json={"text": "Dana lives in Oslo."}).json()["id"]
        new = c.patch(f"/v1/memories/{first}", json={"text": "Dana lives in Bergen."}).json()
        versions = c.get(f"/v1/memories/{new['id']}/versions").json()
        assert [v["id"] for v in versions] == [first, new["id"]]
        assert versions[1]["root_id"] == first and versions[1]["supersedes"] == first
        hit = c.post("/v1/read", json={"query": "Dana Bergen", "k": 1}).json()["hits"][0]
        assert hit["item"]["id"] == new["id"] and hit["item"]["root_id"] == first
        # an error about an internal id names the public one
        r = c.patch(f"/v1/memories/{first}", json={"text": "Dana lives in Tromsø."})
        assert r.status_code == 400 and str(first) in r.json()["error"]["message"]
        batch = c.post("/v1/memories/batch", json={"records": ["x one", "x two"]}).json()
        assert all(c.get(f"/v1/memories/{i}").status_code == 200 for i in batch["added"])
        assert c.post("/v1/memories/delete", json={"ids": batch["added"]}).json() == {
            "ids": batch["added"]}
        assert c.delete(f"/v1/memories/{new['id']}").json()["ids"] == [first, new["id"]]


def test_ids_are_stable_across_restarts(tmp_path: Any, start_served: Any,
                                        new_memory: Any) -> None:
    from memkit.server.auth import KeyStore

    directory = tmp_path / "mem"
    new_memory(directory)
    keys = KeyStore.open(directory)
    key = keys.create("acme")[0]
    keys.close()
    srv = start_served(directory)
    with srv.client(key) as c:
        iid = c.post("/v1/memories", json={"text": "kept across restarts"}).json()["id"]
    srv.stop()
    srv = start_served(directory)
    with srv.client(key) as c:
        assert c.get(f"/v1/memories/{iid}").json()["text"] == "kept across restarts"
    with Memory.open(directory) as mem:  # the Python API keeps its own ints
        assert mem.get(1).text == "kept across restarts" and iid != 1
