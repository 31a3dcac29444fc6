"""A synthetic long-context benchmark in the RULER style, deterministic from a seed.

Each sample is a haystack of ``length`` words of filler (random sentences over a small
vocabulary, so no two chunks are identical) with *needles* -- key→value facts -- inserted at
chosen depths (0 = start, 1 = end). The haystack is cut into chunks of ``chunk_words`` words;
each chunk is a memory item and each sample is its own scope. Variants:

- ``single``: one needle; ask for its value.
- ``multikey``: ``n_keys`` needles with different keys; ask for one of them.
- ``multivalue``: ``n_values`` needles with the same key; ask for all values.
- ``vt`` (variable tracking, multi-hop): ``VAR A = 12345``, ``VAR B = VAR A``, ... a chain of
  ``hops`` assignments (plus a distractor chain); ask which variables hold the value.

Gold evidence = the chunks that hold the needles needed to answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from memkit.errors import InvalidInput
from memkit.eval.datasets.base import CorpusBuilder, Dataset, Question
from memkit.types import Scope

VARIANTS = ("single", "multikey", "multivalue", "vt")
_WORDS = (
    "river mountain quiet lantern orchard copper window meadow harbor violet candle autumn "
    "pebble thunder garden silver marble feather compass ember willow canyon beacon saffron "
    "glacier harvest velvet timber falcon prairie cobalt juniper summit lagoon amber thistle "
    "quarry hollow ribbon anchor crimson drift forest granite island jasmine kettle linen "
    "maple nectar oasis parlor quartz rustle shadow tundra umbra valley walnut yonder zephyr "
    "walks sings builds paints carries watches gathers follows remembers opens closes finds "
    "slowly gently brightly softly early late always rarely often quickly the a an this that "
    "every some many old new small large bright dark warm cold near far under over beside"
).split()
_KEY_WORDS = ("alpha", "bravo", "cedar", "delta", "ember", "fjord", "gamma", "harbor", "indigo",
              "juniper", "kestrel", "lumen", "mesa", "nimbus", "onyx", "prism", "quill", "rune",
              "sable", "tango", "umber", "vortex", "wren", "xenon", "yarrow", "zinc")


@dataclass(frozen=True)
class RulerConfig:
    variant: str = "single"
    samples: int = 20
    length: int = 2000          # filler words per sample
    chunk_words: int = 100      # words per memory item
    depths: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)  # cycled over samples/needles
    n_keys: int = 4             # multikey: needles in the haystack (1 asked)
    n_values: int = 3           # multivalue: values for the one key
    hops: int = 3               # vt: chain length
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise InvalidInput(f"unknown RULER variant {self.variant!r}; known: {VARIANTS}")
        for name in ("samples", "length", "chunk_words", "n_keys", "n_values", "hops"):
            if int(getattr(self, name)) <= 0:
                raise InvalidInput(f"ruler option {name} must be positive")
        if not self.depths or not all(0.0 <= d <= 1.0 for d in self.depths):
            raise InvalidInput(f"ruler depths must be in [0, 1], got {self.depths}")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 12))]
    return " ".join(words).capitalize() + "."


def _key(rng: random.Random) -> str:
    return f"{rng.choice(_KEY_WORDS)}-{rng.choice(_KEY_WORDS)}-{rng.randint(100, 999)}"


def _number(rng: random.Random) -> str:
    return str(rng.randint(1_000_000, 9_999_999))


def generate_ruler(config: RulerConfig | None = None, **overrides: object) -> Dataset:
    """Generate the data set; equal configs give byte-identical data sets."""
    cfg = config or RulerConfig()
    if overrides:
        fields = {**cfg.__dict__, **overrides}
        if isinstance(fields["depths"], (int, float)):
            fields["depths"] = (float(fields["depths"]),)  # type: ignore[arg-type]
        cfg = RulerConfig(**{k: v for k, v in fields.items()})  # type: ignore[arg-type]
    rng = random.Random(f"ruler/{cfg.variant}/{cfg.seed}")
    corpus = CorpusBuilder()
    questions: list[Question] = []
    depth_i = 0
    for s in range(cfg.samples):
        sample = f"{cfg.variant}-{s}"
        scope = Scope(namespace="ruler", user=sample)
        needles, question, answers, gold_needles = _needles(cfg, rng)
        # filler as a list of sentences; needles inserted between sentences at their depths
        sentences: list[str] = []
        words = 0
        while words < cfg.length:
            sent = _sentence(rng)
            sentences.append(sent)
            words += len(sent.split())
        placed: list[tuple[int, int]] = []  # (sentence position, needle index)
        used_depths = []
        for n in range(len(needles)):
            depth = cfg.depths[depth_i % len(cfg.depths)]
            depth_i += 1
            used_depths.append(depth)
            placed.append((round(depth * len(sentences)), n))
        for pos, n in sorted(placed, reverse=True):
            sentences.insert(pos, needles[n])
        # chunk by words, never splitting a sentence
        chunks: list[list[str]] = [[]]
        counts = [0]
        needle_chunk: dict[int, int] = {}
        needle_text = {t: i for i, t in enumerate(needles)}
        for sent in sentences:
            if counts[-1] >= cfg.chunk_words:
                chunks.append([])
                counts.append(0)
            if sent in needle_text:
                needle_chunk[needle_text[sent]] = len(chunks) - 1
            chunks[-1].append(sent)
            counts[-1] += len(sent.split())
        for c, chunk in enumerate(chunks):
            corpus.add(f"{sample}/c{c}", " ".join(chunk), scope, {"sample": sample, "chunk": c})
        gold = [f"{sample}/c{needle_chunk[n]}" for n in gold_needles]
        questions.append(Question(
            id=sample, question=question, answers=tuple(answers),
            evidence=tuple(dict.fromkeys(gold)), scope=scope, category=cfg.variant,
            metadata={"depths": used_depths}))
    return Dataset(f"ruler-{cfg.variant}", "ruler", corpus.items(), questions,
                   {"generator": "memkit.eval.datasets.ruler", "config": {
                       **cfg.__dict__, "depths": list(cfg.depths)}})


def _needles(cfg: RulerConfig, rng: random.Random) -> tuple[list[str], str, list[str], list[int]]:
    """(needle sentences, question, gold answers, indexes of the needles the answer needs)."""
    if cfg.variant == "single":
        key, value = _key(rng), _number(rng)
        return ([f"One of the special magic numbers for {key} is: {value}."],
                f"What is the special magic number for {key}?", [value], [0])
    if cfg.variant == "multikey":
        keys: list[str] = []
        while len(keys) < cfg.n_keys:
            k = _key(rng)
            if k not in keys:
                keys.append(k)
        values = [_number(rng) for _ in keys]
        target = rng.randrange(len(keys))
        return ([f"One of the special magic numbers for {k} is: {v}." for k, v in
                 zip(keys, values, strict=True)],
                f"What is the special magic number for {keys[target]}?", [values[target]],
                [target])
    if cfg.variant == "multivalue":
        key = _key(rng)
        values = [_number(rng) for _ in range(cfg.n_values)]
        return ([f"One of the special magic numbers for {key} is: {v}." for v in values],
                f"What are all the special magic numbers for {key}?", [" ".join(values)],
                list(range(len(values))))
    # variable tracking: a chain from a value, plus a distractor chain
    names: list[str] = []
    while len(names) < 2 * cfg.hops:
        n = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
        if n not in names:
            names.append(n)
    value, other = _number(rng), _number(rng)
    chain, decoy = names[:cfg.hops], names[cfg.hops:]
    needles = [f"VAR {chain[0]} = {value}."]
    needles += [f"VAR {chain[i]} = VAR {chain[i - 1]}." for i in range(1, cfg.hops)]
    needles += [f"VAR {decoy[0]} = {other}."]
    needles += [f"VAR {decoy[i]} = VAR {decoy[i - 1]}." for i in range(1, cfg.hops)]
    return (needles, f"Which variables are assigned the value {value}?", [" ".join(chain)],
            list(range(cfg.hops)))
