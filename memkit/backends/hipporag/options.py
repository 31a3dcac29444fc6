"""HippoRAG's typed options: indexing settings plus every retrieval knob.

Retrieval knobs left unset take :class:`~memkit.backends.hipporag.retriever.RetrievalOptions`'
defaults - or, with no LLM, the LLM-free defaults measured on MuSiQue and LoCoMo
(``LLM_FREE_DEFAULTS``, see ``evals/hipporag/`` and ``evals/lexical/``). The same knobs can
be set for one read:
``mem.read(q, backend="hipporag", read_options={"hipporag": {"damping": 0.7}})``.

The LLM features are flags of the same kind, each settable for the backend or for one read:
``filter`` (the recognition filter; default on with an LLM and the paper defaults) and
``decompose`` (LLM query decomposition, default off). ``defaults`` picks the base the knobs
start from: ``"paper"`` (HippoRAG 2's), ``"llm_free"`` (``LLM_FREE_DEFAULTS``) or ``"auto"``
(paper with an LLM, LLM-free without). The filter on the LLM-free defaults adds the fact
channel (``use_facts``, unless set) to their seeds.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import typing
from typing import Any, Literal

import pydantic
from pydantic import Field

from memkit.backends.hipporag.retriever import RetrievalOptions
from memkit.options import Options

#: LLM-free retrieval defaults: the MuSiQue ablation (evals/hipporag/), then the seed passages
#: from dense + BM25 fused by min-max, BM25 passage weights and session links between the
#: turns of a conversation (evals/lexical/README.md: they beat the earlier defaults on both
#: MuSiQue-200 and LoCoMo and beat dense on both samples), then date nodes of dated turns
#: and time questions (round 4: LoCoMo R@5 57.5 -> 59.8, temporal 63.4 -> 73.1; a no-op on
#: undated passages such as MuSiQue's, like the session links)
LLM_FREE_DEFAULTS: dict[str, Any] = {
    "use_facts": False, "query_phrase_weight": 1.0, "dense_seed_passages": 2,
    "fusion": "ppr", "seed_fusion": "minmax", "lexical_passage_weight": 0.02,
    "session_weight": 1.0, "session_window": 2,
    "date_weight": 0.3, "date_session": True, "date_question_weight": 0.3,
}
#: the defaults that need BM25 (the [lexical] extra): left out when bm25s is not installed,
#: so a base install reads with the rest of the defaults instead of failing
LEXICAL_DEFAULTS = ("seed_fusion", "lexical_passage_weight")


def llm_free_defaults() -> dict[str, Any]:
    """``LLM_FREE_DEFAULTS`` less the BM25 ones when ``bm25s`` is not importable."""
    if importlib.util.find_spec("bm25s") is not None:
        return dict(LLM_FREE_DEFAULTS)
    return {k: v for k, v in LLM_FREE_DEFAULTS.items() if k not in LEXICAL_DEFAULTS}

_HINTS = typing.get_type_hints(RetrievalOptions)
#: retrieval knobs settable as options (the filter is the ``filter`` option)
RETRIEVAL_KEYS = [f.name for f in dataclasses.fields(RetrievalOptions) if f.name != "use_filter"]

_LITERALS: dict[str, Any] = {"fusion": Literal["ppr", "rrf"],
                             "ppr_method": Literal["power", "push"],
                             "seed_fusion": Literal["dense", "rrf", "minmax"]}


def _optional_fields() -> dict[str, Any]:
    return {name: (_LITERALS.get(name, _HINTS[name]) | None, None) for name in RETRIEVAL_KEYS}


#: per-read overrides of the retrieval knobs (all optional)
HippoRAGReadOptions: type[Options] = pydantic.create_model(  # type: ignore[call-overload]
    "HippoRAGReadOptions", __base__=Options, __doc__="Retrieval knobs for one read.",
    filter=(bool | None, Field(None, description="the LLM recognition filter for this read "
                                                   "(default: the backend's setting)")),
    **_optional_fields())


class _Indexing(Options):
    extractor: Literal["auto", "llm", "spacy", "rules"] = Field(
        "auto", description="auto: LLM OpenIE with an LLM, else spaCy if installed, else rules")
    filter: bool | None = Field(None, description="LLM recognition filter at query time "
                                                  "(default: with an LLM and the paper defaults)")
    defaults: Literal["auto", "paper", "llm_free"] = Field(
        "auto", description="retrieval defaults: HippoRAG 2's (paper), LLM_FREE_DEFAULTS "
                            "(llm_free), or auto: paper with an LLM, else llm_free")
    synonymy_threshold: float = Field(0.8, ge=-1.0, le=1.0)
    synonymy_max: int = Field(100, ge=0)
    max_attempts: int = Field(3, ge=1, description="extraction retries of a failed passage")
    batch_size: int = Field(32, ge=1, le=4096)
    spacy_model: str | None = None
    spacy_processes: int = Field(1, ge=0, le=64, description=(
        "spaCy parse worker processes (nlp.pipe n_process) for indexing chunks of at "
        "least 2 x batch_size passages; 0 = one per core, at most 4; 1 parses in process"))
    noun_phrases: bool | None = None
    cooccurrence: bool | None = None
    hnsw_threshold: int = Field(50_000, ge=1)
    fact_vectors: Literal["auto", "write", "read"] = Field(
        "auto", description="when facts are embedded: write (while indexing), read (on the "
                            "first read that uses the fact channel, through the string cache) "
                            "or auto: write when the backend's reads use facts (the LLM filter, "
                            "the paper defaults, use_facts), else read")


#: the backend's settings: indexing options and the retrieval knobs
HippoRAGOptions: type[_Indexing] = pydantic.create_model(  # type: ignore[call-overload]
    "HippoRAGOptions", __base__=_Indexing, __doc__="Settings of the hipporag backend.",
    **_optional_fields())


def retrieval_options(options: Options, has_llm: bool,
                      override: Options | None = None) -> RetrievalOptions:
    """The RetrievalOptions for a read: dataclass defaults (or the LLM-free ones), then the
    backend's options, then one read's overrides. The filter: the read's flag, else the
    backend's, else on with the paper defaults; never without an LLM. A filter on the
    LLM-free defaults (which seed without facts) turns the fact channel on unless
    ``use_facts`` was set."""
    kind = getattr(options, "defaults", "auto")
    paper = has_llm if kind == "auto" else kind == "paper"
    ro: dict[str, Any] = {} if paper else llm_free_defaults()
    explicit: dict[str, Any] = {}
    for source in (options, override):
        if source is None:
            continue
        explicit.update({k: v for k, v in source.model_dump().items()
                         if k in RETRIEVAL_KEYS and v is not None})
    ro.update(explicit)
    flags = [getattr(s, "filter", None) for s in (override, options) if s is not None]
    chosen = next((f for f in flags if f is not None), None)
    use_filter = (paper if chosen is None else bool(chosen)) and has_llm
    if use_filter and "use_facts" not in explicit:
        ro["use_facts"] = True
    ro["use_filter"] = use_filter
    return RetrievalOptions(**ro)
