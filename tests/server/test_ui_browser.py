"""The inspector in a real browser: Playwright driving Debian's Chromium against a live
``memkit serve`` process on 127.0.0.1.

Log in with a key, browse and search, open an item, run a read in two modes side by side,
delete an item and see it gone; a second key never sees the first tenant's items in any page
or response the browser receives. Set ``MEMKIT_UI_SCREENSHOTS=DIR`` to also save a PNG of each
page (how docs/ui/ was made).

Needs ``pip install playwright`` and ``apt-get install -y chromium`` (``/usr/bin/chromium``, or
``MEMKIT_CHROMIUM=PATH``); skipped, saying which is missing, otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memkit import Memory
from memkit.server.auth import KeyStore

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("MEMKIT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ACME = ["Alice moved to Paris in 2021.", "Paris is the capital of France.",
        "Bob works at Acme Corp in Berlin.", "Alice is a friend of Bob.",
        "The quarterly plan is due on Friday."]
GLOBEX = ["Globex keeps its launch codes in Zurich.", "Hank Scorpio founded Globex."]

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set "
                "MEMKIT_CHROMIUM)", allow_module_level=True)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("ui") / "mem"
    with Memory.open(directory, embedder="hash", backends=["dense", "hipporag"]) as mem:
        ids = [mem.write(t, scope={"namespace": "acme", "user": "u1"}, source=f"chat:{i}")
               for i, t in enumerate(ACME)]
        mem.update(ids[0], "Alice moved to Lyon in 2024.", reason="she moved again")
        for t in GLOBEX:
            mem.write(t, scope={"namespace": "globex"}, source="wiki")
    keys = KeyStore.open(directory)
    acme, _ = keys.create("acme", name="acme")
    globex, _ = keys.create("globex", name="globex")
    keys.close()
    port = _port()
    log = directory.parent / "serve.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", MEMKIT_UI_EVALS=str(REPO / "evals" / "results"))
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memkit.server", "serve", "--memory", str(directory),
             "--port", str(port), "--embedder", "hash", "--no-mcp", "--log-level", "warning"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.time() < deadline, "server did not start"
        time.sleep(0.1)
    try:
        yield {"url": url, "acme": acme, "globex": globex, "ids": ids}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


class Tab:
    """A browser context that records every response body it receives."""

    def __init__(self, browser: Any, url: str) -> None:
        self.url = url
        self.context = browser.new_context(viewport={"width": 1366, "height": 860})
        self.page = self.context.new_page()
        self.bodies: list[tuple[str, str]] = []
        self.page.on("response", self._record)
        self.shots = os.environ.get("MEMKIT_UI_SCREENSHOTS")

    def _record(self, response: Any) -> None:
        kind = response.headers.get("content-type", "")
        if kind.startswith(("text/", "application/json")):
            try:
                self.bodies.append((response.url, response.text()))
            except Exception:  # a redirect has no body
                pass

    def go(self, path: str) -> Any:
        return self.page.goto(self.url + path)

    def login(self, key: str) -> None:
        self.go("/ui/")
        assert "/ui/login" in self.page.url
        self.page.fill("#key", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/ui/browse.*"))

    def shot(self, name: str, full: bool = False) -> None:
        if self.shots:
            Path(self.shots).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(self.shots) / f"{name}.png"), full_page=full)

    def saw(self, text: str) -> list[str]:
        return [u for u, body in self.bodies if text in body]

    def close(self) -> None:
        self.context.close()


def test_scenario_login_browse_item_read_delete(live: dict[str, Any], browser: Any) -> None:
    tab = Tab(browser, live["url"])
    tab.go("/ui/login")
    tab.shot("login")
    tab.login(live["acme"])
    page = tab.page
    rows = page.locator("table.items tbody tr")
    assert rows.count() == len(ACME)  # current versions only (the update superseded one)
    assert "Lyon" in page.inner_text("table.items")
    tab.shot("browse")

    page.keyboard.press("?")  # the shortcut help opens and closes
    assert page.is_visible("#help")
    page.keyboard.press("Escape")
    assert not page.is_visible("#help")
    page.keyboard.press("/")  # focuses the search box
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("Paris")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*q=Paris.*"))
    assert rows.count() == 1 and "capital of France" in rows.first.inner_text()

    # keyboard: j selects the first row, Enter opens it
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/ui/items/\d+$"))
    assert "Paris is the capital of France." in page.inner_text(".itemtext")
    assert "hipporag" in page.inner_text("main") and "dense" in page.inner_text("main")

    # the updated item: two versions on the timeline, and the audit rows of both
    tab.go(f"/ui/items/{live['ids'][-1] + 1}")  # the new version the update wrote
    assert page.locator("ol.timeline li").count() == 2
    assert "she moved again" in page.inner_text("table.audit")
    page.fill("input[name=probe]", "Where does Alice live?")  # would this query find it?
    page.press("input[name=probe]", "Enter")
    page.wait_for_url(re.compile(r".*probe=.*"))
    assert page.locator("#probe tbody tr").count() == 2  # dense, hipporag: a rank each
    assert "not in the top" not in page.inner_text("#probe")
    tab.shot("item", full=True)

    # read playground: two modes side by side, with scores and evidence
    tab.go("/ui/read")
    page.fill("#q", "Where does Alice live?")
    for box in page.locator("input[name=mode]").all():
        box.uncheck()
    page.check("input[name=mode][value=dense]")
    page.check("input[name=mode][value=hipporag]")
    page.click("form[role=search] button[type=submit]")
    page.wait_for_url(re.compile(r".*q=Where.*"))
    columns = page.locator("section.column")
    assert columns.count() == 2
    assert [c.locator("h2").inner_text() for c in columns.all()] == ["dense", "hipporag"]
    for col in columns.all():
        assert col.locator("ol.hits li").count() >= 1
        assert "latency" in col.inner_text()
    graphs = page.locator("details.graphbox")
    assert graphs.count() >= 1
    graphs.first.locator("summary").click()
    assert graphs.first.locator("svg.graph circle").count() >= 2
    tab.shot("read", full=True)

    # delete one item, confirmed, and see it gone
    target = live["ids"][2]  # Bob works at Acme Corp in Berlin.
    tab.go(f"/ui/items/{target}")
    page.fill("#dreason", "user asked to forget their employer")
    page.click("text=Review delete")
    page.wait_for_url(re.compile(rf".*/ui/items/{target}/delete.*"))
    tab.shot("delete_confirm")
    page.click("#confirm-delete")
    page.wait_for_selector("text=What was removed from each index")
    text = page.inner_text("main")
    assert f"Ids {target}" in text and "no longer in the record" in text
    assert "Acme Corp" in text  # the phrase/fact nodes only this item supported
    tab.shot("deleted", full=True)
    tab.go("/ui/browse")
    assert "Acme Corp in Berlin" not in page.inner_text("main")
    assert tab.go(f"/ui/items/{target}").status == 404

    for path, name in [("/ui/manage", "manage"), ("/ui/audit", "audit"), ("/ui/evals", "evals"),
                       ("/ui/evals/compare?a=musique-200-dense&b=musique-200-dense-vs-hipporag",
                        "eval_compare")]:
        assert tab.go(path).status == 200
        tab.shot(name, full=name == "eval_compare")
    for secret in GLOBEX:
        assert tab.saw(secret) == []
    tab.close()


def test_second_key_never_sees_first_tenant(live: dict[str, Any], browser: Any) -> None:
    tab = Tab(browser, live["url"])
    tab.login(live["globex"])
    page = tab.page
    assert page.locator("table.items tbody tr").count() == len(GLOBEX)
    for item_id in live["ids"]:
        assert tab.go(f"/ui/items/{item_id}").status == 404
        assert tab.go(f"/ui/items/{item_id}/delete?reason=x").status == 404
    tab.go("/ui/read?q=Where+does+Alice+live&mode=dense&mode=hipporag&mode=dense,hipporag")
    assert page.locator("section.column").count() == 3
    tab.go("/ui/browse?q=Alice&status=all")
    assert page.locator("table.items tbody tr").count() == 0
    assert tab.go("/ui/browse?namespace=acme").status == 403
    tab.go("/ui/manage")
    tab.go("/ui/audit?limit=1000")
    assert page.locator("table.items tbody tr").count() == len(GLOBEX)  # their writes only
    for words in [*ACME, "Lyon", "Acme Corp", "quarterly", "capital of France", "friend"]:
        assert tab.saw(words) == [], words  # (the query itself, "Alice", is echoed back)
    tab.close()
