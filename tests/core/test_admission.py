"""Bad input to the Python API is rejected with an InvalidInput naming the field, writes
nothing, and never crashes (issue 15, defect 8). Each case crashed or silently did something
else before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memkit import Memory
from memkit.admission import MAX_K, MAX_METADATA_DEPTH, check_metadata
from memkit.config import CONFIG_NAME
from memkit.embed import HashEmbedder
from memkit.errors import ConfigError, InvalidInput


@pytest.fixture
def mem(tmp_path: Path) -> Any:
    with Memory.open(tmp_path / "m", embedder=HashEmbedder(32)) as m:
        m.write("Alice moved to Paris in 2021.")
        yield m


def _nested(depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cur = out
    for _ in range(depth - 1):
        cur["a"] = {}
        cur = cur["a"]
    return out


LONE = "\ud800"


@pytest.mark.parametrize(("call", "field"), [
    (lambda m: m.write(f"bad {LONE} text"), "text"),
    (lambda m: m.write("ok text", metadata={"k": f"v{LONE}"}), r"metadata\['k'\]"),
    (lambda m: m.write("ok text", metadata={f"k{LONE}": 1}), "metadata key"),
    (lambda m: m.write("ok text", metadata={"k": [1, {"x": LONE}]}), r"metadata\['k'\]\[1\]"),
    (lambda m: m.write("ok text", source=f"chat{LONE}"), "source"),
    (lambda m: m.write("ok text", scope={"user": f"u{LONE}"}), "'user'"),
    (lambda m: m.read(f"where {LONE}"), "query"),
    (lambda m: m.update(1, f"new {LONE}"), "text"),
    (lambda m: m.update(1, "new text", reason=LONE), "reason"),
    (lambda m: m.delete([1], reason=f"r{LONE}"), "reason"),
])
def test_lone_surrogates_are_rejected_naming_the_field(mem: Memory, call: Any,
                                                       field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        call(mem)
    assert mem.stats()["items"] == 1 and mem.get(1).version == 1


def test_deeply_nested_metadata_is_rejected_not_a_recursion_error(mem: Memory) -> None:
    with pytest.raises(InvalidInput, match=f"nested deeper than {MAX_METADATA_DEPTH}"):
        mem.write("deep", metadata=_nested(100_000))
    with pytest.raises(InvalidInput, match="nested deeper"):
        lists: Any = 1
        for _ in range(MAX_METADATA_DEPTH):
            lists = [lists]
        mem.write("deep", metadata={"a": lists})
    ok = mem.write("shallow", metadata=_nested(MAX_METADATA_DEPTH))
    assert mem.get(ok).metadata == _nested(MAX_METADATA_DEPTH)


def test_metadata_size_and_value_bounds() -> None:
    with pytest.raises(InvalidInput, match="over the limit"):
        check_metadata({"blob": "x" * 200_000})
    with pytest.raises(InvalidInput, match="64 bits"):
        check_metadata({"n": 10**30})
    with pytest.raises(InvalidInput, match="finite"):
        check_metadata({"n": float("nan")})
    with pytest.raises(InvalidInput, match="non-string key"):
        check_metadata({"a": {1: 2}})
    import numpy as np

    assert check_metadata({"n": np.int64(3), "f": np.float32(0.5), "t": (1, 2)}) == \
        {"n": 3, "f": 0.5, "t": [1, 2]}


def test_k_is_bounded(mem: Memory) -> None:
    with pytest.raises(InvalidInput, match=f"k must be at most {MAX_K}"):
        mem.read("Alice", k=10**9)
    assert len(mem.read("Alice", k=MAX_K)) == 1


@pytest.mark.parametrize("ids", [None, 1.5, "12", b"1", {"a": 1}, [1, None], [True]])
def test_delete_needs_ints(mem: Memory, ids: Any) -> None:
    with pytest.raises(InvalidInput, match="ids"):
        mem.delete(ids)
    assert mem.stats()["items"] == 1


def test_a_huge_backend_field_is_rejected_quickly(mem: Memory) -> None:
    with pytest.raises(InvalidInput, match="backend"):
        mem.read("Alice", backend=",".join(["dense"] * 50_000))
    with pytest.raises(InvalidInput, match="backend"):
        mem.read("Alice", backend=["dense"] * 50_000)
    with pytest.raises(InvalidInput, match="backend"):
        mem.read("Alice", backend=3)  # type: ignore[arg-type]
    assert len(mem.read("Alice", backend="dense,dense")) == 1


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"as_of": "x"}, "as_of"), ({"as_of": float("nan")}, "as_of"), ({"as_of": 2**70}, "as_of"),
    ({"budget_tokens": "x"}, "budget_tokens"), ({"budget_tokens": 0}, "budget_tokens"),
    ({"rerank": 5}, "rerank"), ({"rerank_options": "x"}, "rerank_options"),
    ({"rerank_options": {"candidates": 10**9}}, "candidates"),
])
def test_read_options_are_checked(mem: Memory, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        mem.read("Alice", **kwargs)


def test_forget_with_a_non_time_now_deletes_nothing(mem: Memory) -> None:
    keep = mem.write("expires later", ttl=3600)
    for now in ("x", float("inf"), float("nan"), True, [1], 2**70):  # 2**70: SQLite overflow
        with pytest.raises(InvalidInput, match="now"):
            mem.forget(now=now)  # type: ignore[arg-type]
    assert mem.get(keep).text == "expires later"


@pytest.mark.parametrize("records", ["abc", b"abc", {"text": "abc"}, 5])
def test_write_many_refuses_what_is_not_a_list_of_records(mem: Memory, records: Any) -> None:
    with pytest.raises(InvalidInput, match="records"):
        mem.write_many(records)
    assert mem.stats()["items"] == 1


def test_write_many_reports_bad_records_and_checks_batch_size(mem: Memory) -> None:
    report = mem.write_many(["fine", f"bad{LONE}", {"text": "x", "metadata": _nested(50)}])
    assert len(report.added) == 1
    assert [w for w, _ in report.rejected] == ["record 1", "record 2"]
    with pytest.raises(InvalidInput, match="batch_size"):
        mem.write_many(["a"], batch_size="x")  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["ttl", "confidence", "created_at"])
def test_numbers_too_large_for_a_float_are_rejected(mem: Memory, field: str) -> None:
    report = mem.write_many([{"text": "t", field: 10**400}])
    assert report.rejected and report.rejected[0][1].startswith(field)
    with pytest.raises(InvalidInput, match="budget_tokens"):
        mem.read("q", budget_tokens=True)  # type: ignore[arg-type]


def test_created_at_must_be_finite(mem: Memory) -> None:
    report = mem.write_many([{"text": "t", "created_at": float("inf")},
                             {"text": "u", "created_at": 2**70}])
    assert [r[1].split()[0] for r in report.rejected] == ["created_at", "created_at"]


def test_scope_values_cannot_end_in_a_newline(mem: Memory) -> None:
    with pytest.raises(InvalidInput, match="'user'"):
        mem.write("x", scope={"user": "u1\n"})


def test_an_empty_memkit_toml_is_an_error_not_a_silent_switch(tmp_path: Path) -> None:
    d = tmp_path / "m"
    with Memory.open(d, embedder="hash", backends=["dense"]) as m:
        m.write("Alice moved to Paris in 2021.")
    (d / CONFIG_NAME).write_text("")
    with pytest.raises(ConfigError, match=CONFIG_NAME) as err:
        Memory.open(d)
    assert "backends or embedder" in str(err.value)
    (d / CONFIG_NAME).write_text('embedder = "hash"\n')
    with pytest.raises(ConfigError, match="no backends"):
        Memory.open(d)
    (d / CONFIG_NAME).write_text('embedder = "hash"\nbackends = ["dense"]\n')
    with Memory.open(d) as m:
        assert m.embedder.name.startswith("hash") and m.read("Alice", k=1)[0].id == 1


def test_cli_reports_bad_utf8_and_missing_files_cleanly(tmp_path: Path) -> None:
    d = str(tmp_path / "m")
    Memory.open(d, embedder="hash").close()
    env_cmd = [sys.executable, "-m", "memkit.cli"]
    out = subprocess.run([*env_cmd, "write", b"caf\xe9 \xff".decode("utf-8", "surrogateescape"),
                          "--memory", d], capture_output=True, text=True, errors="replace")
    # a usage error at the CLI edge (status 2), one line, naming the argument
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "'TEXT': is not valid UTF-8" in out.stderr
    out = subprocess.run([*env_cmd, "ingest", str(tmp_path / "missing.txt"), "--memory", d,
                          "--embedder", "hash"], capture_output=True, text=True)
    assert out.returncode == 2 and "does not exist" in out.stderr, out.stderr
