"""Compact proxy rows for a small model on CPU: each session shown as its best-matching turns.

A LoCoMo session runs to 600+ tokens, so a prompt holding the prefilter's whole sessions is
several thousand tokens: 83 s per ranking for Gemma-3-270M on this machine, and 42 % of the
gold sessions fell outside a 2,000-token budget (``evals/sifter/locomo_gemma270m``). Here a
session is shown to the proxy as a *snippet*: its ``turns`` turns most similar to the
question (MiniLM cosine), in conversation order, each cut to ``turn_chars`` characters; the
candidates are the ``candidates`` sessions of highest embedding score (max over their
turns), in chronological order as in the paper's layout (``order="chronological"``) or best
score first (``order="score"``: the prompt then carries the prefilter's ranking, so ranking
``0,1,2,…`` reproduces it and the proxy only has to learn where to depart from it). A prompt
is then ≈ 800 tokens.

- :func:`snippet_rows`: rows in :func:`memkit.sifterlab.data.build_rows`' format (so the GRPO
  trainer and the reward take them unchanged), plus what a session-level evaluation over
  *all* sessions needs: ``all_ranking`` (every session, best embedding score first),
  ``all_gold``, ``candidate_sessions`` (the candidates' session indices) and ``target`` (the
  supervised reply: the gold candidates first, by embedding score, then the others).
- ``keep_gold=True`` (training rows) swaps the lowest-scored non-gold candidates for gold
  sessions the embedding missed, as the paper's data builder does; evaluation rows use
  ``keep_gold=False``, so a gold session the prefilter drops is a miss for the proxy too.
- :func:`split_by_conversation`: a conversation-level split (no question of an evaluation
  conversation, nor any of its sessions, is seen in training).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from memkit.backends.sifter.prefilter import Unit
from memkit.backends.sifter.prompt import PromptConfig, build_messages
from memkit.embed.base import Embedder
from memkit.errors import InvalidInput
from memkit.sifterlab.data import SifterExample, UnitScorer
from memkit.sifterlab.reward import ndcg_at_k

__all__ = ["SnippetSettings", "snippet_rows", "split_by_conversation", "target_reply"]


@dataclass(frozen=True)
class SnippetSettings:
    """How a row is built: ``candidates`` sessions shown, ``turns`` turns of each, cut to
    ``turn_chars``; the proxy is asked for ``top_n`` ids."""

    candidates: int = 8
    turns: int = 2
    turn_chars: int = 200
    top_n: int = 5
    order: str = "chronological"

    def __post_init__(self) -> None:
        for name in ("candidates", "turns", "turn_chars", "top_n"):
            if int(getattr(self, name)) < 1:
                raise InvalidInput(f"SnippetSettings.{name} must be >= 1")
        if self.order not in ("chronological", "score"):
            raise InvalidInput(f"SnippetSettings.order must be 'chronological' or 'score', "
                               f"not {self.order!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_by_conversation(examples: Sequence[SifterExample], eval_samples: Sequence[int]
                          ) -> tuple[list[SifterExample], list[SifterExample]]:
    """(train, eval): examples whose ``meta["sample"]`` (the LoCoMo conversation) is in
    ``eval_samples`` go to eval, the rest to train."""
    held = set(eval_samples)
    missing = [ex.qid for ex in examples if "sample" not in ex.meta]
    if missing:
        raise InvalidInput(f"examples without a conversation (meta['sample']): {missing[:3]}")
    train = [ex for ex in examples if ex.meta["sample"] not in held]
    test = [ex for ex in examples if ex.meta["sample"] in held]
    return train, test


def target_reply(candidate_scores: Sequence[float], gold: Sequence[int], top_n: int) -> str:
    """The supervised reply: gold candidates first, then the rest, each group by embedding
    score (ties: earlier candidate first), ``min(top_n, N)`` ids, an empty think.

    >>> target_reply([0.9, 0.1, 0.5, 0.7], [1], 3)
    '<think></think><ranking>1,0,3</ranking>'
    """
    n = len(candidate_scores)
    gold_set = set(gold)
    order = sorted(range(n), key=lambda i: (i not in gold_set, -candidate_scores[i], i))
    ids = ",".join(str(i) for i in order[: min(top_n, n)])
    return f"<think></think><ranking>{ids}</ranking>"


def _turn_units(ex: SifterExample) -> list[list[Unit]]:
    """Each session's turns as units (uid: session uid + turn number)."""
    return [[Unit(uid=f"{u.uid}#{t}", text=line)
             for t, line in enumerate(u.text.splitlines()) if line.strip()] or
            [Unit(uid=f"{u.uid}#0", text=u.text or " ")]
            for u in ex.units]


def _snippet(turns: Sequence[Unit], scores: np.ndarray, settings: SnippetSettings) -> str:
    best = sorted(np.argsort(-scores, kind="stable")[: settings.turns].tolist())
    return "\n".join(turns[i].text[: settings.turn_chars].strip() for i in best)


def snippet_rows(examples: Sequence[SifterExample], embedder: Embedder,
                 settings: SnippetSettings = SnippetSettings(), *, keep_gold: bool = False,
                 config: PromptConfig | None = None, cache_dir: str | Path | None = None,
                 progress: bool = False) -> list[dict[str, Any]]:
    """One row per example (see the module docstring); the prompt uses ``config`` (default
    :class:`PromptConfig` with ``top_n=settings.top_n``)."""
    config = config or PromptConfig(top_n=settings.top_n)
    per_example = [_turn_units(ex) for ex in examples]
    all_turns = [t for sessions in per_example for turns in sessions for t in turns]
    scorer = UnitScorer(embedder, all_turns, max_words=10_000, cache_dir=cache_dir,
                        progress=progress)
    qvecs: Any = embedder.embed_queries([ex.question for ex in examples]) if examples else []
    rows = []
    for ex, sessions, qv in tqdm(list(zip(examples, per_example, qvecs, strict=True)),
                                 desc="building snippet rows", disable=not progress):
        turn_scores = [scorer.scores(qv, turns) for turns in sessions]
        session_scores = np.array([float(s.max()) for s in turn_scores], dtype=np.float32)
        all_ranking = sorted(range(len(sessions)), key=lambda i: (-session_scores[i], i))
        chosen = all_ranking[: settings.candidates]
        if keep_gold:
            missing = [g for g in ex.gold if g not in chosen]
            keep = settings.candidates - min(len(missing), settings.candidates)
            kept = [c for c in chosen if c in ex.gold] + [c for c in chosen if c not in ex.gold]
            chosen = kept[:keep] + missing[: settings.candidates]
        if settings.order == "score":
            chosen = sorted(chosen, key=lambda i: (-session_scores[i], i))
        else:
            chosen = sorted(chosen, key=lambda i: (ex.units[i].order, i))
        units = [Unit(uid=ex.units[i].uid, date=ex.units[i].date, order=ex.units[i].order,
                      text=_snippet(sessions[i], turn_scores[i], settings)) for i in chosen]
        gold = [j for j, i in enumerate(chosen) if i in ex.gold]
        cand_scores = [float(session_scores[i]) for i in chosen]
        ranking = sorted(range(len(chosen)), key=lambda j: (-cand_scores[j], j))
        rows.append({
            "prompt": build_messages(ex.question, units, config),
            "qid": ex.qid, "question": ex.question, "answers": list(ex.answers),
            "units": [{"uid": str(u.uid), "text": u.text, "date": u.date or "",
                       "order": float(u.order)} for u in units],
            "gold": gold, "n_candidates": len(units), "top_n": config.top_n,
            "prefilter_ranking": ranking,
            "prefilter_ndcg10": ndcg_at_k(ranking, gold, 10),
            "source": ex.source, "category": ex.category if ex.category is not None else -1,
            "sample": ex.meta.get("sample", -1),
            "all_ranking": all_ranking, "all_gold": sorted(ex.gold),
            "candidate_sessions": chosen,
            "target": target_reply(cand_scores, gold, config.top_n),
        })
    return rows
