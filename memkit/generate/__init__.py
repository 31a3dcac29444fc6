"""Generation on top of memory: verbatim recall (RecaLLM) and, later, the reader.

The transformers front end (``generate_with_recall``) is imported lazily so that importing
this package never pulls in torch / transformers.
"""

from __future__ import annotations

from typing import Any

from memkit.generate.recall import (
    DEFAULT_MAX_SPAN_TOKENS,
    Allowed,
    ContextIndex,
    RecallConfig,
    RecalledSpan,
    RecallState,
    mask_scores,
)
from memkit.generate.recall_result import RecallInterrupted, RecallResult, RecallSpanText
from memkit.generate.recall_tokens import (
    END_RECALL,
    RECALL_TOKENS,
    START_RECALL,
    add_recall_tokens,
    has_recall_tokens,
    recall_token_ids,
)

_LAZY = {
    "generate_with_recall": "memkit.generate.recall_hf",
    "RecallLogitsProcessor": "memkit.generate.recall_hf",
    "hf_delimiter_ids": "memkit.generate.recall_hf",
    "generate_with_recall_llamacpp": "memkit.generate.recall_llamacpp",
    "LlamaCppRecallProcessor": "memkit.generate.recall_llamacpp",
}

__all__ = [
    "DEFAULT_MAX_SPAN_TOKENS",
    "END_RECALL",
    "RECALL_TOKENS",
    "START_RECALL",
    "Allowed",
    "ContextIndex",
    "RecallConfig",
    "RecallInterrupted",
    "RecallResult",
    "RecallSpanText",
    "RecallState",
    "RecalledSpan",
    "add_recall_tokens",
    "has_recall_tokens",
    "mask_scores",
    "recall_token_ids",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Import the framework front ends on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
