"""MemSifter (arXiv 2603.03379): an embedding prefilter, then a small proxy LLM that thinks and
ranks the candidate memory units, trained by GRPO with an outcome reward measuring how much
each cut-off of its ranking helps a working LLM answer.

- :mod:`.prefilter` -- :class:`Unit`, :func:`prefilter` (token budget, chronological order)
- :mod:`.prompt` / :mod:`.parse` -- the proxy prompt and the robust ranking parser
- :mod:`.rank` -- :class:`ProxyRanker`, :func:`sift`
- :mod:`.rerank` -- :class:`SifterReranker` (``Memory.read(..., rerank="sifter")``)
- training (rewards, working LLM, data, GRPO): :mod:`memkit.sifterlab`
"""

from memkit.backends.sifter.parse import ParsedRanking, parse_ranking
from memkit.backends.sifter.prefilter import PrefilterResult, Unit, prefilter
from memkit.backends.sifter.prompt import PromptConfig, build_messages
from memkit.backends.sifter.rank import ProxyRanker, RankResult, SiftResult, sift

__all__ = ["ParsedRanking", "PrefilterResult", "PromptConfig", "ProxyRanker", "RankResult",
           "SiftResult", "Unit", "build_messages", "parse_ranking", "prefilter", "sift"]
