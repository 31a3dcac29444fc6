"""The LlamaIndex retriever with real llama-index-core objects: retrieve/aretrieve, a
SimilarityPostprocessor on our scores, and a RetrieverQueryEngine over it (MockLLM is
LlamaIndex's own fake at the LLM boundary)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("llama_index.core", reason="needs the [llamaindex] extra")

from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle  # noqa: E402

from memkit import Memory  # noqa: E402
from memkit.embed import HashEmbedder  # noqa: E402
from memkit.errors import InvalidInput  # noqa: E402
from memkit.integrations.llamaindex import MemkitRetriever  # noqa: E402


@pytest.fixture
def mem(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = Memory.open(tmp_path / "li", embedder=HashEmbedder(128))
    m.write("Alice moved to Paris in 2021.", scope={"user": "u1"}, source="chat:1",
            metadata={"topic": "moves"})
    m.write("Bob likes genmaicha green tea.", scope={"user": "u1"})
    m.write("Alice moved to Rome in 2019.", scope={"user": "u2"})
    yield m
    m.close()


def test_retrieve_returns_nodes_with_scores_and_memkit_metadata(mem: Memory) -> None:
    nodes = MemkitRetriever(mem, scope={"user": "u1"}, k=2).retrieve("Where did Alice move?")
    assert all(isinstance(n, NodeWithScore) for n in nodes)
    top = nodes[0]
    assert top.node.get_content() == "Alice moved to Paris in 2021."
    assert top.score == pytest.approx(top.node.metadata["score"])
    assert top.score > nodes[1].score  # type: ignore[operator]
    meta = top.node.metadata
    assert meta["topic"] == "moves" and meta["backend"] == "dense" and meta["rank"] == 1
    assert meta["memkit"]["scope"] == {"namespace": "default", "user": "u1"}
    assert meta["memkit"]["source"] == "chat:1" and top.node.node_id == str(meta["memkit"]["id"])
    # the LLM sees the text and the user's metadata, not memkit's bookkeeping
    shown = top.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "topic: moves" in shown and "evidence" not in shown and "backend" not in shown


def test_scope_k_and_as_of_are_memkit_read_options(mem: Memory) -> None:
    r = MemkitRetriever(mem, scope={"user": "u2"}, k=5)
    assert [n.node.get_content() for n in r.retrieve("Alice")] == ["Alice moved to Rome in 2019."]
    (old,) = [n for n in MemkitRetriever(mem, scope={"user": "u1"}, k=1).retrieve("Paris")]
    before = mem.get(int(old.node.node_id)).valid_from + 1e-3
    mem.update(int(old.node.node_id), "Alice moved to Lyon in 2024.")
    now = MemkitRetriever(mem, scope={"user": "u1"}, k=1).retrieve("Where did Alice move?")
    assert now[0].node.get_content() == "Alice moved to Lyon in 2024."
    past = MemkitRetriever(mem, scope={"user": "u1"}, k=1, as_of=before).with_options(k=1)
    assert past.retrieve("Where did Alice move?")[0].node.get_content() == \
        "Alice moved to Paris in 2021."
    with pytest.raises(InvalidInput, match="unknown read option"):
        MemkitRetriever(mem, top_k=3)


async def test_aretrieve(mem: Memory) -> None:
    nodes = await MemkitRetriever(mem, k=1).aretrieve(QueryBundle("genmaicha tea"))
    assert [n.node.get_content() for n in nodes] == ["Bob likes genmaicha green tea."]


def test_postprocessor_and_query_engine_over_the_retriever(mem: Memory) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.postprocessor import SimilarityPostprocessor
    from llama_index.core.query_engine import RetrieverQueryEngine

    retriever = MemkitRetriever(mem, scope={"user": "u1"}, k=3)
    nodes = retriever.retrieve("Where did Alice move?")
    cutoff = (nodes[0].score + nodes[1].score) / 2  # type: ignore[operator]
    kept = SimilarityPostprocessor(similarity_cutoff=cutoff).postprocess_nodes(nodes)
    assert [n.node.get_content() for n in kept] == ["Alice moved to Paris in 2021."]
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(max_tokens=8))
    response = engine.query("Where did Alice move?")
    assert [n.node.get_content() for n in response.source_nodes][0] == \
        "Alice moved to Paris in 2021."
