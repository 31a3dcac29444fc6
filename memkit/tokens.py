"""memkit's one tokenizer-free token estimate, used wherever a size in tokens is needed
without a model at hand: read budgets, the MemSifter prefilter, Panini's context size, LLM
usage when a backend reports none, and the default ``Embedder.count_tokens``.

>>> approx_tokens(""), approx_tokens("abcd"), approx_tokens("a b c d e"), approx_tokens("x" * 40)
(0, 1, 5, 10)
"""

from __future__ import annotations


def approx_tokens(text: str) -> int:
    """About four characters per token, and at least one token per word."""
    return max(len(text) // 4, len(text.split()))
