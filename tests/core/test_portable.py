"""Export / import: the round trip is lossless modulo ids and version times, reads give the
same hits, malformed dumps are refused with the line, and the CLI streams both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.errors import InvalidInput
from memkit.portable import export_lines, import_lines

NAMES = ["Alice", "Bob", "Carol", "Port Blair", "Paris", "Lisbon"]
VERBS = ["moved to", "works in", "visited", "is the capital of", "lives near"]
QUERIES = ["Where did Alice move?", "Who works in Paris?", "Port Blair capital",
           "Lisbon visited by Carol", "lives near Bob"]


def open_mem(path: Path | None, backends: list[str], **extra: Any) -> Memory:
    options: dict[str, Any] = {"hipporag": {"extractor": "rules"}}
    options.update(extra.pop("backend_options", {}))
    return Memory.open(path, backends=backends, embedder=HashEmbedder(64),
                       backend_options={k: v for k, v in options.items() if k in backends},
                       **extra)


texts = st.builds(lambda a, v, b: f"{a}\n{a} {v} {b}.", st.sampled_from(NAMES),
                  st.sampled_from(VERBS), st.sampled_from(NAMES))
ops = st.lists(st.one_of(
    st.tuples(st.just("write"), texts, st.sampled_from([None, "u1", "u2"]),
              st.sampled_from([None, "chat:1"]), st.dictionaries(
                  st.sampled_from(["topic", "n"]), st.integers(0, 3), max_size=2)),
    st.tuples(st.just("update"), st.integers(0, 50), texts),
    st.tuples(st.just("delete"), st.integers(0, 50)),
), min_size=1, max_size=14)


def apply(mem: Memory, program: list[tuple[Any, ...]]) -> None:
    live: list[int] = []
    for op in program:
        try:
            if op[0] == "write":
                _, text, user, source, meta = op
                iid = mem.write(text, scope={"user": user}, source=source,
                                metadata=meta, confidence=0.5 + len(text) % 5 / 10)
                if iid not in live:  # the same text again in one scope is the same item
                    live.append(iid)
            elif live and op[0] == "update":
                i = op[1] % len(live)
                live[i] = mem.update(live[i], op[2], metadata={"edited": True})
            elif live and op[0] == "delete":
                mem.delete([live.pop(op[1] % len(live))])
        except InvalidInput:
            pass  # e.g. an update to a text another current item already has


def normalised(lines: list[str]) -> list[dict[str, Any]]:
    """The dump with ids renumbered in order of appearance and, for versions after the
    first, the version times (which an import sets) reduced to 'is it current'."""
    ids: dict[int, int] = {}
    out = []
    for line in lines:
        rec = json.loads(line)
        if rec["type"] == "header":
            rec.pop("exported_at")
        if rec["type"] == "version":
            for key in ("id", "root_id", "supersedes"):
                if rec[key] is not None:
                    rec[key] = ids.setdefault(rec[key], len(ids))
            rec["current"] = rec.pop("valid_until") is None
            if rec["version"] > 1:
                rec.pop("valid_from")
        out.append(rec)
    return out


def reads(mem: Memory, backends: list[str]) -> list[list[tuple[str, float]]]:
    out = []
    for backend in [*backends, ",".join(backends)]:
        for q in QUERIES:
            out.append([(h.text, round(h.score, 5))
                        for h in mem.read(q, k=4, backend=backend).hits])
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=ops)
def test_round_trip_is_identical_modulo_ids_and_reads_agree(program: list[Any]) -> None:
    backends = ["dense", "hipporag"]
    with open_mem(None, backends) as src:
        apply(src, program)
        first = list(export_lines(src))
        with open_mem(None, backends) as dst:
            report = import_lines(dst, first)
            second = list(export_lines(dst))
            assert normalised(second) == normalised(first)
            assert report.versions == src.stats()["versions"] == dst.stats()["versions"]
            assert reads(dst, backends) == reads(src, backends)


@pytest.mark.realmodel
def test_round_trip_with_panini_parse_writer(tmp_path: Path) -> None:
    """Panini's LLM-free writer needs the spaCy model, hence realmodel."""
    backends = ["dense", "hipporag", "panini"]
    program: list[Any] = [
        ("write", "Alice\nAlice moved to Paris.", "u1", None, {}),
        ("write", "Paris\nParis is the capital of France.", None, None, {"n": 1}),
        ("write", "Bob\nBob works in Lisbon.", "u2", "chat:1", {}),
        ("update", 0, "Alice\nAlice moved to Lisbon."),
        ("delete", 2),
    ]
    extra = {"backend_options": {"panini": {"writer": "parse", "min_score": 0.0}}}
    with open_mem(tmp_path / "a", backends, **extra) as src:
        apply(src, program)
        first = list(export_lines(src))
        with open_mem(tmp_path / "b", backends, **extra) as dst:
            import_lines(dst, first)
            assert normalised(list(export_lines(dst))) == normalised(first)
            assert reads(dst, backends) == reads(src, backends)
            assert dst.read("Where did Alice move?", k=1, backend="panini").hits


def test_deleted_items_are_absent_and_audit_is_optional() -> None:
    with open_mem(None, ["dense"]) as mem:
        keep = mem.write("kept")
        gone = mem.write("gone")
        mem.update(keep, "kept, edited")
        mem.delete([gone])
        lines = [json.loads(x) for x in export_lines(mem)]
        assert [r["text"] for r in lines if r["type"] == "version"] == ["kept", "kept, edited"]
        assert lines[-1] == {"type": "end", "versions": 2, "audit": 0}
        audited = [json.loads(x) for x in export_lines(mem, audit=True)]
        ops = [r["op"] for r in audited if r["type"] == "audit"]
        assert ops == ["write", "write", "update", "delete"]
        with open_mem(None, ["dense"]) as dst:
            report = import_lines(dst, [json.dumps(r) for r in audited])
            assert report.audit_rows_not_replayed == 4 and report.chains == 1


def test_import_into_a_non_empty_memory_maps_duplicates_to_the_existing_item() -> None:
    with open_mem(None, ["dense"]) as src, open_mem(None, ["dense"]) as dst:
        src.write("shared", scope={"user": "u1"})
        src.write("only in src")
        existing = dst.write("shared", scope={"user": "u1"})
        report = import_lines(dst, list(export_lines(src)))
        assert report.id_map[1] == existing and dst.stats()["items"] == 2


@pytest.mark.parametrize("lines, message", [
    ([], "line 1: the dump is empty"),
    (['{"type": "header", "schema": "other"}'], "line 1: not a memkit export"),
    (['{"type": "header", "schema": "memkit.export", "schema_version": 99}'], "newer"),
    (['{"type": "header", "schema": "memkit.export", "schema_version": 1}', "{oops"],
     "line 2: not JSON"),
    (['{"type": "header", "schema": "memkit.export", "schema_version": 1}',
      '{"type": "version", "id": 1}'], r"line 2: version record lacks \['text'"),
    (['{"type": "header", "schema": "memkit.export", "schema_version": 1}'],
     "truncated"),
    (['{"type": "header", "schema": "memkit.export", "schema_version": 1}',
      '{"type": "end", "versions": 3}'], "counts 3 versions"),
])
def test_malformed_dumps_are_refused_naming_the_line(lines: list[str], message: str) -> None:
    with open_mem(None, ["dense"]) as mem:
        with pytest.raises(InvalidInput, match=message):
            import_lines(mem, lines)
        assert mem.stats()["items"] == 0


def test_cli_export_import_streams(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "A", embedder="hash", backends=["dense"]) as mem:
        first = mem.write("Alice moved to Paris.", scope={"user": "u1"}, metadata={"k": 1})
        mem.update(first, "Alice moved to Lyon.")
        mem.write("Bob likes tea.")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "memkit.cli"]
    out = subprocess.run([*cmd, "export", "--memory", str(tmp_path / "A")], env=env,
                         capture_output=True, text=True, check=True).stdout
    (tmp_path / "dump.jsonl").write_text(out, encoding="utf-8")
    r = subprocess.run([*cmd, "import", str(tmp_path / "dump.jsonl"), "--memory",
                        str(tmp_path / "B")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "imported 3 versions of 2 items" in r.stdout
    with Memory.open(tmp_path / "B") as mem:
        assert mem.config.embedder in ("hash", "hash:256")  # the dump's (same model)
        hit = mem.read("Where did Alice move?", k=1, scope={"user": "u1"})[0]
        assert hit.text == "Alice moved to Lyon." and hit.item.metadata == {"k": 1}
        assert [v.text for v in mem.versions(hit.id)] == ["Alice moved to Paris.",
                                                          "Alice moved to Lyon."]
    bad = subprocess.run([*cmd, "import", "-", "--memory", str(tmp_path / "C")], env=env,
                         input="not json\n", capture_output=True, text=True)
    assert bad.returncode == 1 and "line 1: not JSON" in bad.stderr
