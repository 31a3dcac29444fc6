from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import memkit
from memkit import InvalidInput, Memory, NotFound, Scope
from memkit.backends.base import AllowedIds, Backend, Retrieval, Scored, register_backend
from memkit.embed import HashEmbedder
from memkit.types import MemoryItem


def test_write_read_roundtrip_with_provenance(mem: Memory) -> None:
    i = mem.write("Alice moved to Paris in 2021.", {"user": "u1"}, source="chat:42",
                  confidence=0.9, metadata={"topic": "moves"})
    mem.write("The weather in Oslo is cold.", {"user": "u1"})
    res = mem.read("Where did Alice move?", k=1, scope={"user": "u1"})
    hit = res.hits[0]
    assert hit.item.id == i and hit.backend == "dense" and hit.rank == 1
    assert hit.item.source == "chat:42" and hit.item.confidence == 0.9
    assert hit.item.metadata == {"topic": "moves"} and hit.score > 0
    assert res.cost.ms > 0 and "dense" in res.timings


@pytest.mark.parametrize("kwargs, message", [
    ({"text": ""}, "empty"),
    ({"text": "   \n\t"}, "empty"),
    ({"text": 42}, "text must be a string"),
    ({"text": "x" * 101}, "over the limit of 100"),
    ({"text": "ok", "scope": {"tenant": "x"}}, "unknown scope field"),
    ({"text": "ok", "scope": {"user": ""}}, "scope field 'user'"),
    ({"text": "ok", "confidence": 1.5}, "confidence"),
    ({"text": "ok", "ttl": -3}, "ttl"),
    ({"text": "ok", "metadata": {"x": object()}}, "JSON-serialisable"),
    ({"text": "ok", "metadata": [1]}, "metadata must be a dict"),
    ({"text": "ok", "source": 3}, "source"),
])
def test_bad_input_is_rejected_and_nothing_written(tmp_path: Path, kwargs: dict,
                                                   message: str) -> None:
    with Memory.open(tmp_path / "m", embedder=HashEmbedder(32), max_item_chars=100) as mem:
        text = kwargs.pop("text")
        with pytest.raises(InvalidInput, match=message):
            mem.write(text, **kwargs)
        assert mem.stats()["items"] == 0 and mem.store.last_seq() == 0


def test_update_versions_and_as_of(mem: Memory) -> None:
    old = mem.write("Alice lives in Paris.", {"user": "u"})
    before = time.time()
    time.sleep(0.01)
    new = mem.update(old, "Alice lives in Lyon.", reason="moved")
    now = mem.read("Where does Alice live?", scope={"user": "u"})
    past = mem.read("Where does Alice live?", scope={"user": "u"}, as_of=before)
    assert now.ids == [new] and past.ids == [old]
    assert [v.text for v in mem.versions(new)] == ["Alice lives in Paris.", "Alice lives in Lyon."]
    assert mem.get(old).valid_until is not None and mem.get(new).is_current
    assert mem.audit(new)[0]["op"] == "update" and mem.audit(new)[0]["reason"] == "moved"


def test_delete_removes_from_record_and_index_and_audits(mem: Memory) -> None:
    a = mem.write("secret: the code is 1234", {"user": "u"})
    b = mem.write("public: the sky is blue", {"user": "u"})
    assert mem.delete([a], reason="user request") == [a]
    with pytest.raises(NotFound):
        mem.get(a)
    dense = mem.backends["dense"]
    assert a not in dense.index and b in dense.index
    assert mem.store.conn.execute(
        "SELECT COUNT(*) FROM item_vectors WHERE item_id = ?", (a,)).fetchone()[0] == 0
    assert mem.read("the code", k=5, scope={"user": "u"}).ids == [b]
    assert mem.audit(a)[0]["op"] == "delete" and mem.audit(a)[0]["reason"] == "user request"
    with pytest.raises(NotFound, match="nothing was deleted"):
        mem.delete([b, 10_000])
    assert mem.get(b).text.startswith("public")


def test_forget_ttl_and_superseded(mem: Memory) -> None:
    keep = mem.write("durable fact", ttl=None)
    short = mem.write("ephemeral fact", ttl=0.5)  # a fsynced write on a loaded box may take 50 ms
    assert set(mem.read("fact", k=5).ids) == {keep, short}
    time.sleep(0.6)
    assert mem.read("fact", k=5).ids == [keep]  # expired items are invisible at once
    assert mem.forget("ttl") == [short]
    assert mem.audit(short)[0]["op"] == "expire"
    v2 = mem.update(keep, "durable fact, revised")
    assert mem.forget("superseded") == [keep]
    assert [v.id for v in mem.versions(v2)] == [v2]
    with pytest.raises(InvalidInput, match="unknown forget policy"):
        mem.forget("lru")


def test_put_says_whether_it_created_an_item(mem: Memory) -> None:
    first = mem.put("Dana likes tea.", {"user": "dana"})
    assert first.created and first == (first.id, True)
    assert mem.put("Dana likes tea.", {"user": "dana"}) == (first.id, False)
    assert mem.write("Dana likes tea.", {"user": "dana"}) == first.id
    other = mem.put("Dana likes tea.", {"user": "eve"})
    assert other.created and other.id != first.id
    new = mem.update(first.id, "Dana likes green tea.")
    # the old text is superseded, so writing it again creates a new current item
    again = mem.put("Dana likes tea.", {"user": "dana"})
    assert again.created and again.id not in (first.id, new)
    assert mem.stats()["items"] == 3


def test_write_many_batches_dedups_and_reports(mem: Memory) -> None:
    report = mem.write_many(
        ["one", "two", "", {"text": "three", "scope": {"user": "x"}}, "one",
         {"text": "four", "colour": "red"}, 7], batch_size=2)
    assert len(report.added) == 3 and report.skipped_duplicates == 1
    reasons = dict(report.rejected)
    assert "empty" in reasons["record 2"] and "colour" in reasons["record 5"]
    assert "string or a dict" in reasons["record 6"]
    again = mem.write_many(["one", "two", {"text": "three", "scope": {"user": "x"}}])
    assert again.added == [] and again.skipped_duplicates == 3


def test_reopen_persists_everything(tmp_path: Path) -> None:
    emb = HashEmbedder(64)
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        ids = mem.write_many([f"note number {i}" for i in range(20)]).added
    assert (tmp_path / "m" / "vectors" / "dense.faiss").exists()
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        assert mem.stats()["items"] == 20
        assert mem.read("note number 7", k=1).ids == [ids[7]]


def test_missing_or_corrupt_index_file_is_rebuilt_from_the_record(tmp_path: Path) -> None:
    emb = HashEmbedder(64)
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        ids = mem.write_many([f"entry {w}" for w in "abcdefgh"]).added
    faiss_file = tmp_path / "m" / "vectors" / "dense.faiss"
    faiss_file.write_bytes(b"garbage")
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        assert mem.read("entry c", k=1).ids == [ids[2]]
        assert mem.backends["dense"].index.ntotal == 8
    faiss_file.unlink()
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        assert mem.read("entry h", k=1).ids == [ids[7]]


def test_index_that_lags_the_record_catches_up_on_open(tmp_path: Path) -> None:
    emb = HashEmbedder(64)
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        mem.write("first entry")
        # another writer appended to the record without indexing (e.g. killed before it)
        from memkit.store.sqlite import NewItem

        (late, _), = mem.store.insert_items([NewItem("late arrival zebra", Scope())])
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        assert mem.read("zebra", k=1).ids == [late]


def test_reader_sees_writes_of_another_process_handle(tmp_path: Path) -> None:
    emb = HashEmbedder(64)
    a = Memory.open(tmp_path / "m", embedder=emb)
    b = Memory.open(tmp_path / "m", embedder=emb)
    try:
        i = a.write("written through handle a")
        assert b.read("handle a", k=1).ids == [i]
    finally:
        a.close()
        b.close()


def test_changing_the_embedder_reembeds(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "m", embedder=HashEmbedder(32)) as mem:
        i = mem.write("alpha beta gamma")
    with Memory.open(tmp_path / "m", embedder=HashEmbedder(48)) as mem:
        assert mem.backends["dense"].index.dim == 48
        assert mem.read("alpha", k=1).ids == [i]


def test_budget_tokens_trims_hits(mem: Memory) -> None:
    mem.write_many([("word " * 40) + str(i) for i in range(5)])
    assert len(mem.read("word", k=5, budget_tokens=100).hits) == 2
    assert len(mem.read("word", k=5, budget_tokens=1).hits) == 1  # never empty


def test_read_rejects_bad_arguments(mem: Memory) -> None:
    with pytest.raises(InvalidInput, match="query"):
        mem.read("  ")
    with pytest.raises(InvalidInput, match="k must be"):
        mem.read("x", k=0)
    with pytest.raises(InvalidInput, match="not open in this memory"):
        mem.read("x", backend="nonexistent")


def test_empty_memory_reads_nothing(mem: Memory) -> None:
    assert mem.read("anything").hits == []


@register_backend("test-keyword")
class KeywordBackend(Backend):
    """A tiny second backend: exact word overlap. Exercises the protocol and fusion."""

    name = "test-keyword"

    def __init__(self, ctx, options=None):  # type: ignore[no-untyped-def]
        super().__init__(ctx, options)
        self.docs: dict[int, set[str]] = {}

    def add(self, items: Sequence[MemoryItem], prepared: object = None) -> None:
        for it in items:
            self.docs[it.id] = set(it.text.lower().split())

    def remove(self, ids: Sequence[int]) -> None:
        for i in ids:
            self.docs.pop(int(i), None)

    def retrieve(self, query: str, k: int, *, allowed: AllowedIds,
                 options: object = None) -> Retrieval:
        q = set(query.lower().split())
        scored = [Scored(i, len(q & w)) for i, w in self.docs.items() if i in allowed and q & w]
        return Retrieval(sorted(scored, key=lambda s: (-s.score, s.id))[:k])


def test_second_backend_replays_record_and_fuses(tmp_path: Path) -> None:
    emb = HashEmbedder(64)
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        a = mem.write("red apples grow on trees")
        b = mem.write("bananas are yellow")
    # opening with a new backend replays the whole record into it
    with Memory.open(tmp_path / "m", embedder=emb, backends=["test-keyword", "dense"]) as mem:
        assert mem.config.backends == ["test-keyword", "dense"]
        kw = mem.backends["test-keyword"]
        assert set(kw.docs) == {a, b}  # type: ignore[attr-defined]
        assert mem.read("yellow bananas", k=1).ids == [b]  # default: first listed backend
        fused = mem.read("yellow bananas", k=2, backend="test-keyword,dense")
        assert fused.hits[0].item.id == b and fused.hits[0].backend == "test-keyword+dense"
        assert set(fused.hits[0].evidence) == {"test-keyword", "dense"}
        mem.delete([b])
        assert b not in kw.docs  # type: ignore[attr-defined]


def test_hnsw_kind_used_above_threshold_and_scope_still_returns_k(tmp_path: Path) -> None:
    emb = HashEmbedder(32)
    with Memory.open(tmp_path / "m", embedder=emb,
                     backend_options={"dense": {"hnsw_threshold": 50}}) as mem:
        records = [{"text": f"common text {i}", "scope": {"user": "many"}} for i in range(200)]
        records += [{"text": f"rare text {i}", "scope": {"user": "few"}} for i in range(5)]
        mem.write_many(records, batch_size=64)
        assert mem.backends["dense"].index.kind == "hnsw"
        hits = mem.read("common text", k=5, scope={"user": "few"}).hits
        assert len(hits) == 5 and all(h.item.scope.user == "few" for h in hits)


def test_public_namespace() -> None:
    import types

    for name in memkit.__all__:  # the names are imported lazily, on first access
        assert getattr(memkit, name) is not None
    public = {n for n, v in vars(memkit).items()
              if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert set(memkit.__all__) == public | {"__version__"}


def test_allowed_ids_vectorised_helpers() -> None:
    a = AllowedIds(np.array([1, 4, 9], dtype=np.int64))
    assert list(a.mask(np.array([0, 1, 4, 5, 9, 12]))) == [False, True, True, False, True, False]
    bits = np.unpackbits(a.bitmap(), bitorder="little")
    assert [int(i) for i in np.flatnonzero(bits)] == [1, 4, 9]


def test_rebuild_drops_and_recreates_derived_state(mem: Memory) -> None:
    ids = mem.write_many(["alpha one", "beta two", "gamma three"]).added
    mem.backends["dense"].index.remove(np.array(ids))  # damage the in-memory index
    assert mem.read("beta", k=3).ids == []
    assert mem.rebuild() == {"dense": 3}
    assert mem.read("beta two", k=1).ids == [ids[1]]


def test_scoped_management_treats_other_scopes_as_missing(mem: Memory) -> None:
    mine = mem.write("my note", {"namespace": "a", "user": "u"})
    theirs = mem.write("their note", {"namespace": "b"})
    a = {"namespace": "a"}
    assert mem.get(mine, scope=a).text == "my note"
    for call in (lambda: mem.get(theirs, scope=a), lambda: mem.versions(theirs, scope=a),
                 lambda: mem.update(theirs, "hijacked", scope=a)):
        with pytest.raises(NotFound, match=f"no item with id {theirs}"):
            call()
    with pytest.raises(NotFound, match="nothing was deleted"):
        mem.delete([mine, theirs], scope=a)
    assert mem.get(theirs).text == "their note" and mem.get(mine).text == "my note"
    new = mem.update(mine, "my note v2", scope=a)
    assert mem.forget("superseded", scope={"namespace": "b"}) == []
    assert mem.forget("superseded", scope=a) == [mine]
    assert mem.stats(scope=a) == {"items": 1, "versions": 1, "scope": {
        "namespace": "a", "user": None, "agent": None, "session": None}}
    assert mem.delete(new, scope=a) == [new]


def test_ids_that_cannot_exist(mem: Memory) -> None:
    with pytest.raises(NotFound):
        mem.get(2**70)
    with pytest.raises(NotFound):
        mem.get(-1)
    with pytest.raises(InvalidInput, match="integers"):
        mem.get("5")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="integers"):
        mem.delete(["x"])  # type: ignore[list-item]
    with pytest.raises(NotFound):
        mem.delete([2**64])


def test_answer_reads_then_asks_the_llm_and_caches_the_call(tmp_path: Path) -> None:
    from memkit import ConfigError
    from memkit.llm.fake import ScriptedLLM

    llm = ScriptedLLM({r"Where does Alice live": "Thought: the memory says Lyon.\nAnswer: Lyon"})
    with Memory.open(tmp_path / "m", embedder=HashEmbedder(64), llm=llm) as mem:
        i = mem.write("Alice lives in Lyon.", {"user": "u"})
        mem.write("Bob likes chess.", {"user": "v"})
        ans = mem.answer("Where does Alice live?", k=3, scope={"user": "u"})
        assert ans.text == "Lyon" and not ans.abstained and ans.cited_ids == [i]
        mem.answer("Where does Alice live?", k=3, scope={"user": "u"})
        assert len(llm.calls) == 1  # the second call came from the memory's SQLite cache
        assert "llm_cache" in mem.store.table_names()
    with Memory.open(tmp_path / "m", embedder=HashEmbedder(64)) as mem, \
            pytest.raises(ConfigError, match="needs an LLM"):
        mem.answer("Where does Alice live?")
