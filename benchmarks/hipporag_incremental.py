"""Incremental indexing cost: adding 1 % new passages to a built HippoRAG graph vs a full build.

Both runs go through the public API (``Memory.open(..., backends=["hipporag", "dense"])``,
``write_many``) on the MuSiQue-200 corpus, and end with one ``read`` so the graph arrays are
assembled (that is part of the cost). The embedder is the deterministic HashEmbedder by default,
so the figure isolates memkit's own work (extraction, phrase/fact bookkeeping, incremental
synonymy, SQLite, CSR assembly); ``--embedder minilm`` uses cached MiniLM vectors. For contrast
the script also times what the reference implementation does on each insert: recomputing the
synonymy KNN for all phrases.

    OMP_NUM_THREADS=1 python benchmarks/hipporag_incremental.py [--extractor rules|spacy]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hipporag_data import load_musique, minilm_cached  # noqa: E402
from memkit import Memory  # noqa: E402
from memkit.backends.hipporag.synonymy import synonym_edges  # noqa: E402
from memkit.embed import HashEmbedder  # noqa: E402


def build(directory: Path, texts: list[str], emb: object, extractor: str) -> Memory:
    mem = Memory.open(directory, backends=["hipporag", "dense"], embedder=emb,  # type: ignore
                      backend_options={"hipporag": {"extractor": extractor}})
    if extractor == "spacy":
        from benchmarks.hipporag_musique import cached_parser, load_parse_cache

        ex = mem.backends["hipporag"].extractor
        cached_parser(ex, load_parse_cache(ex))
    mem.write_many(texts, batch_size=256, progress=False)
    return mem


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extractor", default="rules", choices=["rules", "spacy"])
    ap.add_argument("--embedder", default="hash", choices=["hash", "minilm"])
    ap.add_argument("--fraction", type=float, default=0.01)
    ap.add_argument("--limit", type=int, default=None, help="first N questions (smoke run)")
    args = ap.parse_args()
    corpus, _ = load_musique(limit=args.limit)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(corpus))
    n_new = max(1, int(round(args.fraction * len(corpus))))
    base = [corpus[i] for i in order[:-n_new]]
    new = [corpus[i] for i in order[-n_new:]]
    emb = HashEmbedder(384) if args.embedder == "hash" else minilm_cached()
    if args.embedder == "minilm":  # warm the vector cache so both runs see the same costs
        tmp = Path(tempfile.mkdtemp(prefix="hr-warm-"))
        build(tmp / "m", corpus, emb, args.extractor).close()

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        mem = build(Path(d) / "full", corpus, emb, args.extractor)
        mem.read("warm up the graph", backend="hipporag")
        full_s = time.perf_counter() - t
        stats = mem.backends["hipporag"].stats()
        be = mem.backends["hipporag"]
        ids, vecs = be.gs.vectors("phrases")
        texts = [be.phrase_text[int(i)] for i in ids]
        t = time.perf_counter()
        synonym_edges(be.phrase_index, ids, vecs, texts)  # the reference: all phrases again
        all_pairs_s = time.perf_counter() - t
        mem.close()

        mem = build(Path(d) / "inc", base, emb, args.extractor)
        mem.read("warm up the graph", backend="hipporag")
        t = time.perf_counter()
        mem.write_many(new, batch_size=256, progress=False)
        mem.read("warm up the graph", backend="hipporag")
        inc_s = time.perf_counter() - t
        victims = [it.id for it in mem.store.iter_items()][:n_new]
        t = time.perf_counter()
        mem.delete(victims)
        mem.read("warm up the graph", backend="hipporag")
        del_s = time.perf_counter() - t
        mem.close()

    print(f"corpus {len(corpus)} passages, graph {stats}")
    print("| operation | seconds | / full build |")
    print("|---|---|---|")
    print(f"| full build ({len(corpus)} passages) | {full_s:.2f} | 1.000 |")
    print(f"| add {n_new} passages ({100 * args.fraction:g} %) to a built graph | {inc_s:.3f} | "
          f"{inc_s / full_s:.4f} |")
    print(f"| delete {n_new} passages | {del_s:.3f} | {del_s / full_s:.4f} |")
    print(f"| reference-style all-phrase synonymy recompute (per insert) | {all_pairs_s:.2f} | "
          f"{all_pairs_s / full_s:.4f} |")
    print(f"\ncommand: OMP_NUM_THREADS=1 python benchmarks/hipporag_incremental.py "
          f"--extractor {args.extractor} --embedder {args.embedder}")


if __name__ == "__main__":
    main()
