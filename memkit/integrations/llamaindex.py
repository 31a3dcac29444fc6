"""A LlamaIndex retriever over memkit reads, returning ``NodeWithScore``.

Needs the [llamaindex] extra (``llama-index-core``).

>>> from memkit import Memory
>>> from memkit.embed import HashEmbedder
>>> mem = Memory.open(None, embedder=HashEmbedder())
>>> _ = mem.write("Alice moved to Paris in 2021.", scope={"user": "u1"})
>>> nodes = MemkitRetriever(mem, scope={"user": "u1"}, k=1).retrieve("Where is Alice?")
>>> nodes[0].node.get_content(), nodes[0].node.metadata["backend"]
('Alice moved to Paris in 2021.', 'dense')

Each node's id is the memkit item id (as a string); its metadata is the item's metadata plus
``score``, ``backend``, ``rank``, ``evidence`` and ``memkit`` (id, version, scope, source,
times). The memkit keys are excluded from what LlamaIndex shows the LLM and the embedder, so
a response synthesizer sees the memory text and the user's own metadata only.
"""

from __future__ import annotations

import asyncio
from typing import Any

from memkit._deps import require
from memkit.integrations._common import READ_OPTIONS, hit_metadata, read_kwargs

require("llama_index.core", "llamaindex", "the LlamaIndex retriever")

from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402

__all__ = ["MemkitRetriever"]

_MEMKIT_KEYS = ["score", "backend", "rank", "evidence", "memkit"]


class MemkitRetriever(BaseRetriever):
    """``BaseRetriever`` over ``memory.read`` (a :class:`memkit.Memory` or the HTTP
    :class:`memkit.client.Client`). ``k`` and every read option (scope, backend — one
    or several fused by reciprocal rank —, rerank, rerank_options, budget_tokens, as_of) are
    set here; :meth:`with_options` makes a copy with some changed."""

    def __init__(self, memory: Any, *, k: int = 5, callback_manager: Any = None,
                 verbose: bool = False, **read_options: Any) -> None:
        self.memory = memory
        self.k = k
        self.read_options = read_kwargs({}, read_options)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def with_options(self, **changes: Any) -> MemkitRetriever:
        options = {**{n: v for n, v in self.read_options.items() if v is not None}, **changes}
        k = options.pop("k", self.k)
        return MemkitRetriever(self.memory, k=k, callback_manager=self.callback_manager,
                               **options)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """The read runs in a worker thread, so the event loop is not blocked."""
        return await asyncio.to_thread(self._retrieve, query_bundle)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        options = {n: v for n, v in self.read_options.items()
                   if v is not None and n in READ_OPTIONS}
        result = self.memory.read(query_bundle.query_str, k=self.k, **options)
        out = []
        for hit in result.hits:
            node = TextNode(id_=str(hit.item.id), text=hit.item.text,
                            metadata=hit_metadata(hit, dict(hit.item.metadata)),
                            excluded_llm_metadata_keys=list(_MEMKIT_KEYS),
                            excluded_embed_metadata_keys=list(_MEMKIT_KEYS))
            out.append(NodeWithScore(node=node, score=float(hit.score)))
        return out
