"""Hypothesis fuzzing of the Python API (issue 15): random calls of every public Memory method
with valid, malformed and hostile arguments against one real memory (SQLite file + faiss,
hash embedder). Every call either succeeds or raises a MemkitError whose message names one of
the call's fields; nothing else escapes; afterwards the memory is intact and still works."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.errors import MemkitError, NotFound

SCALE = float(os.environ.get("MEMKIT_FUZZ_SCALE", "1"))

# the words a rejection of each method may use to name what was wrong
FIELDS = {
    "write": ("text", "scope", "source", "confidence", "ttl", "metadata"),
    "write_many": ("records", "record", "batch_size"),
    "read": ("query", "k", "scope", "backend", "as_of", "budget_tokens", "rerank"),
    "get": ("id", "scope"),
    "versions": ("id", "scope"),
    "update": ("id", "text", "reason", "metadata", "confidence", "source", "scope",
               "superseded", "identical"),
    "delete": ("id", "reason", "scope"),
    "forget": ("policy", "now", "scope"),
    "stats": ("scope",),
}


def _call(mem: Memory, data: Any, fields: Any) -> tuple[str, Any]:
    """One random call: (method name, a thunk). Everything is drawn before the call."""
    op = data.draw(st.sampled_from(sorted(FIELDS)), label="op")
    f = fields(data)
    if op == "write":
        text = f("text", "text")
        kw = f.optional(scope="scope", source="text", confidence="number", ttl="time",
                        metadata="metadata")
        return op, lambda: mem.write(text, **kw)
    if op == "write_many":
        records = f("records", "records")
        kw = f.optional(scope="scope", batch_size="k")
        if data.draw(st.booleans(), label="as generator") and isinstance(records, list):
            records = (r for r in records)
        return op, lambda: mem.write_many(records, **kw)
    if op == "read":
        query = f("text", "query")
        kw = f.optional(k="k", scope="scope", backend="backend", as_of="time",
                        budget_tokens="k")
        return op, lambda: mem.read(query, **kw)
    if op in ("get", "versions"):
        iid, kw = f("ids", "id"), f.optional(scope="scope")
        if isinstance(iid, list) and not f.hostile:
            iid = iid[0]
        return op, lambda: getattr(mem, op)(iid, **kw)
    if op == "update":
        iid, text = f("ids", "id"), f("text", "text")
        if isinstance(iid, list) and not f.hostile:
            iid = iid[0]
        kw = f.optional(reason="text", metadata="metadata", confidence="number", source="text",
                        scope="scope")
        return op, lambda: mem.update(iid, text, **kw)
    if op == "delete":
        ids, kw = f("ids", "ids"), f.optional(reason="text", scope="scope")
        return op, lambda: mem.delete(ids, **kw)
    if op == "forget":
        policy, kw = f("policy", "policy"), f.optional(now="time", scope="scope")
        return op, lambda: mem.forget(policy, **kw)
    kw = f.optional(scope="scope")
    return op, lambda: mem.stats(**kw)


def _classify(op: str, fn: Any, target: Any) -> None:
    target.cases += 1
    try:
        fn()
    except MemkitError as exc:
        target.rejected += 1
        message = str(exc)
        if not isinstance(exc, NotFound) and not any(f in message for f in FIELDS[op]):
            target.fail(f"{op}: {type(exc).__name__} names no field: {message!r}")
    except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer is looking for
        target.fail(f"{op}: uncaught {type(exc).__name__}: {exc!r}"[:600])
    else:
        target.accepted += 1


def _check_intact(mem: Memory) -> None:
    """The record is consistent and the memory still reads and writes."""
    assert mem.store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for item in mem.store.iter_items(current_only=False):
        item.text.encode("utf-8")  # nothing unencodable got in
    iid = mem.write("The fuzz sentinel lives in Trondheim harbour.", scope="sentinel-ns")
    assert mem.read("fuzz sentinel Trondheim", k=1, scope="sentinel-ns").ids == [iid]
    assert mem.stats()["items"] >= 1


def _run(tmp_path: Path, fields: Any, tally: Any, name: str, examples: int) -> None:
    target = tally[name]
    with Memory.open(tmp_path / "m", embedder=HashEmbedder(32), durability="normal") as mem:
        mem.write_many([f"seed memory number {i} about harbours" for i in range(10)])

        @seed(20261201)
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def run(data: Any) -> None:
            op, fn = _call(mem, data, fields)
            _classify(op, fn, target)

        run()
        _check_intact(mem)
    assert target.failures == 0, target.examples


def test_python_api_fuzz(tmp_path: Path, fields: Any, tally: Any) -> None:
    _run(tmp_path, fields, tally, "python api", int(1200 * SCALE))


@pytest.mark.slow
def test_python_api_fuzz_long(tmp_path: Path, fields: Any, tally: Any) -> None:
    _run(tmp_path, fields, tally, "python api (long)", int(10_000 * SCALE))
