"""A generated, seeded knowledge-update benchmark: people whose facts change over time.

Each of ``people`` synthetic people (all in one scope, like a shared assistant's memory) gets
a timeline from 2018 to 2024 of where they live, where they work and whom they date, each
value held for a random span; each change is one chat turn by that person ("I just moved to
Lyon.", "I started working at Initech.", "My partner is Ada Brook."), remembered with
``Memory.remember`` at its event time, with small talk between. The stream is fed in
``checkpoints`` parts; after each part every (person, attribute) is asked:

* **current top-1**: the top hit of a default read names the person and the value that holds
  now (after the part fed so far);
* **past top-1**: the same question with ``valid_at`` = a random earlier time; the top hit
  names the value that held then;
* **staleness@5**: among the top-5 hits of the current question, the share that name the
  person and one of their *earlier* values for that attribute (not the current one).

Configurations: ``turns`` (remember with ``facts="off"``: memkit before this work),
``facts`` (rule facts, contradictions off), ``facts+contradictions`` (rule facts,
contradictions on), and each facts configuration with ``+rerank`` (the LLM-free ``facts``
reranker, :mod:`memkit.conversation.rerank`, over 20 dense candidates). All LLM-free.

    memkit eval knowledge-update --people 60 --seed 7 --embedder minilm
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

FIRST = ("Ada Alma Bruno Cara Dario Elin Farah Gus Hana Ivo Jonas Kira Liam Mona Nils Oda "
         "Pavel Quinn Rosa Sami Tara Ugo Vera Wim Xenia Yusuf Zora Emil Greta Hugo").split()
LAST = ("Brook Castell Dunmore Eckert Fairlie Garnet Holm Ibarra Jansen Kowal Lindqvist "
        "Marsh Novak Orr Petrov Quist Rivas Solberg Thorne Ulloa").split()
CITIES = ("Paris Lyon Berlin Oslo Madrid Lisbon Vienna Prague Dublin Krakow Porto Turin "
          "Geneva Ghent Bergen Malmo").split()
COMPANIES = ("Initech Globex Umbrella Vandelay Hooli Soylent Wonka Stark Acme Cyberdyne "
             "Tyrell Massive Dynamic Aperture Oscorp Gringotts").split()
TEMPLATES = {
    "lives in": ("I live in {v}.", "I just moved to {v}.", "I relocated to {v}.",
                 "I moved to {v} with my stuff."),
    "works at": ("I work at {v}.", "I started working at {v}.", "I joined {v}.",
                 "I got a job at {v}."),
    "partner of": ("I'm dating {v}.", "My partner is {v}.", "I am in a relationship with {v}."),
}
QUESTIONS = {"lives in": "Where does {p} live?", "works at": "Where does {p} work?",
             "partner of": "Who is {p}'s partner?"}
SMALL_TALK = ("Thanks, that is good to know.", "Sounds great!", "How was your weekend?",
              "Let me think about it.", "Good luck with that!")
CONFIGS = {"turns": ("off", "off", None), "facts": ("rules", "off", None),
           "facts+contradictions": ("rules", "rules", None),
           "facts+rerank": ("rules", "off", "facts"),
           "facts+contradictions+rerank": ("rules", "rules", "facts")}
YEAR = 365.25 * 86_400


@dataclass
class Change:
    at: float
    person: str
    attribute: str
    value: str
    text: str


@dataclass
class Stream:
    people: list[str]
    changes: list[Change] = field(default_factory=list)

    def value_at(self, person: str, attribute: str, t: float,
                 known: int | None = None) -> str | None:
        """The value that holds at ``t`` given the first ``known`` changes."""
        seen = [c for c in self.changes[:known] if c.person == person and
                c.attribute == attribute and c.at <= t]
        return max(seen, key=lambda c: c.at).value if seen else None

    def values(self, person: str, attribute: str, known: int | None = None) -> set[str]:
        return {c.value for c in self.changes[:known]
                if c.person == person and c.attribute == attribute}


def generate(people: int, seed: int, changes_per_attribute: tuple[int, int] = (2, 4)) -> Stream:
    """The seeded stream, in event-time order (names unique, values never repeat in a row)."""
    rng = random.Random(seed)
    names = rng.sample([f"{f} {s}" for f in FIRST for s in LAST], people)
    stream = Stream(names)
    start = datetime(2018, 1, 1, tzinfo=UTC).timestamp()
    for person in names:
        partners = [n for n in rng.sample([f"{f} {s}" for f in FIRST for s in LAST], 12)
                    if n not in names]
        for attribute, pool in (("lives in", CITIES), ("works at", COMPANIES),
                                ("partner of", partners)):
            t = start + rng.uniform(0, 0.5) * YEAR
            previous = None
            for _ in range(rng.randint(*changes_per_attribute)):
                value = rng.choice([v for v in pool if v != previous])
                text = rng.choice(TEMPLATES[attribute]).format(v=value)
                stream.changes.append(Change(t, person, attribute, value, text))
                previous = value
                t += rng.uniform(0.3, 2.0) * YEAR
    stream.changes.sort(key=lambda c: c.at)
    return stream


def _names(text: str, person: str, values: set[str]) -> set[str]:
    return {v for v in values if v in text} if person in text else set()


def run(stream: Stream, config: str, embedder: Any, checkpoints: int, seed: int
        ) -> dict[str, Any]:
    """Feed the stream in parts; after each, ask every question. Returns the metrics."""
    from memkit import Memory

    facts, contradictions, rerank = CONFIGS[config]
    rng = random.Random(seed + 1)
    cur = past = past_n = n = 0
    stale = hits_seen = 0
    t0 = time.perf_counter()
    fed = 0
    with Memory.open(None, embedder=embedder) as mem:
        bounds = [round(len(stream.changes) * (i + 1) / checkpoints) for i in range(checkpoints)]
        for bound in bounds:
            for change in stream.changes[fed:bound]:
                turns = [{"role": "user", "name": change.person, "content": change.text,
                          "at": change.at},
                         {"role": "assistant", "content": rng.choice(SMALL_TALK),
                          "at": change.at + 60}]
                mem.remember(turns, {"namespace": "kub"}, facts=facts,
                             contradictions=contradictions)
            fed = bound
            first_seen = {(c.person, c.attribute): c.at for c in reversed(stream.changes[:fed])}
            last_t = stream.changes[fed - 1].at
            for person in stream.people:
                for attribute, question in QUESTIONS.items():
                    if (person, attribute) not in first_seen:
                        continue
                    q = question.format(p=person)
                    values = stream.values(person, attribute, fed)
                    now_value = stream.value_at(person, attribute, last_t, fed)
                    res = mem.read(q, k=5, scope={"namespace": "kub"}, rerank=rerank)
                    n += 1
                    if res.hits and now_value in _names(res.hits[0].text, person, values):
                        cur += 1
                    for h in res.hits:
                        hits_seen += 1
                        said = _names(h.text, person, values)
                        if said and now_value not in said:
                            stale += 1
                    t_past = rng.uniform(first_seen[(person, attribute)], last_t)
                    then = stream.value_at(person, attribute, t_past, fed)
                    back = mem.read(q, k=1, scope={"namespace": "kub"}, valid_at=t_past,
                                    rerank=rerank)
                    past_n += 1
                    if back.hits and then in _names(back.hits[0].text, person, values):
                        past += 1
        items = mem.stats()["versions"]
    return {"config": config, "questions": n, "current_top1": cur / n,
            "past_top1_valid_at": past / past_n, "staleness_at5": stale / max(hits_seen, 1),
            "versions": items, "seconds": round(time.perf_counter() - t0, 1)}


def report(results: list[dict[str, Any]], args: dict[str, Any]) -> str:
    lines = ["# Knowledge-update benchmark (generated, seeded)", "",
             f"`memkit eval knowledge-update --people {args['people']} --seed {args['seed']} "
             f"--checkpoints {args['checkpoints']} --embedder {args['embedder']}`", "",
             f"{args['changes']} fact changes about {args['people']} people (where they live, "
             "work, whom they date), fed as chat turns in "
             f"{args['checkpoints']} parts; {results[0]['questions']} questions in all.", "",
             "| config | current top-1 | past top-1 (valid_at) | staleness in top-5 | "
             "record versions | seconds |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['config']} | {100 * r['current_top1']:.1f} % | "
                     f"{100 * r['past_top1_valid_at']:.1f} % | {100 * r['staleness_at5']:.1f} %"
                     f" | {r['versions']} | {r['seconds']} |")
    return "\n".join(lines) + "\n"


@click.command("knowledge-update")
@click.option("--people", default=60, show_default=True, help="Synthetic people.")
@click.option("--seed", default=7, show_default=True, help="Generator seed.")
@click.option("--checkpoints", default=3, show_default=True,
              help="Parts the stream is fed in; every question is asked after each part.")
@click.option("--embedder", default="minilm", show_default=True,
              help="Embedder spec (minilm, hash:DIM).")
@click.option("--config", "configs", multiple=True, type=click.Choice(list(CONFIGS)),
              help="Configurations to run (repeatable). [default: all]")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Folder for results.json and report.md. [default: print only]")
def knowledge_update_cmd(people: int, seed: int, checkpoints: int, embedder: str,
                         configs: tuple[str, ...], out: str | None) -> None:
    """Generated knowledge-update benchmark: current/past top-1 and staleness in top-5."""
    from memkit.embed import load_embedder

    if not 1 <= people <= len(FIRST) * len(LAST) // 2 or not 1 <= checkpoints <= 20:
        raise click.BadParameter("people in [1, 300] and checkpoints in [1, 20]")
    stream = generate(people, seed)
    emb = load_embedder(embedder)
    results = [run(stream, c, emb, checkpoints, seed) for c in (configs or tuple(CONFIGS))]
    args = {"people": people, "seed": seed, "checkpoints": checkpoints, "embedder": embedder,
            "changes": len(stream.changes)}
    text = report(results, args)
    click.echo(text)
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps({"args": args, "results": results},
                                                        indent=2) + "\n", encoding="utf-8")
        (folder / "report.md").write_text(text, encoding="utf-8")
