"""Fixtures of the fuzz suite (issue 15): a tally of cases and failures per target, a real
uvicorn server on 127.0.0.1 over a hash-embedder memory with tenant keys, and the example
budget.

Budget: ``MEMKIT_FUZZ_SCALE`` multiplies every test's ``max_examples`` (default 1: a few
thousand cases in well under a minute; ``benchmarks/faults.py`` runs 10k+). When
``MEMKIT_FUZZ_REPORT`` names a file, the tally is written there as JSON at the end of the
session (``benchmarks/faults.py`` reads it). Each case is classified, never stopped at: a
*failure* is an uncaught non-memkit exception, an HTTP 5xx, a malformed error body, or a
rejection that does not name a field.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SCALE = float(os.environ.get("MEMKIT_FUZZ_SCALE", "1"))
MAX_FAILURE_EXAMPLES = 5


@dataclass
class Target:
    cases: int = 0
    accepted: int = 0
    rejected: int = 0
    failures: int = 0
    examples: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.failures += 1
        if len(self.examples) < MAX_FAILURE_EXAMPLES:
            self.examples.append(what[:600])


class Tally:
    """Cases tried and failures found, per fuzz target."""

    def __init__(self) -> None:
        self.targets: dict[str, Target] = {}

    def __getitem__(self, name: str) -> Target:
        return self.targets.setdefault(name, Target())

    def as_dict(self) -> dict[str, Any]:
        return {n: t.__dict__ for n, t in sorted(self.targets.items())}


_TALLY = Tally()


@pytest.fixture(scope="session")
def tally() -> Iterator[Tally]:
    yield _TALLY
    report = os.environ.get("MEMKIT_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps(_TALLY.as_dict(), indent=1), encoding="utf-8")


@pytest.fixture(scope="session")
def budget() -> Callable[[int], int]:
    """``budget(n)``: the number of examples for a test whose default is ``n``."""
    return lambda n: max(1, int(n * SCALE))


@dataclass
class FuzzServer:
    url: str
    directory: Path
    keys: dict[str, str]
    app: Any
    server: Any
    thread: Any


def _start(directory: Path) -> FuzzServer:
    pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("mcp")
    from memkit import Memory
    from memkit.server.app import ServeSettings, create_app
    from memkit.server.auth import KeyStore

    Memory.open(directory, embedder="hash", durability="normal").close()
    keys = KeyStore.open(directory)
    made = {"acme": keys.create("acme")[0], "globex": keys.create("globex")[0],
            "acme_u1": keys.create("acme", user="u1")[0],
            "admin": keys.create(None, admin=True)[0]}
    keys.close()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(ServeSettings(memory_dir=directory, port=port, embedder="hash"))
    config = uvicorn.Config(app, log_config=None, access_log=False, log_level="critical",
                            lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("fuzz server did not start")
        time.sleep(0.02)
    return FuzzServer(f"http://127.0.0.1:{port}", directory, made, app, server, thread)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    """One server per module: state accumulates across cases, as on a real server."""
    srv = _start(tmp_path_factory.mktemp("fuzz") / "mem")
    yield srv
    srv.server.should_exit = True
    srv.thread.join(timeout=30)


# ---- strategies shared by the fuzz targets (drawn through ``data.draw(gen.X)``) ---------------
def _strategies() -> Any:
    from types import SimpleNamespace

    from hypothesis import strategies as st

    plain = st.text(max_size=40)
    surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
    with_surrogate = st.builds(lambda a, s, b: a + s + b, plain, surrogate, plain)
    control = st.builds(lambda a, c, b: a + c + b, plain,
                        st.sampled_from(["\x00", "\n", "\x1f", "\u2028", "\ufeff"]), plain)
    huge = st.sampled_from([10_001, 100_001, 300_000]).map(lambda n: "dense," * (n // 6))
    texts = st.one_of(plain, plain, st.sampled_from(["Alice moved to Paris.", "  ", ""]),
                      with_surrogate, control, huge)

    def nested(depth: int) -> Any:
        out: Any = 1
        for _ in range(depth):
            out = {"a": out}
        return out

    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                       st.floats(allow_nan=True, allow_infinity=True), texts,
                       st.sampled_from([10**400, -(10**400), 2**63, 2**64]))
    json_like = st.recursive(leaves, lambda ch: st.lists(ch, max_size=3)
                             | st.dictionaries(texts, ch, max_size=3), max_leaves=12)
    weird = st.one_of(leaves, st.binary(max_size=8), st.just(object()), st.just({1, 2}),
                      st.lists(leaves, max_size=3), st.dictionaries(plain, leaves, max_size=3),
                      st.integers(30, 3000).map(nested))
    metadata = st.one_of(st.fixed_dictionaries({"note": with_surrogate}),
                         st.dictionaries(with_surrogate, json_like, min_size=1, max_size=2),
                         st.dictionaries(texts, json_like, max_size=4),
                         st.integers(20, 3000).map(nested), weird, st.none())
    scope_value = st.one_of(st.none(), st.sampled_from(["acme", "u1", "u2", "default"]), texts,
                            weird)
    scope = st.one_of(st.none(), st.sampled_from(["acme", "default"]),
                      st.fixed_dictionaries({}, optional={
                          f: scope_value for f in ("namespace", "user", "agent", "session")}),
                      st.dictionaries(plain, scope_value, max_size=2), weird)
    k = st.one_of(st.integers(1, 10), st.integers(-5, 2000), st.sampled_from([10**9, 2**64]),
                  weird)
    ids = st.one_of(st.integers(-3, 40), st.lists(st.integers(-3, 40), max_size=5),
                    st.sampled_from([2**63, 2**70, -2**63]), weird)
    backend = st.one_of(st.none(), st.sampled_from(["dense", "dense,dense", "nope", ""]), huge,
                        st.lists(st.sampled_from(["dense", "x", ""]), max_size=40), weird)
    times = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                      st.integers(-2**70, 2**70), weird)
    record = st.one_of(texts, st.fixed_dictionaries({"text": texts}, optional={
        "scope": scope, "source": texts, "confidence": leaves, "ttl": times,
        "metadata": metadata, "created_at": times, "bogus": leaves}), weird)
    records = st.one_of(st.lists(record, max_size=6), texts, st.binary(max_size=5),
                        st.dictionaries(plain, leaves, max_size=2), weird)
    bad = SimpleNamespace(text=texts, weird=weird, metadata=metadata, scope=scope, k=k,
                          ids=ids, backend=backend, time=times, record=record,
                          records=records, number=leaves, policy=weird)
    # well-formed values: about half of all cases use only these, so that the accepted path
    # (writes, reads, updates, deletes of real items) is exercised as much as the rejections
    word = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                   min_size=1, max_size=30).filter(str.strip)
    good_text = st.one_of(word, st.sampled_from(
        ["Alice moved to Paris in 2021.", "Bob works at Fjord Logistics.", "Dana likes tea."]))
    safe_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                          st.floats(allow_nan=False, allow_infinity=False), word)
    good_meta = st.dictionaries(word, st.recursive(
        safe_leaf, lambda ch: st.lists(ch, max_size=3) | st.dictionaries(word, ch, max_size=3),
        max_leaves=8), max_size=4)
    good_scope = st.one_of(st.none(), st.sampled_from(["acme", "default"]), st.fixed_dictionaries(
        {}, optional={"user": st.sampled_from(["u1", "u2"]),
                      "session": st.sampled_from(["s1", "s2"])}))
    good_record = st.one_of(good_text, st.fixed_dictionaries({"text": good_text}, optional={
        "scope": good_scope, "source": word, "confidence": st.floats(0, 1),
        "ttl": st.floats(1, 1e6), "metadata": good_meta}))
    good = SimpleNamespace(
        text=good_text, weird=st.none(), metadata=st.one_of(st.none(), good_meta),
        scope=good_scope, k=st.integers(1, 20), ids=st.one_of(
            st.integers(1, 60), st.lists(st.integers(1, 60), min_size=1, max_size=4)),
        backend=st.one_of(st.none(), st.just("dense")),
        time=st.one_of(st.none(), st.floats(0, 3e9)), record=good_record,
        records=st.lists(good_record, max_size=6), number=st.floats(0, 1),
        policy=st.sampled_from(["ttl", "superseded"]))
    return SimpleNamespace(good=good, bad=bad)


class Fields:
    """Draws each field of one case. Modes: *valid* (every field well-formed), *one bad* (one
    field, chosen as the fields are drawn, hostile; so that the hostile value is the one the
    server has to handle) and *chaos* (every field well-formed or hostile). ``hostile`` is
    True for the last two."""

    def __init__(self, data: Any, gen: Any) -> None:
        from hypothesis import strategies as st

        self.data, self.gen, self.st = data, gen, st
        self.mode = data.draw(st.sampled_from(["valid", "one bad", "one bad", "chaos"]),
                              label="mode")
        self.hostile = self.mode != "valid"
        self._bad_left = 1 if self.mode == "one bad" else 0

    def __call__(self, kind: str, label: str) -> Any:
        good, bad = getattr(self.gen.good, kind), getattr(self.gen.bad, kind)
        if self.mode == "chaos":
            return self.data.draw(self.st.one_of(good, bad), label=label)
        if self._bad_left and self.data.draw(self.st.booleans(), label=f"{label} is bad"):
            self._bad_left = 0
            return self.data.draw(bad, label=label)
        return self.data.draw(good, label=label)

    def optional(self, **kinds: str) -> dict[str, Any]:
        """Some of these keyword arguments (name -> kind), each drawn as above."""
        present = self.data.draw(self.st.sets(self.st.sampled_from(sorted(kinds))),
                                 label="present")
        return {name: self(kinds[name], name) for name in sorted(present)}


@pytest.fixture(scope="session")
def fields() -> Any:
    """``fields(data)``: a :class:`Fields` drawer for one case."""
    gen = _strategies()
    return lambda data: Fields(data, gen)


@pytest.fixture(scope="session")
def gen() -> Any:
    """The fuzz strategies: texts (with lone surrogates, NULs, 300 KB strings), JSON-like and
    non-JSON values, deep nesting, scopes, ks, ids, backend specs, times, records."""
    return _strategies()
