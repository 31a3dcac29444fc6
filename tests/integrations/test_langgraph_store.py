"""MemkitStore against real LangGraph objects, with the behaviour LangGraph documents for its
InMemoryStore (put/get/search/delete/list_namespaces, filters, pagination, semantic search,
batch and async variants) ported as cases, plus a compiled LangGraph graph using it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph.store.base", reason="needs the [langgraph] extra")

from langgraph.store.base import (  # noqa: E402
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore  # noqa: E402

from memkit import Memory  # noqa: E402
from memkit.embed import HashEmbedder  # noqa: E402
from memkit.errors import InvalidInput  # noqa: E402
from memkit.integrations.langgraph import MemkitStore  # noqa: E402


@pytest.fixture
def mem(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = Memory.open(tmp_path / "lg", embedder=HashEmbedder(128))
    yield m
    m.close()


@pytest.fixture
def store(mem: Memory) -> MemkitStore:
    return MemkitStore(mem, index={"fields": ["text"]})


def test_put_get_and_timestamps(store: MemkitStore) -> None:
    assert store.get(("u1", "prefs"), "tea") is None
    store.put(("u1", "prefs"), "tea", {"text": "likes genmaicha", "n": 1})
    first = store.get(("u1", "prefs"), "tea")
    assert first is not None
    assert (first.namespace, first.key, first.value) == (("u1", "prefs"), "tea",
                                                          {"text": "likes genmaicha", "n": 1})
    assert first.created_at == first.updated_at
    time.sleep(0.01)
    store.put(("u1", "prefs"), "tea", {"text": "likes sencha now", "n": 2})
    second = store.get(("u1", "prefs"), "tea")
    assert second is not None and second.value == {"text": "likes sencha now", "n": 2}
    assert second.created_at == first.created_at and second.updated_at > first.updated_at


def test_an_update_is_a_memkit_version_and_delete_removes_every_version(
        store: MemkitStore, mem: Memory) -> None:
    store.put(("u1",), "k", {"text": "v1"})
    store.put(("u1",), "k", {"text": "v2"})
    current = [i for i in mem.store.iter_items() if i.metadata["langgraph"]["key"] == "k"]
    assert [v.text for v in mem.versions(current[0].id)] == ["v1", "v2"]
    store.delete(("u1",), "k")
    assert store.get(("u1",), "k") is None
    assert mem.stats()["versions"] == 0
    store.delete(("u1",), "never-there")  # deleting what is absent is not an error


def test_same_key_in_other_namespaces_is_a_different_item(store: MemkitStore) -> None:
    for ns in [("a",), ("a", "b"), ("a", "b", "c"), ("x", "b")]:
        store.put(ns, "k", {"text": "same text everywhere"})
    assert [store.get(ns, "k").namespace for ns in  # type: ignore[union-attr]
            [("a",), ("a", "b"), ("a", "b", "c"), ("x", "b")]] == \
        [("a",), ("a", "b"), ("a", "b", "c"), ("x", "b")]
    store.delete(("a", "b"), "k")
    assert store.get(("a", "b"), "k") is None
    assert store.get(("a",), "k") is not None and store.get(("a", "b", "c"), "k") is not None


def test_search_by_prefix_filter_and_pagination(store: MemkitStore) -> None:
    store.put(("docs", "u1"), "a", {"text": "one", "type": "article", "score": 5})
    store.put(("docs", "u1"), "b", {"text": "two", "type": "note", "score": 7})
    store.put(("docs", "u2"), "c", {"text": "three", "type": "article", "score": 9})
    store.put(("other",), "d", {"text": "four", "type": "article", "score": 1})
    assert {i.key for i in store.search(("docs",))} == {"a", "b", "c"}
    assert {i.key for i in store.search(("docs", "u1"))} == {"a", "b"}
    assert {i.key for i in store.search(())} == {"a", "b", "c", "d"}
    assert {i.key for i in store.search(("docs",), filter={"type": "article"})} == {"a", "c"}
    assert {i.key for i in store.search((), filter={"score": {"$gt": 4, "$lte": 7}})} == \
        {"a", "b"}
    assert {i.key for i in store.search((), filter={"type": {"$ne": "article"}})} == {"b"}
    # no query: newest first, paginated with limit/offset, score None
    page = store.search((), limit=2)
    assert [i.key for i in page] == ["d", "c"] and all(i.score is None for i in page)
    assert [i.key for i in store.search((), limit=2, offset=2)] == ["b", "a"]
    assert store.search((), limit=2, offset=4) == []


def test_semantic_search_ranks_by_memkit_read(store: MemkitStore) -> None:
    store.put(("u1", "mem"), "tea", {"text": "I like genmaicha green tea", "kind": "pref"})
    store.put(("u1", "mem"), "trip", {"text": "My trip to Lisbon is in May", "kind": "plan"})
    store.put(("u1", "mem"), "cello", {"text": "Carol plays the cello", "kind": "fact"})
    store.put(("u2", "mem"), "tea2", {"text": "I like genmaicha green tea a lot", "kind": "pref"})
    hits = store.search(("u1",), query="which green tea do I like", limit=2)
    assert hits[0].key == "tea" and hits[0].namespace == ("u1", "mem")
    assert hits[0].score is not None and hits[0].score >= (hits[1].score or 0)
    assert "tea2" not in {h.key for h in store.search(("u1",), query="genmaicha tea", limit=5)}
    assert [h.key for h in store.search(("u1",), query="green tea", filter={"kind": "plan"})] \
        == ["trip"]
    assert [h.key for h in store.search(("u1",), query="genmaicha", limit=1, offset=1)] != \
        ["tea"]


def test_only_the_configured_fields_are_indexed_and_index_false_is_never_ranked(
        mem: Memory) -> None:
    store = MemkitStore(mem, index={"fields": ["summary"]})
    store.put(("u1",), "a", {"summary": "cello lessons", "body": "genmaicha"})
    store.put(("u1",), "b", {"summary": "tea shop", "body": "cello"}, index=["body"])
    store.put(("u1",), "c", {"summary": "cello cello cello"}, index=False)
    ranked = store.search(("u1",), query="cello", limit=3)
    assert [h.key for h in ranked[:2]] == ["a", "b"] or [h.key for h in ranked[:2]] == ["b", "a"]
    assert ranked[2].key == "c" and ranked[2].score is None  # fills the page, unranked
    assert [h.key for h in store.search(("u1",), query="cello", limit=2)] != ["c"]
    texts = sorted(i.text for i in mem.store.iter_items())
    assert "cello lessons" in texts and "cello" in texts


def test_deep_namespaces_search_by_exact_prefix(store: MemkitStore) -> None:
    store.put(("org", "team", "u1", "notes"), "n1", {"text": "alpha"})
    store.put(("org", "team", "u2", "notes"), "n2", {"text": "alpha beta"})
    store.put(("org", "team"), "n3", {"text": "alpha gamma"})
    assert {i.key for i in store.search(("org", "team", "u1"))} == {"n1"}
    assert {i.key for i in store.search(("org", "team", "u1"), query="alpha", limit=5)} == \
        {"n1"}
    assert {i.key for i in store.search(("org", "team"), query="alpha", limit=5)} == \
        {"n1", "n2", "n3"}


def test_list_namespaces(store: MemkitStore) -> None:
    for ns in [("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("z", "b", "c")]:
        store.put(ns, "k", {"text": "/".join(ns)})
    assert store.list_namespaces() == [("a", "b", "c"), ("a", "b", "d"), ("a", "x"),
                                       ("z", "b", "c")]
    assert store.list_namespaces(prefix=("a", "b")) == [("a", "b", "c"), ("a", "b", "d")]
    assert store.list_namespaces(suffix=("c",)) == [("a", "b", "c"), ("z", "b", "c")]
    assert store.list_namespaces(prefix=("*", "b")) == [("a", "b", "c"), ("a", "b", "d"),
                                                       ("z", "b", "c")]
    assert store.list_namespaces(max_depth=2) == [("a", "b"), ("a", "x"), ("z", "b")]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d"), ("a", "x")]


def test_batch_results_line_up_with_ops(store: MemkitStore) -> None:
    results = store.batch([
        PutOp(("u1",), "a", {"text": "first"}),
        GetOp(("u1",), "a"),
        SearchOp(("u1",), query="first", limit=1),
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("u1",)),)),
        PutOp(("u1",), "a", None),
        GetOp(("u1",), "a"),
    ])
    assert results[0] is None and results[1].value == {"text": "first"}  # type: ignore[union-attr]
    assert [i.key for i in results[2]] == ["a"]  # type: ignore[union-attr]
    assert results[3] == [("u1",)] and results[4] is None and results[5] is None


async def test_async_variants(store: MemkitStore) -> None:
    await store.aput(("u1", "mem"), "tea", {"text": "genmaicha"})
    item = await store.aget(("u1", "mem"), "tea")
    assert item is not None and item.value == {"text": "genmaicha"}
    assert [i.key for i in await store.asearch(("u1",), query="genmaicha")] == ["tea"]
    assert await store.alist_namespaces() == [("u1", "mem")]
    await store.adelete(("u1", "mem"), "tea")
    assert await store.aget(("u1", "mem"), "tea") is None
    results = await store.abatch([PutOp(("u2",), "x", {"text": "y"}), GetOp(("u2",), "x")])
    assert results[1].value == {"text": "y"}  # type: ignore[union-attr]


def test_invalid_namespaces_and_values_are_refused(store: MemkitStore) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {"text": "x"})
    with pytest.raises(InvalidNamespaceError):
        store.put((), "k", {"text": "x"})
    with pytest.raises(InvalidInput, match="not JSON-serialisable"):
        store.put(("u1",), "k", {"when": object()})
    assert store.search(()) == []


def test_scope_isolation_and_persistence(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "p", embedder=HashEmbedder(64)) as mem:
        MemkitStore(mem, namespace="tenant-a").put(("u1",), "k", {"text": "secret of a"})
        MemkitStore(mem, namespace="tenant-b").put(("u1",), "k", {"text": "b's"})
        mem.write("a plain memkit item", scope={"namespace": "tenant-a", "user": "u1"})
    with Memory.open(tmp_path / "p", embedder=HashEmbedder(64)) as mem:
        a = MemkitStore(mem, namespace="tenant-a")
        assert a.get(("u1",), "k").value == {"text": "secret of a"}  # type: ignore[union-attr]
        assert [i.value for i in a.search(("u1",), query="secret")] == [{"text": "secret of a"}]
        assert a.list_namespaces() == [("u1",)]  # the plain item is not a store item
        hits = mem.read("secret", scope={"namespace": "tenant-b"}).hits
        assert [h.text for h in hits] == ['{"text": "b\'s"}']


def test_same_results_as_langgraph_in_memory_store_without_query(store: MemkitStore) -> None:
    """For gets, filters and namespace listing our answers equal InMemoryStore's."""
    reference = InMemoryStore()
    ops: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
        (("a", "b"), "1", {"text": "x", "tag": "t1"}), (("a",), "2", {"text": "y", "tag": "t2"}),
        (("c", "d", "e"), "3", {"text": "z", "tag": "t1"}), (("a", "b"), "1", {"text": "w"}),
    ]
    for s in (store, reference):
        for ns, key, value in ops:
            s.put(ns, key, value)
    assert store.list_namespaces() == reference.list_namespaces()
    assert store.list_namespaces(max_depth=1) == reference.list_namespaces(max_depth=1)
    for s in (store, reference):
        s.delete(("a",), "2")
    for ns, key in [(("a", "b"), "1"), (("a",), "2"), (("c", "d", "e"), "3")]:
        ours, theirs = store.get(ns, key), reference.get(ns, key)
        assert (ours and (ours.namespace, ours.key, ours.value)) == \
            (theirs and (theirs.namespace, theirs.key, theirs.value))
    for prefix, flt in [((), None), (("a",), None), ((), {"tag": "t1"})]:
        assert sorted(i.key for i in store.search(prefix, filter=flt)) == \
            sorted(i.key for i in reference.search(prefix, filter=flt))
    # a namespace whose last item is deleted is gone from ours (InMemoryStore keeps it listed)
    assert store.list_namespaces() == [("a", "b"), ("c", "d", "e")]


class _State(TypedDict):
    user: str
    said: str
    recalled: list[str]


def test_a_compiled_langgraph_graph_uses_the_store_as_long_term_memory(
        store: MemkitStore) -> None:
    from langgraph.graph import END, START, StateGraph

    def remember_and_recall(state: _State, *, store: BaseStore) -> dict[str, Any]:
        ns = (state["user"], "memories")
        hits = store.search(ns, query=state["said"], limit=1)
        store.put(ns, f"m{len(store.search(ns, limit=100))}", {"text": state["said"]})
        return {"recalled": [h.value["text"] for h in hits]}

    builder = StateGraph(_State)
    builder.add_node("memory", remember_and_recall)
    builder.add_edge(START, "memory")
    builder.add_edge("memory", END)
    graph = builder.compile(store=store)
    assert graph.invoke({"user": "u1", "said": "I like genmaicha tea", "recalled": []})[
        "recalled"] == []
    graph.invoke({"user": "u1", "said": "My trip to Lisbon is in May", "recalled": []})
    graph.invoke({"user": "u2", "said": "I like coffee", "recalled": []})
    out = graph.invoke({"user": "u1", "said": "which tea do I like?", "recalled": []})
    assert out["recalled"] == ["I like genmaicha tea"]
    assert store.list_namespaces() == [("u1", "memories"), ("u2", "memories")]
