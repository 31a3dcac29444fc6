"""HippoRAG 2 graph memory (Gutiérrez et al., 2025): phrase and passage nodes, relation,
context and synonymy edges, Personalized PageRank retrieval seeded from query-fact matches.

``Memory.open(path, backends=["hipporag", "dense"])`` and ``read(q, backend="hipporag")``.
Works with an LLM (OpenIE extraction, recognition filter) or without one (spaCy / rule
extraction, no-filter queries). See :mod:`memkit.backends.hipporag.backend` for options.
"""

from memkit.backends.hipporag.backend import LLM_FREE_DEFAULTS, HippoRAGBackend
from memkit.backends.hipporag.extract_rules import RuleExtractor
from memkit.backends.hipporag.extraction import Extraction
from memkit.backends.hipporag.ppr import PPROperator, personalized_pagerank
from memkit.backends.hipporag.push import LocalPPR, local_ppr

__all__ = ["LLM_FREE_DEFAULTS", "Extraction", "HippoRAGBackend", "LocalPPR", "PPROperator",
           "RuleExtractor", "local_ppr", "personalized_pagerank"]
