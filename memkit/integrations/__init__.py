"""Adapters for the frameworks agent builders already use; each needs its own extra.

- :mod:`memkit.integrations.langchain` ([langchain]): ``MemkitVectorStore``, ``MemkitRetriever``
- :mod:`memkit.integrations.langgraph` ([langgraph]): ``MemkitStore`` (a LangGraph BaseStore)
- :mod:`memkit.integrations.llamaindex` ([llamaindex]): ``MemkitRetriever``
- :mod:`memkit.integrations.otel` ([otel]): ``traced(memory)``, ``traced_llm(llm)``

Nothing here is imported by ``import memkit``; importing a module whose extra is missing
raises :class:`memkit.errors.MissingDependency` naming the extra.
"""
