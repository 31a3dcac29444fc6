"""HippoRAG 2 retrieval: facts -> (optional LLM recognition filter) -> seeds -> PPR -> passages.

Pure functions over the graph arrays and the indexes; the backend wires them. Steps (paper
defaults in brackets):

1. score every fact against the query, min-max normalise, keep the top ``fact_top_k`` [5];
2. optionally let the LLM keep the facts that help answer the query (at most 4), mapped back
   to stored facts by exact, then fuzzy match; none left -> dense fallback when facts are
   the only seeds (the paper's pipeline), else the other channels below seed alone;
3. seeds: each kept fact with normalised score s adds s / (#passages mentioning p) to both of
   its phrases p; the top ``linking_top_k`` [5] phrases are kept. LLM-free extras (off by
   default): phrases named in the query (n-gram match against phrase nodes), the phrases
   of the top dense passages and of the top BM25 passages (``lexical_seed_passages``);
4. every candidate passage node gets minmax(dense score) x ``passage_node_weight`` [0.05]
   (+ minmax(BM25 score) x ``lexical_passage_weight``);
5. PPR (damping [0.5]) over the graph; passages ranked by PPR mass (``fusion="ppr"``), or
   fused with the dense ranking by weighted reciprocal rank (``fusion="rrf"``);
6. optional two-hop bridge (``bridge_passages``): the phrases of the first walk's top
   passages (other than the seed passages of step 3) that were not seeds yet (the entities a
   first hop found) are added as seeds, each
   ``bridge_weight`` x max(minmax(PPR), 0.1) / #passages, and the walk runs again.

Round-4 options, all off by default (``evals/lexical/README.md``): date nodes
(``date_weight``, ``date_session``), the dated turns of a time question
(``date_question_weight``), a session-diverse final ranking (``session_diversity``) and
Rocchio feedback for the dense channel (``prf_passages``, ``prf_weight``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydantic

from memkit.nlp import normalise_phrase

FILTER_SYSTEM = (
    "You are a critical component of a high-stakes question-answering system used by top "
    "researchers and decision-makers worldwide. Your primary role is to meticulously filter "
    "facts, keeping only those that help answer the question. Reply with JSON "
    '{"fact": [[subject, predicate, object], ...]} listing at most 4 of the given facts, '
    "copied exactly; an empty list if none is relevant."
)
_FILTER_EXAMPLE_Q = ("Are Imperial River (Florida) and Amaradia (Dolj) both located in the "
                     "same country?")
_FILTER_EXAMPLE_FACTS = [["imperial river", "is located in", "florida"],
                         ["imperial river", "is a river in", "united states"],
                         ["amaradia", "is located in", "romania"],
                         ["florida", "is a state in", "united states"],
                         ["amaradia", "flows through", "dolj county"]]
_FILTER_EXAMPLE_OUT = [["imperial river", "is located in", "florida"],
                       ["imperial river", "is a river in", "united states"],
                       ["amaradia", "is located in", "romania"]]


class FilterResult(pydantic.BaseModel):
    fact: list[list[str | int | float | None]] = []


@dataclass
class RetrievalOptions:
    fact_top_k: int = 5
    fact_candidates: int = 2000
    linking_top_k: int = 5
    passage_node_weight: float = 0.05
    damping: float = 0.5
    tol: float = 1e-7
    use_filter: bool = True
    use_facts: bool = True
    query_phrase_weight: float = 0.0
    dense_seed_passages: int = 0
    dense_seed_weight: float = 1.0
    # lexical channel (BM25 over the graph's passages, the [lexical] extra): the phrases of the
    # top BM25 passages seed the walk like the top dense ones; BM25 scores (min-max) weight
    # the passage nodes of the reset vector beside the dense ones
    lexical_seed_passages: int = 0
    lexical_seed_weight: float = 1.0
    lexical_passage_weight: float = 0.0
    # where the ``dense_seed_passages`` come from: the dense ranking ("dense"), or dense and
    # BM25 fused by rank ("rrf") or by min-max scores ("minmax"), see memkit.fusion
    seed_fusion: str = "dense"
    # > 0: the final ranking is the graph's fused with BM25's by weighted RRF (graph weight 1)
    lexical_rrf_weight: float = 0.0
    # two-hop bridge (LLM-free iterative retrieval): the phrases of the top passages of a
    # first walk (beyond the dense/BM25 seed passages, whose phrases seeded it already) that
    # were not seeds yet - the entities the walk reached - re-seed a second walk
    bridge_passages: int = 0
    bridge_weight: float = 0.5
    # LLM-free linking across passages (memkit.backends.hipporag.linking), built at read
    # time from the record: context edges for names/dates a passage's text names that its
    # extraction missed; passage-passage edges to the passages whose metadata title it names;
    # edges between phrases naming one entity (aliases, acronyms, dates); edges between the
    # turns of one conversation session (window 0: the whole session, else turns <= w apart)
    link_mentions: bool = False
    link_title_weight: float = 0.0
    link_alias_weight: float = 0.0
    session_weight: float = 0.0
    session_window: int = 0
    # a speaker node per conversation speaker (metadata["speaker"]), seeded when the query
    # names the speaker: each of their (allowed) turns gets this much reset weight
    speaker_weight: float = 0.0
    # date nodes (memkit.backends.hipporag.dates): a node per calendar span a passage with a
    # date of its own (metadata["date"]) names or implies (relative dates resolved against
    # that date; undated passages get none, see linked.passage_dates), joined to its
    # passages by context edges; > 0 turns them on and is the seed weight of a query's
    # dates. date_session: each turn is also joined to its session date's node
    date_weight: float = 0.0
    date_session: bool = False
    # a question asking for a time ("When ...?", dates.asks_for_a_date): this much reset
    # weight spread evenly over the (allowed) passages whose text names or implies a date
    date_question_weight: float = 0.0
    # final ranking: at most this many passages of one conversation session in the top k
    # (the rest follow); 0 = off
    session_diversity: int = 0
    # Rocchio pseudo-relevance feedback in dense space: the query vector + prf_weight x the
    # mean vector of the top prf_passages dense passages, re-normalised, is the dense query
    # of the seed passages and passage node weights; 0 = off
    prf_passages: int = 0
    prf_weight: float = 0.5
    fusion: str = "ppr"  # "ppr" | "rrf"
    graph_rrf_weight: float = 2.0
    rrf_k: int = 60
    dense_candidates: int = 20_000
    ppr_method: str = "power"  # "power" | "push"
    push_eps: float = 1e-6
    # LLM query decomposition (memkit.backends.hipporag.decomposed): the sub-questions seed
    # the walk, a later hop's seeds get the entities of its earlier hop's top passages
    decompose: bool = False
    decompose_bridge_passages: int = 2
    # query instructions for embedders that support them (query-to-fact, query-to-passage)
    fact_instruction: str | None = None
    passage_instruction: str | None = None


def minmax(x: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1]; a constant vector maps to ones.

    >>> minmax(np.array([1.0, 3.0, 2.0])).tolist()
    [0.0, 1.0, 0.5]
    >>> minmax(np.array([2.0, 2.0])).tolist()
    [1.0, 1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-12:
        return np.ones_like(x)
    return (x - lo) / (hi - lo)


def seed_weights(facts: Sequence[tuple[int, int, float]], passages_per_phrase: np.ndarray,
                 top: int) -> dict[int, float]:
    """Phrase-node seeds from kept facts ``(subject node, object node, normalised score)``:
    each adds score / #passages mentioning the phrase; the ``top`` heaviest are kept.

    >>> seed_weights([(0, 1, 1.0), (1, 2, 0.5)], np.array([1, 2, 4]), top=2)
    {0: 1.0, 1: 0.75}
    """
    w: dict[int, float] = {}
    for s, o, score in facts:
        for p in (s, o):
            w[p] = w.get(p, 0.0) + score / max(1, int(passages_per_phrase[p]))
    best = sorted(w.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(best[:top] if top > 0 else best)


def passage_seeds(passages: Sequence[int], scores: np.ndarray,
                  phrases_of: Callable[[int], Iterable[Any]], per_phrase: np.ndarray,
                  weight: float, skip: Callable[[int], bool] = lambda node: False
                  ) -> dict[int, float]:
    """Seeds from passages: each phrase node of passage p (score s, min-max normalised over
    ``passages``) gets weight x max(s, 0.1) / #passages mentioning it; nodes where ``skip``
    is true get nothing.

    >>> phrases = {7: [0, 1], 8: [1, 2]}.__getitem__
    >>> passage_seeds([7, 8], np.array([3.0, 1.0]), phrases, np.array([1, 2, 1]), 1.0)
    {0: 1.0, 1: 0.55, 2: 0.1}
    """
    out: dict[int, float] = {}
    norm = minmax(scores) if len(passages) > 1 else np.ones(len(passages))
    for pid, s in zip(passages, norm, strict=True):
        for node in phrases_of(int(pid)):
            node = int(node)
            if skip(node):
                continue
            out[node] = out.get(node, 0.0) + weight * max(float(s), 0.1) / max(
                1, int(per_phrase[node]))
    return out


def weighted_rrf(rankings: Sequence[tuple[Sequence[int], float]],
                 k: int = 60) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion: score(id) = Σ weight / (k + rank), rank from 1.

    >>> weighted_rrf([([1, 2], 2.0), ([2, 3], 1.0)], k=0)
    [(1, 2.0), (2, 2.0), (3, 0.5)]
    """
    scores: dict[int, float] = {}
    for ranking, weight in rankings:
        for rank, iid in enumerate(ranking, start=1):
            scores[iid] = scores.get(iid, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def query_ngrams(query: str, max_words: int = 6) -> list[str]:
    """Normalised word n-grams of the query, longest first (for phrase-node linking).

    >>> query_ngrams("Who founded Radio City?", 2)[:3]
    ['who founded', 'founded radio', 'radio city']
    """
    words = normalise_phrase(query).split()
    out: list[str] = []
    for n in range(min(max_words, len(words)), 0, -1):
        out.extend(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    return out


def filter_prompt(query: str, facts: Sequence[Sequence[str]]) -> list[dict[str, str]]:
    import json

    def user(q: str, fs: Sequence[Sequence[str]]) -> str:
        facts = json.dumps({"fact": [list(f) for f in fs]}, ensure_ascii=False)
        return f"Question: {q}\nFacts: {facts}"

    return [
        {"role": "system", "content": FILTER_SYSTEM},
        {"role": "user", "content": user(_FILTER_EXAMPLE_Q, _FILTER_EXAMPLE_FACTS)},
        {"role": "assistant", "content": json.dumps({"fact": _FILTER_EXAMPLE_OUT})},
        {"role": "user", "content": user(query, facts)},
    ]


def match_facts(returned: Sequence[object], candidates: Sequence[tuple[str, str, str]],
                cutoff: float = 0.8, limit: int = 4) -> list[int]:
    """Indices into ``candidates`` of the facts the filter returned: exact match on the
    normalised triple first, else the closest candidate by string similarity ≥ ``cutoff``.

    >>> match_facts([["Paris", "capital of", "France"], ["x", "y"]],
    ...             [("paris", "capital of", "france"), ("rome", "in", "italy")])
    [0]
    """
    keys = [" | ".join(normalise_phrase(x) for x in c) for c in candidates]
    out: list[int] = []
    for r in returned:
        if not isinstance(r, (list, tuple)) or len(r) != 3 or \
                not all(isinstance(x, str) for x in r):
            continue
        key = " | ".join(normalise_phrase(x) for x in r)
        if key in keys:
            idx = keys.index(key)
        else:
            close = difflib.get_close_matches(key, keys, n=1, cutoff=cutoff)
            if not close:
                continue
            idx = keys.index(close[0])
        if idx not in out:
            out.append(idx)
        if len(out) >= limit:
            break
    return out


def link_query_phrases(query: str, lookup: Callable[[str], int | None],
                       max_words: int = 6) -> list[int]:
    """Phrase ids named in the query: longest n-grams first, no overlapping words."""
    words = normalise_phrase(query).split()
    used = [False] * len(words)
    found: list[int] = []
    for n in range(min(max_words, len(words)), 0, -1):
        for i in range(len(words) - n + 1):
            if any(used[i:i + n]):
                continue
            pid = lookup(" ".join(words[i:i + n]))
            if pid is not None:
                found.append(pid)
                for j in range(i, i + n):
                    used[j] = True
    return found
