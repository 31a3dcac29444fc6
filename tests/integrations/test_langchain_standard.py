"""LangChain's own standard suites (PyPI ``langchain-tests``), unmodified, against memkit.

The VectorStore suite runs twice: over a memkit Memory in a real directory with the hash
embedder, and over an in-memory Memory embedding with the suite's own ``get_embeddings()``
(LangChain's DeterministicFakeEmbedding, through :class:`LangChainEmbedder`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="needs the [langchain] extra")
pytest.importorskip("langchain_tests", reason="needs langchain-tests (the [dev] extra)")
pytest.importorskip("pytest_asyncio", reason="the async standard tests need pytest-asyncio")

from langchain_tests.integration_tests import (  # noqa: E402
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from memkit import Memory  # noqa: E402
from memkit.embed import HashEmbedder  # noqa: E402
from memkit.integrations.langchain import MemkitRetriever, MemkitVectorStore  # noqa: E402


class TestMemkitVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path: Path) -> Iterator[MemkitVectorStore]:  # type: ignore[override]
        mem = Memory.open(tmp_path / "lc", embedder=HashEmbedder(64))
        try:
            yield MemkitVectorStore(mem, scope={"namespace": "lc", "user": "u1"})
        finally:
            mem.close()


class TestMemkitVectorStoreWithLangChainEmbeddings(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self) -> Iterator[MemkitVectorStore]:  # type: ignore[override]
        store = MemkitVectorStore(embedding=self.get_embeddings())
        try:
            yield store
        finally:
            store.close()


_CORPUS = [
    "Alice moved to Paris in 2021.",
    "Alice works as a nurse at the Paris hospital.",
    "Bob lives in Lisbon and likes green tea.",
    "The Basalt cluster stores backups for Alice's hospital.",
    "Carol plays the cello in an orchestra.",
]
_MEMORY: dict[str, Memory] = {}


def _shared_memory() -> Memory:
    """One in-memory Memory for the retriever suite (the suite constructs retrievers from
    plain parameters, outside any fixture)."""
    if "m" not in _MEMORY:
        mem = Memory.open(None, embedder=HashEmbedder(64))
        mem.write_many(_CORPUS, scope={"user": "u1"})
        _MEMORY["m"] = mem
    return _MEMORY["m"]


class TestMemkitRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[MemkitRetriever]:
        return MemkitRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"memory": _shared_memory(), "scope": {"user": "u1"}, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "Where does Alice live?"
