"""The ``facts`` reranker: hits that state the asked relation of the asked subject first.

``Memory.read(q, rerank="facts")`` (LLM-free). The query's relation comes from cue words
(:data:`CUES`: "live", "moved", "home" -> ``lives in``; "work", "job", "employer" ->
``works at``; "partner", "dating", "married" -> ``partner of``); its subject is any fact
subject named in the query. Hits are put in tiers, each keeping the backend's order:

1. fact items (from ``Memory.remember``) with a triple of that subject and relation;
2. other hits that name the subject;
3. the rest.

A query with no cue and no subject keeps the backend's order. Options:
``candidates`` (how many hits the backend fetches first; default ``4 * k``, set by the read).

>>> relation_cue("Where does Ann Smith work these days?")
'works at'
"""

from __future__ import annotations

from typing import Any

from memkit.nlp import normalise_phrase
from memkit.rerank import Reranked
from memkit.types import Hit

CUES = {
    "lives in": ("live", "lives", "living", "moved", "move", "home", "reside", "resides",
                 "based", "city"),
    "works at": ("work", "works", "working", "job", "employer", "employed", "company"),
    "partner of": ("partner", "dating", "married", "girlfriend", "boyfriend", "wife",
                   "husband", "relationship", "spouse"),
}


def relation_cue(query: str) -> str | None:
    words = set(normalise_phrase(query).split())
    for relation, cues in CUES.items():
        if words & set(cues):
            return relation
    return None


class FactReranker:
    """See the module docstring."""

    def __init__(self, memory: Any, candidates: int | None = None) -> None:
        self.memory = memory

    def rerank(self, query: str, hits: list[Hit], k: int) -> Reranked:
        q = f" {normalise_phrase(query)} "
        relation = relation_cue(query)
        tiers = []
        for rank, hit in enumerate(hits):
            triples = hit.item.metadata.get("triples") or [] \
                if hit.item.metadata.get("kind") == "fact" else []
            subjects = {normalise_phrase(str(t[0])) for t in triples if len(t) == 3}
            named = any(s and f" {s} " in q for s in subjects)
            exact = named and relation is not None and any(
                len(t) == 3 and t[1] == relation and f" {normalise_phrase(str(t[0]))} " in q
                for t in triples)
            names_subject = named or _names_any_subject(hit.item.text, q)
            tiers.append((0 if exact else 1 if names_subject else 2, rank, hit))
        tiers.sort(key=lambda t: t[:2])
        return Reranked(hits=[t[2] for t in tiers][:k],
                        trace={"relation": relation,
                               "tiers": [t[0] for t in tiers][:k]})


def _names_any_subject(text: str, q: str) -> bool:
    """The hit's speaker (a turn "[date] Name: ...") is named in the query."""
    head = text.split("] ", 1)[-1].split(":", 1)[0] if text.startswith("[") else ""
    name = normalise_phrase(head)
    return bool(name) and f" {name} " in q
