"""Beam search over QA chains, following a decomposition DAG.

Per sub-question (in topological order) and per beam: substitute the placeholders with the
beam's entities, retrieve candidate QA pairs (``retrieve(text) -> [QACandidate]``, cached by
text), and extend the beam with each candidate. On a non-final hop each answer of a
candidate becomes its own chain, and only the best chain per distinct answer is kept; on a
final hop each candidate is a chain. A chain never takes a pair of a relation it already
used (the reverse question) nor a pair whose answers are all entities it already bound.
Beams are pruned to ``beam_width`` by chain score (ties: the last hop's score).

chain score = geometric mean over the chain's QA pairs of clip(0.5 * (s + 1), 1e-6, 1)
(``s`` = a pair's similarity to the sub-question it answered, in [-1, 1]).

A sub-question with several parents starts from the product of its parents' beams; a
combination is scored by the harmonic mean of the parents' chain scores and kept when it is
among the ``beam_width`` best and scores at least ``join_threshold`` (if none does, the best
one is kept). A sub-question with no candidates ends its chains: a question whose chains all
end early has no surviving chain, and the reader abstains.

>>> chain_score([1.0, 0.0])   # sqrt(1 * 0.5)
0.7071067811865476
>>> harmonic_mean([0.5, 1.0])
0.6666666666666666
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memkit.backends.panini.retrieval import QACandidate
from memkit.decomposition import PLACEHOLDER, Decomposition, SubQuestion

EPS = 1e-6


def normalised(s: float) -> float:
    """Map a similarity in [-1, 1] to (0, 1]: clip(0.5 * (s + 1), 1e-6, 1)."""
    return min(max(0.5 * (s + 1.0), EPS), 1.0)


def chain_score(similarities: Sequence[float]) -> float:
    """Geometric mean of the normalised similarities (EPS for an empty chain)."""
    if not similarities:
        return EPS
    return math.exp(sum(math.log(normalised(s)) for s in similarities) / len(similarities))


def harmonic_mean(scores: Sequence[float]) -> float:
    """Harmonic mean of the scores above EPS (EPS when none is)."""
    valid = [s for s in scores if s > EPS]
    if not valid:
        return EPS
    return len(valid) / sum(1.0 / s for s in valid)


@dataclass(frozen=True)
class Step:
    q_index: int
    text: str  # the substituted sub-question
    pair: QACandidate


@dataclass
class Chain:
    bindings: dict[int, str] = field(default_factory=dict)  # sub-question -> answer name
    steps: tuple[Step, ...] = ()
    score: float = EPS
    last: float = -1.0

    def extend(self, step: Step, bind: str | None) -> Chain:
        bindings = dict(self.bindings)
        if bind is not None:
            bindings[step.q_index] = bind
        steps = self.steps + (step,)
        return Chain(bindings, steps, chain_score([s.pair.score for s in steps]),
                     step.pair.score)

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "bindings": {f"Q{k + 1}": v for k, v in
                                                  sorted(self.bindings.items())},
                "steps": [{"q": f"Q{s.q_index + 1}", "sub_question": s.text,
                           "question": s.pair.question, "answers": list(s.pair.answer_names),
                           "qa_id": s.pair.qa_id, "item_id": s.pair.item_id,
                           "similarity": s.pair.score} for s in self.steps]}


@dataclass
class BeamParams:
    beam_width: int = 5
    join_threshold: float = 0.3
    single_hop_pairs: int = 15  # a one-hop component keeps this many pairs (the paper's)


@dataclass
class SearchResult:
    chains: list[Chain]  # surviving chains, best first
    components: list[list[int]]
    hop_beams: dict[int, int]  # sub-question -> beams kept (0 = dead end)
    retrievals: int = 0


def substitute(text: str, bindings: dict[int, str]) -> str:
    """Replace ``<ENTITY_Qn>`` by the name bound to sub-question n-1 (unbound ones stay)."""
    return PLACEHOLDER.sub(lambda m: bindings.get(int(m.group(1)) - 1, m.group(0)), text)


def components(questions: Sequence[SubQuestion]) -> list[list[int]]:
    """Connected components of the retrieval sub-questions, each in topological order
    (dependencies on non-retrieval sub-questions are ignored)."""
    active = [i for i, q in enumerate(questions) if q.requires_retrieval]
    parent = {i: i for i in active}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in active:
        for d in questions[i].deps:
            if d in parent:
                parent[find(i)] = find(d)
    groups: dict[int, list[int]] = {}
    for i in active:  # indices only refer backwards, so ascending order is topological
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _joined(parents: list[list[Chain]], params: BeamParams) -> list[Chain]:
    combos = []
    for combo in itertools.product(*(p[:params.beam_width] for p in parents)):
        combos.append((harmonic_mean([c.score for c in combo]), combo))
    combos.sort(key=lambda x: -x[0])
    keep = [c for c in combos[:params.beam_width] if c[0] >= params.join_threshold]
    if not keep and combos:
        keep = combos[:1]
    out = []
    for h, combo in keep:
        bindings: dict[int, str] = {}
        steps: list[Step] = []
        for c in combo:
            bindings.update(c.bindings)
            steps.extend(s for s in c.steps if s not in steps)
        out.append(Chain(bindings, tuple(steps), h, -1.0))
    return out


def beam_search(decomposition: Decomposition,
                retrieve: Callable[[str], list[QACandidate]],
                params: BeamParams | None = None) -> SearchResult:
    """Run the beam search over every component of the decomposition."""
    params = params or BeamParams()
    qs = decomposition.questions
    comps = components(qs)
    cache: dict[str, list[QACandidate]] = {}
    hop_beams: dict[int, int] = {}

    def fetch(text: str) -> list[QACandidate]:
        if text not in cache:
            cache[text] = retrieve(text)
        return cache[text]

    survivors: list[Chain] = []
    for comp in comps:
        if len(comp) == 1:  # one hop: one dual retrieval, its best pairs are the evidence
            i = comp[0]
            text = substitute(qs[i].text, {})
            found = fetch(text)[:params.single_hop_pairs]
            hop_beams[i] = len(found)
            survivors += [Chain().extend(Step(i, text, p), None) for p in found]
            continue
        done: dict[int, list[Chain]] = {}
        in_comp = set(comp)
        has_child = {d for i in comp for d in qs[i].deps if d in in_comp}
        for i in comp:
            deps = [d for d in qs[i].deps if d in in_comp]
            if not deps:
                priors = [Chain()]
            elif len(deps) == 1:
                priors = done.get(deps[0], [])
            else:
                priors = _joined([done.get(d, []) for d in deps], params)
                if any(not done.get(d) for d in deps):
                    priors = []
            final = i not in has_child
            cands: list[Chain] = []
            best: dict[str, Chain] = {}
            for prior in priors:
                text = substitute(qs[i].text, prior.bindings)
                used = {s.pair.qa_id for s in prior.steps}
                relations = {s.pair.phrase_id for s in prior.steps if s.pair.phrase_id >= 0}
                bound = {v.casefold() for v in prior.bindings.values()}
                for pair in fetch(text):
                    if pair.qa_id in used or pair.phrase_id in relations or \
                            (bound and all(a.key in bound for a in pair.answers)):
                        continue  # a chain does not reuse a relation or bounce back
                    step = Step(i, text, pair)
                    if final:
                        cands.append(prior.extend(step, None))
                        continue
                    for ans in pair.answers:
                        new = prior.extend(step, ans.name)
                        old = best.get(ans.key)
                        if old is None or (new.score, new.last) > (old.score, old.last):
                            best[ans.key] = new
            cands += list(best.values())
            cands.sort(key=lambda c: (-c.score, -c.last))
            done[i] = cands[:params.beam_width]
            hop_beams[i] = len(done[i])
        for i in comp:
            if i not in has_child:
                survivors += done.get(i, [])
    survivors.sort(key=lambda c: (-c.score, -c.last))
    return SearchResult(survivors, comps, hop_beams, len(cache))
