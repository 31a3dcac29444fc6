"""Stage 2 of MemSifter: a proxy LLM reads the prefiltered units, thinks, and ranks them.

:class:`ProxyRanker` works over any :class:`memkit.llm.base.LLM` (local transformers or GGUF,
vLLM, an OpenAI-compatible server, the scripted fake): zero-shot with an instruction-tuned
model, or with a proxy trained by :mod:`memkit.sifterlab.train`. :func:`sift` chains
the prefilter and the ranker.

>>> from memkit.llm.fake import ScriptedLLM
>>> from memkit.backends.sifter.prefilter import Unit
>>> llm = ScriptedLLM({"Current question": "<think>1 says Oslo</think><ranking>1,0</ranking>"})
>>> units = [Unit("a", "Bob: hi"), Unit("b", "Ann: Oslo")]
>>> r = ProxyRanker(llm).rank("Where does Ann live?", units)
>>> r.order, [u.uid for u in r.top(1)]
([1, 0], ['b'])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memkit.backends.sifter.parse import ParsedRanking, parse_ranking
from memkit.backends.sifter.prefilter import PrefilterResult, Unit, prefilter
from memkit.backends.sifter.prompt import PromptConfig, build_messages
from memkit.embed.base import Embedder
from memkit.errors import InvalidInput
from memkit.types import Cost

__all__ = ["ProxyRanker", "RankResult", "SiftResult", "resolve_llm", "sift"]


@dataclass
class RankResult:
    """A proxy ranking of ``units``: ``order`` is a permutation of their indices."""

    units: list[Unit]
    order: list[int]
    parsed: ParsedRanking
    text: str
    cost: Cost = field(default_factory=Cost)

    @property
    def fell_back(self) -> bool:
        """True when the model gave no usable ranking (order = prefilter order)."""
        return not self.parsed.ok

    def top(self, k: int) -> list[Unit]:
        return [self.units[i] for i in self.order[:k]]


def resolve_llm(llm: Any) -> Any:
    """An LLM instance, or a spec string for :func:`memkit.llm.load_llm`."""
    if isinstance(llm, str):
        from memkit.llm import load_llm  # type: ignore[attr-defined]

        return load_llm(llm)
    if llm is None or not hasattr(llm, "complete_many"):
        raise InvalidInput(f"need an LLM (memkit.llm.base.LLM) or a spec string, got {llm!r}")
    return llm


class ProxyRanker:
    """Rank units with a proxy LLM. ``max_tokens`` bounds thinking + ranking."""

    def __init__(
        self,
        llm: Any,
        *,
        config: PromptConfig | None = None,
        top_n: int | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        self.llm = resolve_llm(llm)
        config = config or PromptConfig()
        if top_n is not None:
            config = PromptConfig(config.system, config.task, top_n, config.unit_max_chars)
        self.config = config
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed

    def messages(self, query: str, units: Sequence[Unit]) -> list[dict[str, str]]:
        return build_messages(query, units, self.config)

    def rank(self, query: str, units: Sequence[Unit],
             fallback: Sequence[int] | None = None) -> RankResult:
        """Rank ``units`` (prefiltered, chronological) for ``query``.

        ``fallback``: the order in which units the model leaves out are appended (e.g. the
        prefilter's score order); default: the order given.
        """
        return self.rank_many([query], [units], None if fallback is None else [fallback])[0]

    def rank_many(self, queries: Sequence[str], unit_lists: Sequence[Sequence[Unit]],
                  fallbacks: Sequence[Sequence[int] | None] | None = None) -> list[RankResult]:
        """Rank several queries in one batch (backends may run them concurrently)."""
        if len(queries) != len(unit_lists):
            raise InvalidInput("one unit list per query")
        fbs = list(fallbacks) if fallbacks is not None else [None] * len(queries)
        todo = [i for i, us in enumerate(unit_lists) if len(us) > 1]
        results: list[RankResult | None] = [None] * len(queries)
        for i, us in enumerate(unit_lists):
            if len(us) <= 1:  # nothing to rank: no LLM call
                trivial = parse_ranking("", len(us), fallback=fbs[i])
                results[i] = RankResult(list(us), list(range(len(us))), trivial, "")
        if todo:
            t0 = time.perf_counter()
            outs = self.llm.complete_many(
                [self.messages(queries[i], unit_lists[i]) for i in todo],
                temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed,
            )
            per_ms = (time.perf_counter() - t0) * 1000 / len(todo)
            for i, out in zip(todo, outs, strict=True):
                units = list(unit_lists[i])
                parsed = parse_ranking(out.text, len(units), fallback=fbs[i])
                cost = Cost(ms=per_ms, llm_calls=0 if out.cached else 1,
                            prompt_tokens=0 if out.cached else out.prompt_tokens,
                            completion_tokens=0 if out.cached else out.completion_tokens)
                results[i] = RankResult(units, parsed.order, parsed, out.text, cost)
        return [r for r in results if r is not None]


@dataclass
class SiftResult:
    """Prefilter + proxy: ``units`` is the final order, best first."""

    prefiltered: PrefilterResult
    ranked: RankResult

    @property
    def units(self) -> list[Unit]:
        return [self.ranked.units[i] for i in self.ranked.order]

    @property
    def indices(self) -> list[int]:
        """Indices into the original (pre-prefilter) unit list, best first."""
        return [self.prefiltered.indices[i] for i in self.ranked.order]


def sift(
    query: str,
    units: Sequence[Unit],
    embedder: Embedder,
    ranker: ProxyRanker,
    budget_tokens: int | None = 8192,
    **prefilter_options: Any,
) -> SiftResult:
    """Prefilter ``units`` for ``query`` then rank the survivors with ``ranker``."""
    pre = prefilter(query, units, embedder, budget_tokens, **prefilter_options)
    by_score = sorted(range(len(pre.units)), key=lambda i: (-pre.scores[i], i))
    return SiftResult(pre, ranker.rank(query, pre.units, fallback=by_score))
