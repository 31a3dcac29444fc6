"""memkit.Client: the same method names and return types as Memory, and the same answers as
an embedded Memory given the same writes (hash embedder: deterministic)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from memkit import InvalidInput, Memory, NotFound, ScopeViolation
from memkit.client import AuthError, Client, ServerError
from memkit.types import Hit, MemoryItem, ReadResult, WriteReport

SHARED = ["write", "put", "write_many", "read", "answer", "get", "versions", "update", "delete",
          "forget", "stats", "close", "remember", "revert"]

if TYPE_CHECKING:
    from conftest import Served


def test_client_has_the_memory_methods_with_compatible_signatures() -> None:
    for name in SHARED:
        assert callable(getattr(Client, name)), name
        mem_params = inspect.signature(getattr(Memory, name)).parameters
        cli_params = inspect.signature(getattr(Client, name)).parameters
        # every positional parameter of Memory's method is accepted, in the same order
        positional = [p for p in mem_params.values()
                      if p.kind == p.POSITIONAL_OR_KEYWORD]
        assert [p.name for p in positional] == [
            p.name for p in cli_params.values() if p.kind == p.POSITIONAL_OR_KEYWORD], name


DOCS = ["Alice moved to Paris in 2021.", "Bob's favourite colour is green.",
        "The quarterly review is on Friday.", "Alice's cat is called Miso.",
        "Carol leads the data platform team."]


def test_client_answers_like_the_embedded_memory(served: Served, tmp_path: Path) -> None:
    with Memory.open(tmp_path / "local", embedder="hash") as local, \
            Client(served.url, served.keys["admin"]) as remote:
        for mem in (local, remote):
            ids = [mem.write(t, scope={"namespace": "acme", "user": "u1"}) for t in DOCS[:3]]
            report = mem.write_many(DOCS[3:] + ["", DOCS[0]], scope={"namespace": "acme"},
                                    batch_size=2)
            assert isinstance(report, WriteReport)
            assert len(report.added) == 3 and report.skipped_duplicates == 0  # other scope
            assert report.rejected == [("record 2", "text is empty or whitespace only")]
            assert isinstance(mem.get(ids[0]), MemoryItem)
            assert mem.put(DOCS[0], {"namespace": "acme", "user": "u1"}) == (ids[0], False)
            fresh = mem.put("A sixth fact.", {"namespace": "acme"})
            assert fresh.created and fresh.id > max(ids)
            mem.delete([fresh.id])
        for query in ("Where did Alice move?", "cat name", "who leads data"):
            a = local.read(query, k=3, scope="acme")
            b = remote.read(query, k=3, scope="acme")
            assert isinstance(b, ReadResult) and all(isinstance(h, Hit) for h in b)
            assert b.ids == a.ids
            assert [h.text for h in b] == [h.text for h in a]
            assert [round(h.score, 5) for h in b] == [round(h.score, 5) for h in a]
            assert [h.rank for h in b] == [1, 2, 3]
        item_l, item_r = local.get(1), remote.get(1)
        assert item_r.scope == item_l.scope and item_r.text == item_l.text
        new_l = local.update(1, "Alice moved to Lyon in 2023.")
        new_r = remote.update(1, "Alice moved to Lyon in 2023.")
        assert new_l == new_r
        assert [v.id for v in remote.versions(new_r)] == [v.id for v in local.versions(new_l)]
        assert remote.delete([2]) == local.delete([2]) == [2]
        assert remote.delete([]) == []
        assert remote.forget("superseded") == local.forget("superseded") == [1]
        assert remote.stats()["items"] == local.stats()["items"]


def test_client_raises_the_memkit_errors(served: Served) -> None:
    with Client(served.url, served.keys["acme"]) as acme:
        i = acme.write("kept")
        with pytest.raises(NotFound):
            acme.get(10**9)
        with pytest.raises(InvalidInput):
            acme.write("   ")
        with pytest.raises(InvalidInput):
            acme.write("x", confidence=float("nan"))
        with pytest.raises(ScopeViolation):
            acme.read("x", scope={"namespace": "globex"})
        with pytest.raises(ScopeViolation):
            acme.forget("superseded")
        assert acme.whoami()["namespace"] == "acme"
        assert acme.health()["status"] == "ok"
        assert acme.last_request_id and len(acme.last_request_id) == 32
    with Client(served.url, served.keys["globex"]) as globex:
        with pytest.raises(NotFound):
            globex.get(i)
        with pytest.raises(NotFound):
            globex.delete([i])
    with Client(served.url, "mk_000000000000_" + "x" * 43) as bad:
        with pytest.raises(AuthError):
            bad.read("x")
    with Client("http://127.0.0.1:9", None, timeout=2, retries=0) as down:
        with pytest.raises(ServerError):
            down.health()


def test_client_ttl_and_metadata_roundtrip(served: Served) -> None:
    from datetime import timedelta

    with Client(served.url, served.keys["acme"]) as c:
        i = c.write("short-lived", ttl=timedelta(hours=1), metadata={"tags": ["a", "b"]},
                    source="unit", confidence=0.5)
        item = c.get(i)
        assert item.metadata == {"tags": ["a", "b"]} and item.source == "unit"
        assert item.confidence == 0.5
        assert item.expires_at is not None and 3590 < item.expires_at - item.created_at < 3610


def test_client_remembers_like_the_embedded_memory(served: Served, tmp_path: Path) -> None:
    paris = [{"role": "user", "name": "Ann", "content": "I live in Paris.", "at": "2020-01-01"}]
    lyon = [{"role": "user", "name": "Ann", "content": "I moved to Lyon.", "at": "2024-01-01"}]
    seen = []
    with Memory.open(tmp_path / "local", embedder="hash") as local, \
            Client(served.url, served.keys["admin"]) as remote:
        for mem in (local, remote):
            scope = {"namespace": "convo", "user": "ann"}
            first = mem.remember(paris, scope, session="s1")
            second = mem.remember(lyon, scope, session="s2")
            assert set(first.facts) <= set(second.invalidated)  # Lyon ended Paris
            now = [h.text for h in mem.read("where does Ann live", k=10, scope=scope).hits]
            then = [h.text for h in mem.read("where does Ann live", k=10, scope=scope,
                                             valid_at="2021-06-01").hits]
            mem.revert(first.facts[0])
            back = [h.text for h in mem.read("where does Ann live", k=10, scope=scope).hits]
            seen.append((sorted(now), sorted(then), sorted(back),
                         [d["action"] for d in second.decisions]))
    assert seen[0] == seen[1]
    now, then, back, _ = seen[0]
    assert not any("Paris" in t for t in now) and any("Paris" in t for t in then)
    assert any("Paris" in t for t in back)
