"""A synthetic stream of fact tasks plus general text, for measuring forgetting on a CPU.

Round ``r`` writes new "entity -> attribute" facts about fresh entities; from round 2 on it also
*updates* facts written earlier (a new value replaces the old, so the right answer afterwards is
the new value). General text comes from a small grammar; part of it is held out for perplexity.

>>> s = make_fact_stream(n_rounds=3, facts_per_round=4, updates_per_round=1, n_general=10,
...                      seed=1)
>>> len(s.rounds), [len(r) for r in s.rounds]
(4, [4, 4, 5, 5])
>>> f = s.rounds[0][0]
>>> f.question == f"what is the {f.attribute} of {f.entity} ?"
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "color": ("red", "blue", "green", "amber", "violet", "grey", "white", "black"),
    "city": ("paris", "lyon", "oslo", "lima", "tokyo", "cairo", "quito", "perth"),
    "pet": ("cat", "dog", "hamster", "parrot", "ferret", "turtle", "rabbit", "goat"),
    "sport": ("tennis", "rowing", "judo", "golf", "rugby", "cricket", "fencing", "polo"),
    "drink": ("tea", "coffee", "cocoa", "juice", "milk", "cider", "water", "soda"),
}
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kr", "st")
_NUCLEI = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "n", "r", "k", "x", "l", "m", "th")

_ANIMALS = ("fox", "owl", "bear", "deer", "wolf", "crow", "frog", "mole")
_FOODS = ("bread", "apple", "seed", "fish", "honey", "berry", "corn", "nut")
_PLACES = ("forest", "river", "garden", "field", "barn", "hill", "lake", "cave")
_ADJS = ("small", "old", "quiet", "quick", "brave", "lazy", "young", "tired")
_VERBS = ("eats", "finds", "hides", "carries", "smells", "wants")
_PEOPLE = ("farmer", "child", "teacher", "sailor", "baker", "doctor")
_ACTS = ("reads", "writes", "sells", "buys", "draws")
_THINGS = ("book", "letter", "map", "poem", "song")


@dataclass(frozen=True)
class Fact:
    entity: str
    attribute: str
    value: str
    round: int
    previous: str | None = None  # the value this fact replaces (an update), if any

    @property
    def question(self) -> str:
        return f"what is the {self.attribute} of {self.entity} ?"

    @property
    def text(self) -> str:
        return f"the {self.attribute} of {self.entity} is {self.value} ."


@dataclass(frozen=True)
class SyntheticItem:
    """A memory item shaped like ``memkit.types.MemoryItem`` for what consolidation reads."""

    id: int
    text: str
    created_at: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class FactStream:
    rounds: list[list[Fact]]
    general_train: list[str]
    general_heldout: list[str]

    def items(self, round_index: int) -> list[SyntheticItem]:
        """Round ``round_index`` as memory items with question/answer metadata (ids unique)."""
        base = sum(len(r) for r in self.rounds[:round_index])
        return [
            SyntheticItem(id=base + i + 1, text=f.text, created_at=float(round_index) + i * 1e-4,
                          metadata={"question": f.question, "answer": f.value})
            for i, f in enumerate(self.rounds[round_index])
        ]

    def _final_round_of(self) -> dict[str, int]:
        last: dict[str, int] = {}
        for r, facts in enumerate(self.rounds):
            for f in facts:
                last[f.question] = r
        return last

    def task(self, j: int) -> list[tuple[str, str]]:
        """Evaluation pairs of task ``j``: facts written in round ``j`` and never replaced."""
        last = self._final_round_of()
        return [(f.question, f.value) for f in self.rounds[j] if last[f.question] == j]

    def updates(self, j: int) -> list[Fact]:
        return [f for f in self.rounds[j] if f.previous is not None]

    def all_texts(self) -> list[str]:
        facts = [f.question + " " + f.value for r in self.rounds for f in r]
        return facts + self.general_train + self.general_heldout


def _names(rng: random.Random, n: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    reserved = {w for vals in ATTRIBUTES.values() for w in vals} | set(ATTRIBUTES)
    while len(out) < n:
        name = "".join(rng.choice(_ONSETS) + rng.choice(_NUCLEI) for _ in range(2))
        name += rng.choice(_CODAS)
        if name not in seen and name not in reserved:
            seen.add(name)
            out.append(name)
    return out


def general_sentence(rng: random.Random) -> str:
    """One sentence of the general-text grammar (learnable, not trivial)."""
    kind = rng.randrange(3)
    if kind == 0:
        return (f"the {rng.choice(_ADJS)} {rng.choice(_ANIMALS)} {rng.choice(_VERBS)} "
                f"the {rng.choice(_FOODS)} in the {rng.choice(_PLACES)} .")
    if kind == 1:
        return f"a {rng.choice(_PEOPLE)} {rng.choice(_ACTS)} a {rng.choice(_THINGS)} ."
    return f"the {rng.choice(_ANIMALS)} sleeps near the {rng.choice(_PLACES)} ."


def make_fact_stream(
    n_rounds: int = 5,
    facts_per_round: int = 40,
    updates_per_round: int = 8,
    n_general: int = 1200,
    heldout_general: int = 200,
    seed: int = 0,
) -> FactStream:
    """Round 0 (base knowledge) plus ``n_rounds`` consolidation rounds of facts.

    Updates start at round 2 and pick facts (each at most once) from any earlier round.
    """
    rng = random.Random(seed)
    names = iter(_names(rng, facts_per_round * (n_rounds + 1)))
    rounds: list[list[Fact]] = []
    updatable: list[Fact] = []
    for r in range(n_rounds + 1):
        facts = []
        for _ in range(facts_per_round):
            attr = rng.choice(sorted(ATTRIBUTES))
            facts.append(Fact(next(names), attr, rng.choice(ATTRIBUTES[attr]), r))
        if r >= 2:
            for old in rng.sample(updatable, min(updates_per_round, len(updatable))):
                updatable.remove(old)
                value = rng.choice([v for v in ATTRIBUTES[old.attribute] if v != old.value])
                facts.append(Fact(old.entity, old.attribute, value, r, previous=old.value))
        updatable.extend(f for f in facts if f.previous is None)
        rounds.append(facts)
    general = [general_sentence(rng) for _ in range(n_general + heldout_general)]
    return FactStream(rounds, general[:n_general], general[n_general:])
