"""How an embedder's cosine scale compares with the reference model's (all-MiniLM-L6-v2).

memkit's phrase-to-phrase similarity threshold (HippoRAG's synonymy threshold 0.8) is given
on the reference model's scale. Another model can put unrelated texts far
higher: multilingual-e5-small scores two random phrases ~0.84 on average, so a 0.8 threshold
passes ~95 % of all phrase pairs and the synonymy graph floods (100 edges per phrase). This
script measures the map that keeps a threshold equally *selective*: for random pairs of short
strings (phrases from the committed samples' passages and turns, by the LLM-free rules
extractor), the cosine quantiles of both models at the same quantile levels. The knots it
prints are the ``SIMILARITY_QUANTILES`` entry of that model in ``memkit/embed/base.py``.

    python benchmarks/similarity_scale.py --embedder e5
    python benchmarks/similarity_scale.py --embedder e5 --queries   # query-to-passage view

The map is for text-to-text cosines only. ``--queries`` shows why it must not be applied to a
query-to-passage threshold (Panini's ``min_score``, left unmapped): the musique-sample
questions embedded as queries against their supporting paragraphs and against random ones.
E5's ``query:`` prefix puts those cosines on yet another scale.

Nothing here uses a question or a label: the map depends only on how the models score
unrelated text.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from memkit.backends.hipporag.extract_rules import RuleExtractor  # noqa: E402
from memkit.embed import load_embedder  # noqa: E402
from memkit.embed.base import SIMILARITY_LEVELS  # noqa: E402


def sample_texts() -> list[str]:
    """The committed samples' passages and turns (the same text every run)."""
    texts: list[str] = []
    for line in (REPO / "evals/samples/musique_sample.jsonl").read_text().splitlines():
        for p in json.loads(line)["paragraphs"]:
            texts.append(f"{p['title']}\n{p['paragraph_text']}")
    for conv in json.loads((REPO / "evals/samples/locomo_sample.json").read_text()):
        for key, turns in conv["conversation"].items():
            if key.startswith("session_") and isinstance(turns, list):
                texts += [t["text"] for t in turns]
    return list(dict.fromkeys(texts))


def phrases(texts: list[str], n: int, seed: int) -> list[str]:
    ex = RuleExtractor()
    found = sorted({e for x in ex.extract(texts) for e in x.entities if len(e) >= 3})
    random.Random(seed).shuffle(found)
    return found[:n]


def pair_quantiles(vecs: np.ndarray, levels: tuple[float, ...]) -> list[float]:
    sims = vecs @ vecs.T
    upper = sims[np.triu_indices(len(vecs), 1)]
    return [float(np.quantile(upper, q)) for q in levels]


def query_view(spec: str, seed: int) -> None:
    """Relevant and random query-to-passage cosines, and where the reference-scale map would
    put Panini's ``min_score`` 0.2."""
    questions, relevant, paragraphs = [], [], []
    for line in (REPO / "evals/samples/musique_sample.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for p in rec["paragraphs"]:
            paragraphs.append(p["paragraph_text"][:300])
            if p["is_supporting"]:
                questions.append(rec["question"])
                relevant.append(p["paragraph_text"][:300])
    random.seed(seed)
    for name in dict.fromkeys(("onnx", spec)):
        emb = load_embedder(name)
        q = emb.embed_queries(questions)
        rel = (q * emb.embed(relevant)).sum(axis=1)
        rnd = (q @ emb.embed(random.sample(paragraphs, 200)).T).ravel()
        t = emb.threshold(0.2)
        print(f"{name}: relevant median {np.median(rel):.3f} (p10 {np.quantile(rel, 0.1):.3f}), "
              f"random median {np.median(rnd):.3f} (p90 {np.quantile(rnd, 0.9):.3f}); "
              f"0.2 mapped to {t:.3f} would drop {np.mean(rel < t):.0%} of relevant pairs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embedder", default="e5")
    ap.add_argument("--reference", default="onnx")
    ap.add_argument("--phrases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--queries", action="store_true",
                    help="query-to-passage cosines of the musique-sample questions instead")
    args = ap.parse_args()
    if args.queries:
        query_view(args.embedder, args.seed)
        return
    strings = phrases(sample_texts(), args.phrases, args.seed)
    pairs = len(strings) * (len(strings) - 1) // 2
    print(f"{len(strings)} phrases, {pairs:,} pairs, quantile levels {SIMILARITY_LEVELS}")
    result = {}
    for spec in (args.reference, args.embedder):
        emb = load_embedder(spec)
        t = time.perf_counter()
        q = pair_quantiles(emb.embed(strings, batch_size=256), SIMILARITY_LEVELS)
        result[spec] = q
        print(f"{spec:8s} ({emb.name}, {time.perf_counter() - t:.1f} s): "
              + " ".join(f"{v:.3f}" for v in q))
    knots = tuple((round(r, 3), round(o, 3))
                  for r, o in zip(result[args.reference], result[args.embedder], strict=True))
    print(f"knots (reference, {args.embedder}): {knots}")
    emb = load_embedder(args.embedder)
    for t in (0.2, 0.3, 0.5, 0.8):
        print(f"  reference threshold {t} -> {args.embedder} {emb.threshold(t):.3f}")


if __name__ == "__main__":
    main()
