"""Training and evaluation data for the MemSifter proxy: LoCoMo and MuSiQue.

- LoCoMo (``../shared/data/locomo10.json``): units are the conversation *sessions* (turns
  rendered ``Speaker: text``, image captions kept), dated by ``session_N_date_time``; the gold
  units of a question are the sessions of its evidence turn ids (``"D3:12"`` → session 3).
  Categories 1–4 by default (5 is adversarial: its right output is to abstain).
- MuSiQue (``../shared/data/musique_dev200.jsonl``): units are the question's 20 paragraphs
  (title + text); gold = ``is_supporting``; answers = answer + aliases.

:func:`build_rows` turns examples into proxy-training rows: the embedding prefilter under a
token budget that always keeps the gold units (as the paper's data builder does), the prompt,
and everything the reward needs. :func:`curriculum_select` keeps the examples whose
prefilter NDCG@10 is closest to the anchor 0.2 (priority 1 − |NDCG@10 − 0.2|).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from memkit.backends.sifter.prefilter import Unit, prefilter, unit_chunks
from memkit.backends.sifter.prompt import PromptConfig, build_messages
from memkit.embed.base import Embedder
from memkit.errors import InvalidInput
from memkit.sifterlab.reward import curriculum_priority, ndcg_at_k

__all__ = [
    "SifterExample",
    "UnitScorer",
    "build_rows",
    "curriculum_select",
    "gold_sessions",
    "load_rows",
    "locomo_examples",
    "musique_examples",
    "rows_units",
    "save_rows",
    "session_text",
    "toy_examples",
    "toy_match_examples",
]

_EVIDENCE = re.compile(r"D:?(\d+):(\d+)")
_SESSION_KEY = re.compile(r"^session_(\d+)$")


@dataclass
class SifterExample:
    """One question over a list of units; ``gold`` indexes ``units``."""

    qid: str
    question: str
    answers: list[str]
    units: list[Unit]
    gold: list[int]
    source: str
    category: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def gold_sessions(evidence: Iterable[str]) -> list[int]:
    """Session numbers of LoCoMo evidence ids, tolerant of the file's odd spellings.

    >>> gold_sessions(["D1:3", "D8:6; D9:17", "D:11:26", "D"])
    [1, 8, 9, 11]
    """
    found: list[int] = []
    for e in evidence:
        for s, _ in _EVIDENCE.findall(str(e)):
            if int(s) not in found:
                found.append(int(s))
    return found


def session_text(turns: Sequence[dict[str, Any]]) -> str:
    """``Speaker: text`` lines; a shared image is noted with its caption."""
    lines = []
    for t in turns:
        text = str(t.get("text", "")).strip()
        caption = t.get("blip_caption")
        if caption:
            text = f"{text} [shares an image: {caption}]".strip()
        lines.append(f"{t.get('speaker', 'speaker')}: {text}")
    return "\n".join(lines)


def locomo_examples(path: str | Path, categories: Sequence[int] = (1, 2, 3, 4),
                    samples: Sequence[int] | None = None) -> list[SifterExample]:
    """LoCoMo questions with sessions as units (see the module docstring)."""
    data = json.loads(Path(path).read_text())
    out: list[SifterExample] = []
    for si, sample in enumerate(data):
        if samples is not None and si not in samples:
            continue
        conv = sample["conversation"]
        numbers = sorted(int(m.group(1)) for k in conv if (m := _SESSION_KEY.match(k)))
        units = [
            Unit(uid=f"{sample.get('sample_id', si)}:S{n}", text=session_text(conv[f"session_{n}"]),
                 date=conv.get(f"session_{n}_date_time"), order=float(n), meta={"session": n})
            for n in numbers
        ]
        pos = {n: i for i, n in enumerate(numbers)}
        for qi, qa in enumerate(sample["qa"]):
            cat = qa.get("category")
            if cat not in categories or "answer" not in qa:
                continue
            gold = [pos[s] for s in gold_sessions(qa.get("evidence", [])) if s in pos]
            if not gold:
                continue
            out.append(SifterExample(
                qid=f"locomo:{sample.get('sample_id', si)}:{qi}", question=str(qa["question"]),
                answers=[str(qa["answer"])], units=units, gold=gold, source="locomo",
                category=cat, meta={"sample": si},
            ))
    return out


def musique_examples(path: str | Path) -> list[SifterExample]:
    """MuSiQue questions with their 20 paragraphs as units."""
    out: list[SifterExample] = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        paras = row["paragraphs"]
        units = [Unit(uid=f"{row['id']}:P{p['idx']}",
                      text=f"{p['title']}: {p['paragraph_text']}", order=float(p["idx"]))
                 for p in paras]
        gold = [i for i, p in enumerate(paras) if p.get("is_supporting")]
        answers = [str(row["answer"]), *[str(a) for a in row.get("answer_aliases", [])]]
        out.append(SifterExample(qid=f"musique:{row['id']}", question=row["question"],
                                 answers=answers, units=units, gold=gold, source="musique"))
    return out


class UnitScorer:
    """Embedding scores of query vs. units (max over each unit's chunks), with a disk cache.

    Chunk vectors of all distinct units are embedded once and cached under ``cache_dir``
    (file name: hash of the embedder name and the chunk texts).
    """

    def __init__(self, embedder: Embedder, units: Iterable[Unit], *, max_words: int = 160,
                 cache_dir: str | Path | None = None, progress: bool = False) -> None:
        self.embedder = embedder
        self.row: dict[object, list[int]] = {}
        texts: list[str] = []
        for u in units:
            if u.uid in self.row:
                continue
            chunks = unit_chunks(u.text, max_words=max_words)
            self.row[u.uid] = list(range(len(texts), len(texts) + len(chunks)))
            texts.extend(chunks)
        self.vectors = self._embed(texts, cache_dir, progress)

    def _embed(self, texts: list[str], cache_dir: str | Path | None,
               progress: bool) -> np.ndarray:
        if cache_dir is None:
            return self.embedder.embed(texts, progress=progress, desc="embedding units")
        h = hashlib.sha256(self.embedder.name.encode())
        for t in texts:
            h.update(b"\x00" + t.encode())
        path = Path(cache_dir) / f"sifter-units-{h.hexdigest()[:20]}.npy"
        if path.exists():
            return np.load(path)
        vecs = self.embedder.embed(texts, progress=progress, desc="embedding units")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vecs)
        return vecs

    def scores(self, query_vec: np.ndarray, units: Sequence[Unit]) -> np.ndarray:
        sims = self.vectors @ np.asarray(query_vec, dtype=np.float32)
        return np.array([float(sims[self.row[u.uid]].max()) for u in units], dtype=np.float32)


def rows_units(row: dict[str, Any]) -> list[Unit]:
    """The candidate units stored in a training row."""
    return [Unit(uid=u["uid"], text=u["text"], date=u.get("date") or None,
                 order=float(u.get("order", 0.0))) for u in row["units"]]


def build_rows(
    examples: Sequence[SifterExample],
    embedder: Embedder,
    budget_tokens: int = 8192,
    *,
    max_units: int | None = None,
    keep_gold: bool = True,
    config: PromptConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One training/eval row per example (JSON-serialisable; a TRL dataset row).

    Row fields: ``prompt`` (chat messages), ``qid``, ``question``, ``answers``, ``units``
    (the prefiltered candidates, chronological), ``gold`` (indices into ``units``),
    ``n_candidates``, ``top_n``, ``prefilter_ranking`` (candidate indices by embedding score),
    ``prefilter_ndcg10`` (that ranking's NDCG@10, for the curriculum), ``source``.
    """
    config = config or PromptConfig()
    all_units = [u for ex in examples for u in ex.units]
    scorer = UnitScorer(embedder, all_units, cache_dir=cache_dir, progress=progress)
    qvecs: Any = embedder.embed_queries([ex.question for ex in examples]) if examples else []
    rows = []
    for ex, qv in tqdm(list(zip(examples, qvecs, strict=True)), desc="building rows",
                       disable=not progress):
        scores = scorer.scores(qv, ex.units)
        pre = prefilter(ex.question, ex.units, embedder, budget_tokens, max_units=max_units,
                        scores=scores, must_keep=ex.gold if keep_gold else ())
        local = {orig: i for i, orig in enumerate(pre.indices)}
        gold = sorted(local[g] for g in ex.gold if g in local)
        ranking = sorted(range(len(pre.units)), key=lambda i: (-pre.scores[i], i))
        rows.append({
            "prompt": build_messages(ex.question, pre.units, config),
            "qid": ex.qid,
            "question": ex.question,
            "answers": list(ex.answers),
            "units": [{"uid": str(u.uid), "text": u.text, "date": u.date or "",
                       "order": float(u.order)} for u in pre.units],
            "gold": gold,
            "n_candidates": len(pre.units),
            "top_n": config.top_n,
            "prefilter_ranking": ranking,
            "prefilter_ndcg10": ndcg_at_k(ranking, gold, 10),
            "source": ex.source,
            "category": ex.category if ex.category is not None else -1,
        })
    return rows


def curriculum_select(rows: Sequence[dict[str, Any]], n: int,
                      anchor: float = 0.2) -> list[dict[str, Any]]:
    """The ``n`` rows of highest priority 1 − |prefilter NDCG@10 − anchor| (stable order)."""
    if n < 0:
        raise InvalidInput("n must be >= 0")
    order = sorted(range(len(rows)),
                   key=lambda i: (-curriculum_priority(rows[i]["prefilter_ndcg10"], anchor), i))
    keep = sorted(order[:n])
    return [rows[i] for i in keep]


def save_rows(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


_TOY_PLACES = (
    "library museum harbour bakery stadium garden market cinema theatre airport castle "
    "bridge river forest beach island temple school hospital factory station tower farm "
    "lake mountain valley canyon desert village palace gallery studio arena zoo park "
    "church prison mine port mall cafe"
).split()
_TOY_NAMES = ("Ann", "Bob", "Cai", "Dee", "Eli", "Fay")


def toy_examples(n: int, n_units: int = 6, seed: int = 0,
                 n_places: int = len(_TOY_PLACES),
                 gold_at: int | None = None) -> list[SifterExample]:
    """A small synthetic memory task for CPU proofs of the learning loop (not a benchmark).

    Each example has ``n_units`` one-line sessions ("museum : Ann went there with Bob .")
    about distinct places; the question names one place and one person ("Who went to the
    museum with Ann ?"), its session is the single gold unit and the companion is the answer.
    The same question and gold text always carry the same answer, so a simulated working LLM
    keyed on them is consistent across examples. Sessions are undated (a numeric date next to
    the session number would only confuse a tiny policy). ``gold_at`` fixes the gold session's
    position (a *prior* a policy can learn without reading: a sanity check of the RL loop).
    """
    if not 1 <= n_units <= n_places <= len(_TOY_PLACES):
        raise InvalidInput(f"need 1 <= n_units <= n_places <= {len(_TOY_PLACES)}")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        places = rng.sample(_TOY_PLACES[:n_places], n_units)
        pairs = [rng.sample(_TOY_NAMES, 2) for _ in places]
        units = [Unit(uid=f"toy{seed}-{i}:S{j}", order=float(j),
                      text=f"{p} : {a} went there with {b} .")
                 for j, (p, (a, b)) in enumerate(zip(places, pairs, strict=True))]
        g = rng.randrange(n_units) if gold_at is None else gold_at % n_units
        out.append(SifterExample(
            qid=f"toy:{seed}:{i}", question=f"Who went to the {places[g]} with {pairs[g][0]} ?",
            answers=[pairs[g][1]], units=units, gold=[g], source="toy"))
    return out



_MATCH_FRUITS = "apple pear plum fig kiwi lime lemon mango".split()
_MATCH_KEYS = (
    "onion carrot potato tomato garlic pepper radish leek cabbage turnip celery spinach"
).split()
_MATCH_VALUES = "red blue green black white pink gold grey".split()
CATEGORY_QUESTION = "Which session names a fruit ?"
COLOUR_QUESTION = "Which session names a colour ?"


def toy_match_examples(n: int, n_units: int = 4, seed: int = 0,
                       mode: str = "category") -> list[SifterExample]:
    """Relevance toys for CPU proofs with a tiny random-init policy (not benchmarks).

    Units are short and all different within an example; exactly one is gold and its position
    is uniform, so a position prior scores only ``1 / n_units``; deterministic in ``seed``.

    - ``mode="category"``: units are single words, ``n_units - 1`` vegetables and one fruit;
      the question is always :data:`CATEGORY_QUESTION`, the fruit's unit is gold and the fruit
      is the answer. Relevance is a property of the unit's content (find the one fruit, write
      its index): a tiny 2-layer model learns this supervised in a few hundred steps.
    - ``mode="choice"``: units are single words, ``n_units - 2`` vegetables, one fruit and one
      colour; the question asks for the fruit (:data:`CATEGORY_QUESTION`) or the colour
      (:data:`COLOUR_QUESTION`), each half the time. Ignoring the question (always the fruit)
      scores 0.5, so NDCG@1 above 0.5 needs the question to be read: query-conditioned
      relevance without the match-and-copy step of ``key``.
    - ``mode="key"``: units are ``"<key> <value>"`` (distinct vegetable keys); the question is
      the gold unit's key alone and the answer its value, so the only word the question shares
      with any unit is the gold key (an induction-style match-and-copy). The same tiny model
      did *not* learn this in 1,500 supervised steps on CPU; kept as the harder task.

    No word of either list is a substring of another (the simulated working LLM matches gold
    unit texts as substrings of its prompt).
    """
    if mode not in ("category", "choice", "key"):
        raise InvalidInput(f"mode must be 'category', 'choice' or 'key', not {mode!r}")
    low = 2 if mode == "choice" else 1
    if not low <= n_units <= len(_MATCH_KEYS):
        raise InvalidInput(f"need {low} <= n_units <= {len(_MATCH_KEYS)} for mode {mode!r}")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        g = rng.randrange(n_units)
        if mode == "category":
            texts = rng.sample(_MATCH_KEYS, n_units - 1)
            texts.insert(g, rng.choice(_MATCH_FRUITS))
            question, answer = CATEGORY_QUESTION, texts[g]
        elif mode == "choice":
            fruit, colour = rng.choice(_MATCH_FRUITS), rng.choice(_MATCH_VALUES)
            texts = rng.sample(_MATCH_KEYS, n_units - 2)
            slots = rng.sample(range(n_units), 2)  # positions of the fruit and the colour
            for slot, word in sorted(zip(slots, (fruit, colour), strict=True)):
                texts.insert(slot, word)
            ask_colour = rng.random() < 0.5
            g = texts.index(colour if ask_colour else fruit)
            question = COLOUR_QUESTION if ask_colour else CATEGORY_QUESTION
            answer = texts[g]
        else:
            keys = rng.sample(_MATCH_KEYS, n_units)
            values = [rng.choice(_MATCH_VALUES) for _ in keys]
            texts = [f"{k} {v}" for k, v in zip(keys, values, strict=True)]
            question, answer = keys[g], values[g]
        units = [Unit(uid=f"{mode}{seed}-{i}:S{j}", order=float(j), text=t)
                 for j, t in enumerate(texts)]
        out.append(SifterExample(qid=f"toy-{mode}:{seed}:{i}", question=question,
                                 answers=[answer], units=units, gold=[g],
                                 source=f"toy-{mode}"))
    return out
