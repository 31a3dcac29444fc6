"""Tenant isolation over HTTP: two keys issue random interleaved writes, reads, gets, updates
and deletes (a seeded loop, then the same from concurrent threads); no response ever carries
an item of the other namespace, and no request touches one."""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Served


WORDS = ("launch budget vault code roadmap hiring office coffee deadline client server "
         "meeting invoice secret plan").split()


class Tenant:
    def __init__(self, served: Served, name: str) -> None:
        self.name = name
        self.http = served.client(served.keys[name])
        self.ids: set[int] = set()  # every id this tenant ever wrote (any version)
        self.texts: list[str] = []
        self.lock = threading.Lock()


def _step(rng: random.Random, me: Tenant, other: Tenant, tally: dict[str, int]) -> None:
    op = rng.choices(["write", "batch", "read", "get_other", "update", "delete"],
                     weights=[5, 1, 6, 2, 1, 1])[0]
    c = me.http
    if op == "write":
        text = f"{me.name} {' '.join(rng.sample(WORDS, 3))} #{rng.randrange(10**9)}"
        r = c.post("/v1/memories", json={"text": text, "scope": {"user": rng.choice(["u1", "u2"])}})
        assert r.status_code == 201 and r.json()["created"], r.text
        with me.lock:
            me.ids.add(r.json()["id"])
            me.texts.append(text)
    elif op == "batch":
        texts = [f"{me.name} batch {rng.randrange(10**9)} {rng.choice(WORDS)}" for _ in range(3)]
        r = c.post("/v1/memories/batch", json={"records": texts})
        assert r.status_code == 200, r.text
        with me.lock:
            me.ids.update(r.json()["added"])
            me.texts.extend(texts)
    elif op == "read":
        # often query with the other tenant's exact text: the strongest pull across the line
        pool = other.texts if other.texts and rng.random() < 0.5 else me.texts or ["x"]
        with other.lock if pool is other.texts else me.lock:
            query = rng.choice(pool)
        r = c.post("/v1/read", json={"query": query, "k": rng.choice([1, 5, 50])})
        assert r.status_code == 200, r.text
        for hit in r.json()["hits"]:
            tally["hits"] += 1
            if hit["item"]["scope"]["namespace"] != me.name or hit["item"]["id"] in other.ids:
                tally["cross"] += 1
    elif op == "get_other" and other.ids:
        with other.lock:
            target = rng.choice(sorted(other.ids))
        r = rng.choice([
            lambda: c.get(f"/v1/memories/{target}"),
            lambda: c.get(f"/v1/memories/{target}/versions"),
            lambda: c.patch(f"/v1/memories/{target}", json={"text": "overwritten"}),
            lambda: c.delete(f"/v1/memories/{target}"),
        ])()
        tally["probes"] += 1
        if r.status_code != 404:
            tally["cross"] += 1
    elif op == "update" and me.ids:
        with me.lock:
            target = rng.choice(sorted(me.ids))
        r = c.patch(f"/v1/memories/{target}",
                    json={"text": f"{me.name} updated {rng.randrange(10**9)}"})
        assert r.status_code in (200, 400, 404), r.text  # 400: superseded; 404: deleted
        if r.status_code == 200:
            with me.lock:
                me.ids.add(r.json()["id"])
    elif op == "delete" and me.ids:
        with me.lock:
            target = rng.choice(sorted(me.ids))
        r = c.delete(f"/v1/memories/{target}")
        assert r.status_code in (200, 404), r.text


def _final_audit(served: Served, tenants: list[Tenant], tally: dict[str, int]) -> None:
    with served.client(served.keys["admin"]) as admin:
        for t in tenants:
            r = t.http.get("/v1/stats").json()
            everything = admin.post("/v1/read", json={
                "query": "launch budget", "k": 1000, "scope": {"namespace": t.name}}).json()
            assert r["items"] == len(everything["hits"])
            # the admin key sees the memory's ids; a tenant its namespace's opaque ones
            codec = served.app.state.memkit.ids
            assert all(codec.encode(h["item"]["id"], t.name) in t.ids
                       for h in everything["hits"])
    assert tally["cross"] == 0, tally


def test_seeded_interleaving_never_crosses_namespaces(served: Served) -> None:
    tenants = [Tenant(served, "acme"), Tenant(served, "globex")]
    tally = {"hits": 0, "cross": 0, "probes": 0}
    for seed in range(2):
        rng = random.Random(seed)
        for _ in range(120):
            me = rng.choice(tenants)
            _step(rng, me, tenants[1 - tenants.index(me)], tally)
    _final_audit(served, tenants, tally)
    assert tally["hits"] > 60 and tally["probes"] > 10  # the loop really exercised both
    for t in tenants:
        t.http.close()


def test_concurrent_tenants_never_cross_namespaces(served: Served) -> None:
    tenants = [Tenant(served, "acme"), Tenant(served, "globex")]
    tally = {"hits": 0, "cross": 0, "probes": 0}
    errors: list[BaseException] = []
    tally_lock = threading.Lock()

    def worker(seed: int, me: Tenant, other: Tenant) -> None:
        rng = random.Random(seed)
        local = {"hits": 0, "cross": 0, "probes": 0}
        try:
            for _ in range(60):
                _step(rng, me, other, local)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        with tally_lock:
            for k, v in local.items():
                tally[k] += v

    threads: list[Any] = []
    for i in range(4):
        me = tenants[i % 2]
        threads.append(threading.Thread(target=worker, args=(100 + i, me, tenants[1 - i % 2])))
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    _final_audit(served, tenants, tally)
    for t in tenants:
        t.http.close()
