"""Building an extractor from hipporag's options: one function, used by the backend and by
workers that extract outside it (the Ray ingest's extract stage)."""

from __future__ import annotations

from typing import Any

from memkit.backends.hipporag.extract_rules import RuleExtractor
from memkit.backends.hipporag.extraction import Extractor
from memkit.errors import ConfigError
from memkit.nlp import spacy_available


def resolve_kind(kind: str, has_llm: bool) -> str:
    """``auto`` -> ``llm`` with an LLM, else ``spacy`` when installed, else ``rules``."""
    if kind == "auto":
        return "llm" if has_llm else "spacy" if spacy_available() else "rules"
    return kind


def make_extractor(kind: str, options: Any, llm: Any = None) -> Extractor:
    """The extractor ``kind`` (auto, llm, spacy, rules) configured by hipporag ``options``."""
    kind = resolve_kind(kind, llm is not None)
    if kind == "llm":
        if llm is None:
            raise ConfigError("hipporag extractor 'llm' needs Memory.open(..., llm=...)")
        from memkit.backends.hipporag.openie import OpenIEExtractor

        return OpenIEExtractor(llm)
    if kind == "spacy":
        from memkit.backends.hipporag.extract_spacy import SpacyExtractor

        kw: dict[str, Any] = {k: getattr(options, k) for k in ("noun_phrases", "cooccurrence")
                              if getattr(options, k) is not None}
        if options.spacy_model is not None:
            kw["model"] = options.spacy_model
        kw["n_process"] = options.spacy_processes or None  # 0: one per core
        kw["parallel_min"] = 2 * int(options.batch_size)  # prepare() passes whole chunks
        return SpacyExtractor(**kw)
    if kind == "rules":
        return RuleExtractor()
    raise ConfigError(f"unknown hipporag extractor {kind!r} (auto, llm, spacy, rules)")
