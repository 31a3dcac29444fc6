"""``Memory.read(query, rerank="sifter")``: the MemSifter proxy as a reranker over any hits.

Each hit is one unit (its creation time is the ``<date>``). The hits are cut to a token budget
(best backend score first), put back in chronological order (or kept best first for a trained
proxy that saw its candidates that way), ranked by the proxy LLM, and the top ``k`` returned in
the proxy's order. The proxy is ``memory.llm`` unless ``llm=`` is given (an LLM or a spec
string) or ``model=`` names a trained proxy directory (:mod:`memkit.backends.sifter.trained`;
``Memory.read(..., rerank_model=PATH)``), whose prompt settings (``top_n``, wording, unit
length) then apply unless given here.

    mem.read("Where did Ann move?", k=5, rerank="sifter",
             rerank_options={"candidates": 30, "budget_tokens": 6000})

Options: ``llm``, ``model``, ``candidates`` (hits fetched before reranking; read by
``Memory.read``), ``budget_tokens`` (default 8192), ``top_n`` (ids the proxy is asked for; default
``max(k, 10)``), ``max_tokens`` (proxy reply budget, default 1024), ``temperature``,
``unit_max_chars``, ``date_format`` (strftime, UTC).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from memkit.backends.sifter.prefilter import Unit, select_units
from memkit.backends.sifter.prompt import PromptConfig
from memkit.backends.sifter.rank import ProxyRanker, resolve_llm
from memkit.errors import ConfigError
from memkit.fusion import approx_tokens
from memkit.rerank import Reranked
from memkit.types import Cost, Hit

__all__ = ["SifterReranker"]


class SifterReranker:
    """Reorder a read's hits with a proxy LLM (see the module docstring)."""

    def __init__(
        self,
        memory: Any,
        *,
        llm: Any = None,
        model: str | None = None,
        candidates: int | None = None,
        budget_tokens: int | None = 8192,
        top_n: int | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        unit_max_chars: int | None = None,
        date_format: str = "%d %B %Y %H:%M",
    ) -> None:
        self.config: PromptConfig | None = None
        self.score_order = False  # units best hit first instead of chronological
        if model is not None and llm is not None:
            raise ConfigError("rerank_options: give llm= or model= (a trained proxy), not both")
        if model is not None:
            from memkit.backends.sifter.trained import load_proxy

            proxy = load_proxy(model)
            llm, self.config = proxy.llm, proxy.config
            self.score_order = proxy.order == "score"
            unit_max_chars = unit_max_chars if unit_max_chars is not None else \
                proxy.unit_max_chars
        llm = llm if llm is not None else getattr(memory, "llm", None)
        if llm is None:
            raise ConfigError(
                "rerank='sifter' needs an LLM: Memory.open(..., llm=...) or "
                "rerank_options={'llm': ...}"
            )
        self.llm = resolve_llm(llm)
        self.candidates = candidates
        self.budget_tokens = budget_tokens
        self.top_n = top_n
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.unit_max_chars = unit_max_chars
        self.date_format = date_format

    def _unit(self, hit: Hit) -> Unit:
        created = hit.item.created_at
        date = datetime.fromtimestamp(created, tz=UTC).strftime(self.date_format)
        return Unit(uid=hit.item.id, text=hit.item.text, date=date, order=created)

    def rerank(self, query: str, hits: list[Hit], k: int) -> Reranked:
        """The top ``k`` of ``hits`` in the proxy's order (evidence gains ``sifter_rank``);
        the trace holds the proxy's raw reply and which hits it was shown."""
        t0 = time.perf_counter()
        if len(hits) <= 1:
            return Reranked(hits[:k], Cost(), {"shown": [h.id for h in hits], "reply": ""})
        counts = [approx_tokens(h.item.text) for h in hits]
        # hits arrive best first: rank position is the prefilter score
        kept = select_units([-i for i in range(len(hits))], counts, self.budget_tokens)
        if not kept:
            kept = [0]
        if self.score_order:
            kept.sort()  # hit rank = the backend's score order
        else:
            kept.sort(key=lambda i: (hits[i].item.created_at, hits[i].item.id))
        units = [self._unit(hits[i]) for i in kept]
        base = self.config or PromptConfig(top_n=max(k, 10))
        top_n = self.top_n if self.top_n is not None else base.top_n
        ranker = ProxyRanker(
            self.llm,
            config=PromptConfig(base.system, base.task, top_n, self.unit_max_chars),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )
        by_hit_rank = sorted(range(len(kept)), key=lambda j: kept[j])
        result = ranker.rank(query, units, fallback=by_hit_rank)
        out: list[Hit] = []
        for pos, j in enumerate(result.order[:k]):
            hit = hits[kept[j]]
            hit.evidence = {**hit.evidence, "sifter_rank": pos + 1,
                            "sifter_ranked_by_model": j in set(result.parsed.ranked)}
            out.append(hit)
        cost = result.cost
        cost.ms = (time.perf_counter() - t0) * 1000
        return Reranked(out, cost, {"shown": [hits[i].id for i in kept], "reply": result.text,
                                    "parsed": list(result.parsed.ranked)})
