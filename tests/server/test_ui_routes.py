"""The inspector's routes through FastAPI's TestClient (no browser): login, tenant
confinement on every page, CSRF on every change, keyset paging and filters, the delete
report, and the eval pages."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from fastapi.testclient import TestClient  # noqa: E402

from memkit import Memory  # noqa: E402
from memkit.server.app import ServeSettings, create_app  # noqa: E402
from memkit.server.auth import KeyStore  # noqa: E402

ACME = ["Alice moved to Paris in 2021.", "Bob works at Acme Corp in Berlin.",
        "Alice is a friend of Bob."]
GLOBEX = ["Globex keeps its launch codes in Zurich.", "Hank Scorpio founded Globex in Zurich."]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("uiroutes") / "mem"
    with Memory.open(directory, embedder="hash",
                     backends=["dense", "hipporag", "panini"]) as mem:
        acme = [mem.write(t, scope={"namespace": "acme", "user": "u1"}, source=f"chat:{i}")
                for i, t in enumerate(ACME)]
        globex = [mem.write(t, scope={"namespace": "globex"}, source="wiki") for t in GLOBEX]
        expired = mem.write("Globex temp note.", scope={"namespace": "globex"}, ttl=1e-3)
    keys = KeyStore.open(directory)
    made = {"acme": keys.create("acme")[0], "globex": keys.create("globex")[0],
            "admin": keys.create(None, admin=True)[0]}
    keys.close()
    app = create_app(ServeSettings(memory_dir=directory, embedder="hash", mcp=False))
    with TestClient(app) as client:
        yield {"client": client, "keys": made, "acme": acme, "globex": globex,
               "expired": expired, "app": app}


def _as(served: dict[str, Any], who: str) -> TestClient:
    client: TestClient = served["client"]
    client.cookies.clear()
    r = client.post("/ui/login", data={"key": served["keys"][who], "next": "/ui/browse"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/browse"
    assert "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    return client


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def test_pages_need_a_valid_key(served: dict[str, Any]) -> None:
    client: TestClient = served["client"]
    client.cookies.clear()
    r = client.get("/ui/browse?q=x", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=")
    for path in ("/ui/items/1", "/ui/read?q=a", "/ui/manage", "/ui/evals"):
        assert client.get(path, follow_redirects=False).status_code == 303
    r = client.post("/ui/login", data={"key": "mk_000000000000_" + "x" * 43})
    assert r.status_code == 401 and "not a valid" in r.text
    assert "set-cookie" not in r.headers
    client.cookies.set("memkit_ui_key", "garbage", path="/ui")
    assert client.get("/ui/browse", follow_redirects=False).status_code == 303
    client.cookies.clear()
    r = client.post(f"/ui/items/{served['acme'][0]}/delete", data={"reason": "x"})
    assert r.status_code == 401  # a POST without a key changes nothing


def test_the_rest_api_header_works_on_ui_pages(served: dict[str, Any]) -> None:
    client: TestClient = served["client"]
    client.cookies.clear()
    r = client.get("/ui/browse", headers={"Authorization": f"Bearer {served['keys']['acme']}"})
    assert r.status_code == 200 and ACME[0] in r.text
    r = client.get("/ui/browse", headers={"X-API-Key": served["keys"]["globex"]})
    assert r.status_code == 200 and GLOBEX[0] in r.text and ACME[0] not in r.text


def test_a_key_sees_only_its_tenant_on_every_page(served: dict[str, Any]) -> None:
    client = _as(served, "globex")
    pages = ["/ui/browse", "/ui/browse?status=all", "/ui/browse?q=Alice",
             "/ui/read?q=Where+does+Alice+live&mode=dense&mode=hipporag&mode=dense,hipporag",
             "/ui/read?q=Bob+works+at+Acme+Corp&mode=hipporag&k=20", "/ui/manage"]
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, path
        for text in ACME:
            assert text not in r.text, path
        assert "Acme Corp in Berlin" not in r.text
    assert GLOBEX[0] in client.get("/ui/browse").text
    for iid in served["acme"]:
        for path in (f"/ui/items/{iid}", f"/ui/items/{iid}/delete?reason=x"):
            r = client.get(path)
            assert r.status_code == 404 and ACME[0] not in r.text
    r = client.get("/ui/browse?namespace=acme")
    assert r.status_code == 403 and "confined to namespace=&#39;globex&#39;" in r.text
    csrf = _csrf(client.get("/ui/manage").text)
    target = served["acme"][1]
    r = client.post(f"/ui/items/{target}/delete", data={"csrf": csrf, "reason": "attack"})
    assert r.status_code == 404
    r = client.post(f"/ui/items/{target}/update",
                    data={"csrf": csrf, "text": "owned", "confirm": "yes"})
    assert r.status_code == 404
    mem: Memory = served["app"].state.memkit.memory
    assert mem.get(target).text == ACME[1] and mem.get(target).is_current


def test_changes_need_the_csrf_token(served: dict[str, Any]) -> None:
    client = _as(served, "acme")
    target = served["acme"][2]
    for data in ({"reason": "no token"}, {"reason": "bad", "csrf": "0" * 32}):
        r = client.post(f"/ui/items/{target}/delete", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    r = client.post("/ui/manage/forget", data={"policy": "ttl", "confirm": "yes"})
    assert r.status_code == 403
    # another key's token does not work either
    other = TestClient(served["app"])
    other.cookies.set("memkit_ui_key", served["keys"]["globex"], path="/ui")
    foreign = _csrf(other.get("/ui/manage").text)
    r = client.post(f"/ui/items/{target}/delete", data={"reason": "x", "csrf": foreign})
    assert r.status_code == 403
    assert served["app"].state.memkit.memory.get(target).is_current


def test_update_then_delete_with_report(served: dict[str, Any]) -> None:
    client = _as(served, "admin")
    mem: Memory = served["app"].state.memkit.memory
    iid = mem.write("Carol moved to Oslo in 2019.", scope={"namespace": "acme"})
    page = client.get(f"/ui/items/{iid}")
    assert page.status_code == 200 and "Oslo" in page.text
    # where it lives: its vector, its graph phrases and facts, its QA pairs
    assert "vector of dim 256" in page.text
    assert '<a class="chip" href="/ui/browse?q=Oslo">Oslo</a>' in page.text
    assert "(Carol) —moved to→ (Oslo)" in page.text
    assert re.search(r"<td>Carol moved to what\?</td><td>Oslo</td>", page.text)
    csrf = _csrf(page.text)
    r = client.post(f"/ui/items/{iid}/update",
                    data={"csrf": csrf, "text": "Carol moved to Bergen in 2023.",
                          "reason": "typo"})
    assert r.status_code == 400 and "confirm" in r.text  # the box was not ticked
    r = client.post(f"/ui/items/{iid}/update", follow_redirects=False,
                    data={"csrf": csrf, "text": "Carol moved to Bergen in 2023.",
                          "reason": "typo", "confirm": "yes"})
    assert r.status_code == 303
    new_id = int(r.headers["location"].split("/")[-1].split("?")[0])
    page = client.get(f"/ui/items/{new_id}")
    assert "Bergen" in page.text and "typo" in page.text and page.text.count("<li") >= 2
    confirm = client.get(f"/ui/items/{new_id}/delete?reason=gdpr")
    assert confirm.status_code == 200 and "2 versions" in confirm.text
    assert mem.get(new_id).is_current  # the confirm page deletes nothing
    r = client.post(f"/ui/items/{new_id}/delete", data={"csrf": csrf, "reason": ""})
    assert r.status_code == 400 and "reason" in r.text
    r = client.post(f"/ui/items/{new_id}/delete", data={"csrf": csrf, "reason": "gdpr"})
    assert r.status_code == 200
    text = re.sub(r"<[^>]+>", " ", r.text)
    assert f"Ids {iid}, {new_id}" in text and "no longer in the record" in text
    assert "Bergen" in text and "Oslo" in text  # phrase nodes only this chain mentioned
    assert "Carol moved to Bergen" in text  # a fact only it supported
    assert "STILL PRESENT" not in text
    assert text.count("QA pairs -&gt; gone") == 2  # both versions' Panini workspaces
    assert [a["op"] for a in mem.audit(new_id)][0] == "delete"
    assert mem.audit(new_id)[0]["reason"] == "gdpr"
    assert client.get(f"/ui/items/{new_id}").status_code == 404
    assert "Bergen" not in client.get("/ui/browse?namespace=acme&status=all").text


def test_forget_ttl_is_confirmed_and_confined(served: dict[str, Any]) -> None:
    client = _as(served, "acme")
    page = client.get("/ui/manage")
    assert 'value="ttl"' in page.text
    assert 'value="superseded"' not in page.text  # that policy is offered to admin keys only
    assert f"#{served['expired']}" not in page.text  # globex's expired item
    r = client.post("/ui/manage/forget", data={"csrf": _csrf(page.text), "policy": "ttl"})
    assert r.status_code == 400  # not confirmed
    r = client.post("/ui/manage/forget",
                    data={"csrf": _csrf(page.text), "policy": "superseded", "confirm": "yes"})
    assert r.status_code == 403
    assert 'value="superseded"' in _as(served, "admin").get("/ui/manage").text
    client = _as(served, "globex")
    page = client.get("/ui/manage")
    assert f"#{served['expired']}" in page.text
    r = client.post("/ui/manage/forget",
                    data={"csrf": _csrf(page.text), "policy": "ttl", "confirm": "yes"})
    assert r.status_code == 200 and "Forgot 1 item" in r.text and "expire" in r.text


def test_keyset_paging_and_filters(served: dict[str, Any]) -> None:
    client = _as(served, "admin")
    mem: Memory = served["app"].state.memkit.memory
    ids = mem.write_many([{"text": f"paging record number {i}", "source": f"bulk:{i % 3}",
                           "created_at": 1_600_000_000 + i * 86400}
                          for i in range(120)], scope={"namespace": "paging"}).added
    seen: list[int] = []
    url = "/ui/browse?namespace=paging&limit=50"
    pages = []
    while url:
        html = client.get(url).text
        page_ids = [int(x) for x in re.findall(r'href="/ui/items/(\d+)" data-rowlink', html)]
        pages.append(page_ids)
        seen += page_ids
        nxt = re.search(r'href="([^"]+)" rel="next"', html)
        url = nxt.group(1).replace("&amp;", "&") if nxt else ""
    assert [len(p) for p in pages] == [50, 50, 20]
    assert seen == sorted(ids, reverse=True)
    html = client.get(f"/ui/browse?namespace=paging&limit=50&before={pages[1][-1]}").text
    prev = re.search(r'href="([^"]+)" rel="prev"', html)
    assert prev is not None
    back = client.get(prev.group(1).replace("&amp;", "&")).text
    assert [int(x) for x in re.findall(r'/ui/items/(\d+)" data-rowlink', back)] == pages[1]

    def rows(query: str) -> list[int]:
        html = client.get(f"/ui/browse?namespace=paging&limit=200&{query}").text
        return [int(x) for x in re.findall(r'/ui/items/(\d+)" data-rowlink', html)]

    assert len(rows("source=bulk:1")) == 40
    assert rows("q=number 7") == sorted([ids[i] for i in range(120)
                                         if "number 7" in f"paging record number {i}"],
                                        reverse=True)
    assert rows("q=100%25") == []  # % is a literal, not a wildcard
    # 2020-09-13 is day 0 (created_at 1_600_000_000); days 2..4 inclusive
    assert rows("since=2020-09-15&until=2020-09-17") == [ids[4], ids[3], ids[2]]
    mem.update(ids[0], "paging record number 0, corrected")
    assert rows("status=superseded") == [ids[0]]
    assert client.get("/ui/browse?status=bogus").status_code == 400
    assert client.get("/ui/browse?since=yesterday").status_code == 400
    assert client.get("/ui/browse?limit=100000").status_code == 400


def test_read_playground_columns(served: dict[str, Any]) -> None:
    client = _as(served, "acme")
    r = client.get("/ui/read?q=Where+does+Alice+live&mode=dense&mode=hipporag"
                   "&extra=dense,hipporag&k=3")
    assert r.status_code == 200
    assert r.text.count('class="column card"') == 3
    assert "latency" in r.text and "score" in r.text
    assert '<svg class="graph"' in r.text  # a hipporag graph hit has its neighbourhood
    r = client.get("/ui/read?q=Where+did+Alice+move&mode=panini")
    assert r.text.count('class="column card"') == 1 and "qa_pairs" in r.text
    assert "context for the reader" in r.text and "Alice moved to what?" in r.text
    r = client.get("/ui/read?q=Alice&mode=nosuchbackend")
    assert r.status_code == 200 and "not open in this memory" in r.text
    r = client.get("/ui/read?q=Alice&mode=dense|nosuchreranker")
    assert "nosuchreranker" in r.text and 'class="error"' in r.text


def _fake_run(root: Path, name: str, recall5: float, ms: float) -> None:
    run = root / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "dataset": {"name": "toy", "questions": 3, "corpus_items": 9, "corpus_hash": "h"},
        "backends": {"dense": {"recall": {"5": recall5}, "ndcg": {"5": 0.5},
                               "cost": {"read_ms_p50": ms}}}}))
    (run / "report.md").write_text(f"# {name}\n\n| a | b |\n|---|---|\n| <script> | 2 |\n")
    (run / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (run / "secret.txt").write_text("not served")


def test_eval_pages(served: dict[str, Any], tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_run(tmp_path, "run-a", 0.40, 20.0)
    _fake_run(tmp_path, "run-b", 0.55, 10.0)
    monkeypatch.setenv("MEMKIT_UI_EVALS", str(tmp_path))
    client = _as(served, "globex")
    listing = client.get("/ui/evals").text
    assert "run-a" in listing and "run-b" in listing
    page = client.get("/ui/evals/run-a")
    assert page.status_code == 200 and "&lt;script&gt;" in page.text and "<script> |" not in \
        page.text
    assert client.get("/ui/evals/run-a/files/plot.png").content.startswith(b"\x89PNG")
    for bad in ("/ui/evals/run-a/files/secret.txt", "/ui/evals/run-a/files/..%2Fmetrics.json",
                "/ui/evals/..%2F..", "/ui/evals/nope"):
        assert client.get(bad).status_code == 404, bad
    cmp = re.sub(r"\s+", " ", client.get("/ui/evals/compare?a=run-a&b=run-b").text)
    assert '<td>R@5</td><td class="num">40.0</td> <td class="num">55.0</td> ' \
           '<td class="num up">+15.0</td>' in cmp
    assert '<td class="num up">-10.0</td>' in cmp  # faster is better


def test_static_files_are_shipped(served: dict[str, Any]) -> None:
    client: TestClient = served["client"]
    assert "keydown" in client.get("/ui/static/ui.js").text
    assert client.get("/ui/static/ui.css").headers["content-type"].startswith("text/css")
    assert client.get("/ui/static/../routes.py").status_code == 404


def test_both_query_plans_give_the_same_pages(served: dict[str, Any]) -> None:
    from memkit.server.ui.queries import BrowseFilter, browse_page
    from memkit.types import Scope

    mem: Memory = served["app"].state.memkit.memory
    texts = [f"plan record {i}" for i in range(30)]
    ids = mem.write_many(texts, scope={"namespace": "plans"}).added
    scope = Scope(namespace="plans")
    cases = [(BrowseFilter(scope=scope), ids),
             (BrowseFilter(scope=scope, q="record 1", status="all"),
              [iid for iid, t in zip(ids, texts, strict=True) if "record 1" in t])]
    for filt, expected in cases:
        for scope_rows in (1, 10**9):  # the scope index, then the primary-key walk
            got, cursor = [], None
            while True:
                page = browse_page(mem, filt, before=cursor, limit=7, scope_rows=scope_rows)
                assert len(page.items) == 7 or page.older is None
                got += [it.id for it in page.items]
                if page.older is None:
                    break
                cursor = page.older
            assert got == sorted(expected, reverse=True), (filt.q, scope_rows)


def test_audit_page_is_confined(served: dict[str, Any]) -> None:
    mem: Memory = served["app"].state.memkit.memory
    gone = mem.write("Globex draft to be shredded.", scope={"namespace": "globex"})
    mem.delete([gone], reason="shredded")
    client = _as(served, "acme")
    page = client.get("/ui/audit?limit=1000").text
    assert f'href="/ui/items/{served["acme"][0]}"' in page
    for iid in served["globex"]:
        assert f'href="/ui/items/{iid}"' not in page
    assert "shredded" not in page and "Globex" not in page
    assert f"#{gone} " not in page
    client = _as(served, "admin")
    page = client.get("/ui/audit?op=delete").text
    assert f"#{gone} <span class=\"muted\">(removed)</span>" in page and "shredded" in page
    assert 'class="badge ok">write' not in page  # only delete rows
    assert client.get("/ui/audit?op=drop").status_code == 400


def test_read_as_of_shows_the_past(served: dict[str, Any]) -> None:
    import time

    mem: Memory = served["app"].state.memkit.memory
    old = mem.write("Dana lives in Rome.", scope={"namespace": "acme"})
    time.sleep(0.05)  # ordering only: the update's valid_from must be after `before`
    before = time.time()
    time.sleep(0.05)
    mem.update(old, "Dana lives in Milan.")
    client = _as(served, "acme")
    now = client.get("/ui/read?q=Where+does+Dana+live&mode=dense&k=1").text
    past = client.get(f"/ui/read?q=Where+does+Dana+live&mode=dense&k=1&as_of={before}").text
    assert "Dana lives in Milan." in now and "Dana lives in Rome." not in now
    assert "Dana lives in Rome." in past and "Dana lives in Milan." not in past
    assert client.get("/ui/read?q=x&as_of=last+week").status_code == 400


def test_probe_says_where_a_query_ranks_the_item(served: dict[str, Any]) -> None:
    client = _as(served, "acme")
    mem: Memory = served["app"].state.memkit.memory
    iid = mem.write("Erin keeps bees on the roof.", scope={"namespace": "acme"})
    html = re.sub(r"\s+", " ", client.get(f"/ui/items/{iid}?probe=Who+keeps+bees").text)
    for backend in ("dense", "hipporag", "panini"):
        assert re.search(rf"<tr><td>{backend}</td> <td><b>#\d+</b> of \d+</td>", html), backend
    new = mem.update(iid, "Erin keeps goats on the roof.")
    html = client.get(f"/ui/items/{iid}?probe=Who+keeps+bees").text
    assert "this version was superseded" in html
    assert html.count("not in the top 50") == 3  # no read returns a superseded version
    assert client.get(f"/ui/items/{new}?probe=goats").status_code == 200
