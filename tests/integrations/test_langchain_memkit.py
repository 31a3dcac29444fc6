"""memkit-specific behaviour of the LangChain adapters, beyond the standard suites: id mapping
across versions, scopes, read options, dedup, and the retriever's metadata."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("langchain_core", reason="needs the [langchain] extra")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402

from memkit import Memory  # noqa: E402
from memkit.embed import HashEmbedder  # noqa: E402
from memkit.errors import InvalidInput, ScopeViolation  # noqa: E402
from memkit.integrations.langchain import MemkitRetriever, MemkitVectorStore  # noqa: E402


@pytest.fixture
def mem(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = Memory.open(tmp_path / "lc", embedder=HashEmbedder(128))
    yield m
    m.close()


def test_an_id_survives_updates_and_as_of_reads_see_the_old_version(mem: Memory) -> None:
    store = MemkitVectorStore(mem, scope={"user": "u1"})
    assert store.add_texts(["Alice lives in Paris."], [{"src": "chat"}], ids=["alice"]) == \
        ["alice"]
    t = time.time()
    store.add_documents([Document(id="alice", page_content="Alice lives in Lyon.",
                                  metadata={"src": "chat2"})])
    (doc,) = store.get_by_ids(["alice"])
    assert (doc.page_content, doc.metadata) == ("Alice lives in Lyon.", {"src": "chat2"})
    (item,) = list(mem.store.iter_items())
    assert [v.text for v in mem.versions(item.id)] == ["Alice lives in Paris.",
                                                        "Alice lives in Lyon."]
    past = store.similarity_search("Where does Alice live?", k=1, as_of=t)
    assert [(d.id, d.page_content) for d in past] == [("alice", "Alice lives in Paris.")]
    store.delete(["alice"])
    assert store.get_by_ids(["alice"]) == [] and mem.stats()["versions"] == 0


def test_scope_from_constructor_and_metadata(mem: Memory) -> None:
    u1 = MemkitVectorStore(mem, scope={"namespace": "acme", "user": "u1"})
    u1.add_texts(["u1 likes tea", "u1 session note"],
                 [{}, {"memkit_scope": {"session": "s9"}}], ids=["a", "b"])
    u2 = MemkitVectorStore(mem, scope={"namespace": "acme", "user": "u2"})
    u2.add_texts(["u2 likes tea"], ids=["c"])
    assert [d.page_content for d in u2.similarity_search("likes tea", k=5)] == ["u2 likes tea"]
    assert u2.get_by_ids(["a"]) == []  # another scope's id is not visible
    assert [d.id for d in u1.similarity_search("note", k=5, scope={"namespace": "acme",
                                                                  "user": "u1",
                                                                  "session": "s9"})] == ["b"]
    (b,) = u1.get_by_ids(["b"])
    assert b.metadata == {"memkit_scope": {"session": "s9"}}
    assert mem.get(int(mem.read("session note", k=1, scope="acme")[0].id)).scope.session == "s9"
    with pytest.raises(ScopeViolation, match="user"):
        u1.add_texts(["x"], [{"memkit_scope": {"user": "u2"}}])
    with pytest.raises(ScopeViolation):
        u1.similarity_search("tea", scope={"namespace": "acme", "user": "u2"})


def test_same_text_dedups_and_a_clashing_explicit_id_is_refused(mem: Memory) -> None:
    store = MemkitVectorStore(mem)
    assert store.add_texts(["same text"], ids=["first"]) == ["first"]
    assert store.add_texts(["same text"]) == ["first"]  # no id given: the existing one
    with pytest.raises(InvalidInput, match="already stored in this scope as document 'first'"):
        store.add_texts(["same text"], ids=["second"])
    assert mem.stats()["items"] == 1
    with pytest.raises(InvalidInput, match="reserved"):
        store.add_texts(["x"], [{"_langchain_id": "y"}])
    with pytest.raises(InvalidInput, match="needs ids"):
        store.delete()


def test_items_written_outside_langchain_have_memkit_ids(mem: Memory) -> None:
    iid = mem.write("written by the memkit API")
    store = MemkitVectorStore(mem)
    (doc,) = store.similarity_search("memkit API", k=1)
    assert doc.id == f"memkit:{iid}" and store.get_by_ids([doc.id])[0].page_content == \
        "written by the memkit API"
    store.add_documents([Document(id=doc.id, page_content="rewritten through LangChain")])
    assert store.get_by_ids([doc.id])[0].page_content == "rewritten through LangChain"
    store.delete([doc.id])
    assert mem.stats()["items"] == 0


def test_filter_scores_and_relevance(mem: Memory) -> None:
    store = MemkitVectorStore(mem)
    store.add_texts([f"note {i} about tea" for i in range(12)],
                    [{"kind": "even" if i % 2 == 0 else "odd"} for i in range(12)])
    docs = store.similarity_search("tea", k=3, filter={"kind": "odd"})
    assert len(docs) == 3 and all(d.metadata["kind"] == "odd" for d in docs)
    scored = store.similarity_search_with_score("note 3 about tea", k=2)
    assert scored[0][0].page_content == "note 3 about tea" and scored[0][1] > scored[1][1]
    assert scored[0][1] == pytest.approx(1.0, abs=1e-4)
    rel = store.similarity_search_with_relevance_scores("note 3 about tea", k=1)
    assert rel[0][1] == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(InvalidInput, match="unknown read option"):
        store.similarity_search("tea", top_n=2)


def test_from_texts_with_langchain_embeddings_and_as_retriever() -> None:
    store = MemkitVectorStore.from_texts(["foo", "bar", "baz"],
                                         DeterministicFakeEmbedding(size=16),
                                         metadatas=[{"n": 1}, {"n": 2}, {"n": 3}],
                                         ids=["1", "2", "3"])
    try:
        retriever = store.as_retriever(search_kwargs={"k": 1})
        assert retriever.invoke("bar") == [Document(id="2", page_content="bar",
                                                    metadata={"n": 2})]
        assert len(store.embeddings.embed_query("x")) == 16
    finally:
        store.close()


def test_retriever_documents_carry_score_backend_and_evidence(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "h", backends=["dense", "hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": {"extractor": "rules"}}) as m:
        m.write("Paris\nParis is the capital of France.", metadata={"topic": "geo"})
        m.write("Seine\nThe Seine flows through Paris.")
        m.write("Tea\nGenmaicha is a green tea.")
        r = MemkitRetriever(memory=m, k=2, backend=["dense", "hipporag"])
        docs = r.invoke("What flows through Paris?")
        assert len(docs) == 2 and docs[0].metadata["backend"] == "dense+hipporag"
        assert [d.metadata["rank"] for d in docs] == [1, 2]
        assert docs[0].metadata["score"] >= docs[1].metadata["score"]
        assert "evidence" in docs[0].metadata and docs[0].metadata["memkit"]["version"] == 1
        dense = r.invoke("What flows through Paris?", backend="dense", k=1)
        assert len(dense) == 1 and dense[0].metadata["backend"] == "dense"
        budget = r.invoke("What flows through Paris?", budget_tokens=12)
        assert len(budget) == 1
        geo = [d for d in r.invoke("capital of France", k=3) if "topic" in d.metadata]
        assert geo and geo[0].metadata["topic"] == "geo" and geo[0].id.startswith("memkit:")


def test_mmr_prefers_diverse_documents(mem: Memory) -> None:
    store = MemkitVectorStore(mem)
    store.add_texts(["green tea from Japan", "green tea from Japan, again",
                     "green tea from Japan, once more", "black coffee from Brazil"],
                    ids=["a", "b", "c", "d"])
    plain = [d.id for d in store.similarity_search("green tea from Japan", k=2)]
    diverse = [d.id for d in store.max_marginal_relevance_search(
        "green tea from Japan", k=2, fetch_k=4, lambda_mult=0.2)]
    assert plain[0] == diverse[0] == "a"
    assert plain[1] in {"b", "c"} and diverse[1] == "d"
    retriever = store.as_retriever(search_type="mmr",
                                   search_kwargs={"k": 2, "fetch_k": 4, "lambda_mult": 0.2})
    assert [d.id for d in retriever.invoke("green tea from Japan")] == ["a", "d"]
