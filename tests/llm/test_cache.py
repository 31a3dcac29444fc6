"""CachedLLM on real SQLite files: hits, misses, persistence, sharing, threads."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pydantic
import pytest
import sqlite_utils

from memkit.errors import ConfigError, InvalidInput
from memkit.llm import CachedLLM, Completion, GenParams, ScriptedLLM, cache_key


class Entities(pydantic.BaseModel):
    named_entities: list[str]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., CachedLLM]]:
    """Build caches on files under tmp_path, closed at teardown (no leaked connections)."""
    made: list[CachedLLM] = []

    def build(inner: ScriptedLLM, name: str = "c.db") -> CachedLLM:
        made.append(CachedLLM(inner, tmp_path / name))
        return made[-1]

    yield build
    for llm in made:
        llm.close()


@pytest.fixture
def inner() -> ScriptedLLM:
    return ScriptedLLM({r"capital": "Paris", r"entities": '{"named_entities": ["A"]}'})


def test_second_identical_call_is_a_hit(tmp_path: Path, inner: ScriptedLLM) -> None:
    with CachedLLM(inner, tmp_path / "c.db") as llm:
        first = llm.complete("capital of France?")
        second = llm.complete("capital of France?")
    assert (first.text, second.text) == ("Paris", "Paris")
    assert (first.cached, second.cached) == (False, True)
    assert len(inner.calls) == 1
    assert (second.prompt_tokens, second.completion_tokens) == (
        first.prompt_tokens,
        first.completion_tokens,
    )
    assert (llm.usage.calls, llm.usage.cached_calls) == (1, 1)
    assert llm.usage.prompt_tokens == first.prompt_tokens  # hits add no tokens
    assert inner.usage.calls == 1


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.5},
        {"max_tokens": 100},
        {"stop": ["\n"]},
        {"seed": 1},
        {"seed": None},
    ],
)
def test_different_params_miss(
    make: Callable[..., CachedLLM], inner: ScriptedLLM, change: dict
) -> None:
    llm = make(inner)
    llm.complete("capital?")
    assert not llm.complete("capital?", **change).cached
    assert llm.complete("capital?", **change).cached
    assert len(inner.calls) == 2


def test_different_messages_or_model_miss(make: Callable[..., CachedLLM]) -> None:
    a = make(ScriptedLLM({"capital": "Paris"}, model="m1"))
    b = make(ScriptedLLM({"capital": "Paris"}, model="m2"))
    a.complete("capital?")
    with_system = [{"role": "system", "content": "s"}, {"role": "user", "content": "capital?"}]
    assert not a.complete(with_system).cached
    assert not b.complete("capital?").cached  # same prompt, other model
    assert len(a) == 3


def test_survives_reopen(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with CachedLLM(ScriptedLLM({"capital": "Paris"}), db) as llm:
        llm.complete("capital?")
    fresh_inner = ScriptedLLM({})  # would raise if called
    with CachedLLM(fresh_inner, db) as llm2:
        out = llm2.complete("capital?")
    assert out.text == "Paris" and out.cached and fresh_inner.calls == []


def test_row_layout_and_key(tmp_path: Path, inner: ScriptedLLM) -> None:
    db_path = tmp_path / "c.db"
    with CachedLLM(inner, db_path) as llm:
        llm.complete("capital?", max_tokens=7)
    db = sqlite_utils.Database(db_path)
    rows = list(db["llm_cache"].rows)
    db.close()
    assert len(rows) == 1
    row = rows[0]
    canonical = json.dumps(
        {
            "messages": [{"content": "capital?", "role": "user"}],
            "model": "scripted",
            "params": {"max_tokens": 7, "seed": 0, "stop": [], "temperature": 0.0},
        },
        separators=(",", ":"),
    )
    assert row["request"] == canonical
    assert row["key"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert row["key"] == cache_key(
        "scripted", [{"role": "user", "content": "capital?"}], GenParams(max_tokens=7)
    )
    assert (row["text"], row["model"]) == ("Paris", "scripted")
    assert row["prompt_tokens"] == 6 and row["completion_tokens"] == 1  # approx_tokens("Paris")
    assert row["created_at"].endswith("+00:00")


def test_constrained_calls_key_on_the_schema(
    make: Callable[..., CachedLLM], inner: ScriptedLLM
) -> None:
    llm = make(inner)
    assert llm.complete_json("entities?", Entities).named_entities == ["A"]
    assert llm.complete_json("entities?", Entities).named_entities == ["A"]
    assert not llm.complete("entities?").cached  # unconstrained: a different request
    assert len(inner.calls) == 2
    assert inner.calls[0].json_schema is Entities  # the schema reaches the inner backend


def test_duplicates_in_one_batch_cost_one_call(
    make: Callable[..., CachedLLM], inner: ScriptedLLM
) -> None:
    llm = make(inner)
    out = llm.complete_many(["capital?", "entities?", "capital?"])
    assert [c.text for c in out] == ["Paris", '{"named_entities": ["A"]}', "Paris"]
    assert [c.cached for c in out] == [False, False, True]
    assert len(inner.calls) == 2
    # and the inner backend got one batch of the two distinct prompts
    assert inner.usage.calls == 2


def test_shares_an_open_sqlite_utils_database(tmp_path: Path, inner: ScriptedLLM) -> None:
    db = sqlite_utils.Database(tmp_path / "memory.db")
    db.table("items").insert({"id": 1, "text": "x"}, pk="id")
    llm = CachedLLM(inner, db)
    llm.complete("capital?")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db["llm_cache"].count == 1 and db["items"].count == 1
    # a second connection (another process, say) sees the committed row
    other = sqlite3.connect(tmp_path / "memory.db")
    assert other.execute("SELECT text FROM llm_cache").fetchall() == [("Paris",)]
    other.close()
    CachedLLM(inner, db).close()  # CREATE TABLE IF NOT EXISTS: opening again is fine
    llm.close()  # leaves the shared connection open
    assert db["items"].count == 1
    db.close()


def test_joins_an_open_transaction_of_a_shared_connection(
    tmp_path: Path, inner: ScriptedLLM
) -> None:
    conn = sqlite3.connect(tmp_path / "m.db")
    llm = CachedLLM(inner, conn)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    assert conn.in_transaction
    llm.complete("capital?")
    assert conn.in_transaction  # the cache did not commit the caller's transaction
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM llm_cache").fetchone()[0] == 0
    conn.close()


def test_thread_safety_smoke(tmp_path: Path) -> None:
    inner = ScriptedLLM({r"q(\d+)": lambda p: f"a{p[1:]}"})
    db = sqlite_utils.Database(tmp_path / "memory.db")  # shared, created in this thread
    llm = CachedLLM(inner, db)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(40):
                n = (i + offset) % 20
                assert llm.complete(f"q{n}").text == f"a{n}"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 5,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(llm) == 20
    assert llm.usage.calls + llm.usage.cached_calls == 160
    # each distinct prompt reaches the model at least once and rarely twice (races allowed)
    assert 20 <= len(inner.calls) <= 40
    llm.close()
    db.close()


def test_bad_arguments(tmp_path: Path, inner: ScriptedLLM) -> None:
    with pytest.raises(InvalidInput):
        CachedLLM(inner, tmp_path / "c.db", table="x; DROP TABLE y")
    with pytest.raises(InvalidInput):
        CachedLLM(inner, 42)


def _in_thread(fn: Callable[[], object]) -> object:
    box: list[object] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            box.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return box[0]


def test_in_memory_databases_across_threads(inner: ScriptedLLM) -> None:
    # a path of ":memory:" gives the cache its own cross-thread connection
    with CachedLLM(inner, ":memory:") as own:
        own.complete("capital?")
        got = _in_thread(lambda: own.complete("capital?"))
        assert isinstance(got, Completion) and got.cached
    # a caller's same-thread-only in-memory database cannot be shared with other threads
    db = sqlite_utils.Database(memory=True)
    shared = CachedLLM(inner, db)
    err = _in_thread(lambda: shared.complete("capital?"))
    assert isinstance(err, ConfigError) and "check_same_thread" in str(err)
    db.close()
