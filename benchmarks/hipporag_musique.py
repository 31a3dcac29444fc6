"""MuSiQue-200 retrieval quality: dense MiniLM vs the HippoRAG graph with no LLM anywhere.

Corpus = the 3,141 unique paragraphs of the 200 dev questions (``title\\nparagraph``); metric
Recall@k over the supporting paragraphs, averaged over questions, x100. Both systems use the
packaged MiniLM (vectors cached by text under /tmp/memkit-cache/hipporag). The graph is built
through the public API (``Memory.open(dir, backends=["hipporag", "dense"])``) with the
LLM-free extractor; retrieval variants (the ablation) are run on the same built graph.

    python benchmarks/hipporag_musique.py                      # spaCy extractor, default table
    python benchmarks/hipporag_musique.py --extractor rules     # dependency-free extractor
    python benchmarks/hipporag_musique.py --synonymy 0.9        # another build-time variant
    python benchmarks/hipporag_musique.py --out evals/hipporag/musique_spacy.md

Memories are kept in the cache directory per (extractor, synonymy threshold), so reruns only
re-query. ``--rebuild`` starts over; ``--limit`` uses the first N questions (and their
paragraphs) for a smoke run.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hipporag_data import cache_dir, load_musique, minilm_cached  # noqa: E402
from memkit import Memory  # noqa: E402
from memkit.backends.hipporag.backend import LLM_FREE_DEFAULTS  # noqa: E402
from memkit.backends.hipporag.retriever import RetrievalOptions  # noqa: E402

KS = (2, 5, 10)

RRF_BASE: dict[str, object] = {  # the first LLM-free setting tried: seeds fused by rank
    "use_facts": True, "query_phrase_weight": 1.0, "dense_seed_passages": 3,
    "fusion": "rrf", "graph_rrf_weight": 2.0}
PPR_BASE: dict[str, object] = {
    "use_facts": True, "query_phrase_weight": 1.0, "dense_seed_passages": 3, "fusion": "ppr"}

NOFACT: dict[str, object] = {**PPR_BASE, "use_facts": False}

# retrieval variants on one built graph: (name, overrides of RetrievalOptions)
VARIANTS: list[tuple[str, dict[str, object]]] = [
    (
        "paper seeds: top-5 query-fact matches, PPR rank",
        {"use_facts": True, "query_phrase_weight": 0.0, "dense_seed_passages": 0, "fusion": "ppr"},
    ),
    (
        "+ phrases named in the query",
        {"use_facts": True, "query_phrase_weight": 1.0, "dense_seed_passages": 0, "fusion": "ppr"},
    ),
    (
        "+ query phrases + top-3 dense passages' phrases",
        {"use_facts": True, "query_phrase_weight": 1.0, "dense_seed_passages": 3, "fusion": "ppr"},
    ),
    ("facts + query phrases + top-3 dense, RRF(graph x2, dense)", dict(RRF_BASE)),
    ("no facts: query phrases + top-3 dense, RRF x2", {**RRF_BASE, "use_facts": False}),
    (
        "facts only, RRF x2",
        {**RRF_BASE, "query_phrase_weight": 0.0, "dense_seed_passages": 0},
    ),
    ("default, RRF graph weight 1", {**RRF_BASE, "graph_rrf_weight": 1.0}),
    ("default, RRF graph weight 3", {**RRF_BASE, "graph_rrf_weight": 3.0}),
    ("default, top-5 dense passages' phrases", {**RRF_BASE, "dense_seed_passages": 5}),
    ("default, all seeds kept (linking_top_k=0)", {**RRF_BASE, "linking_top_k": 0}),
    ("default, passage_node_weight 0.01", {**RRF_BASE, "passage_node_weight": 0.01}),
    ("default, passage_node_weight 0.2", {**RRF_BASE, "passage_node_weight": 0.2}),
    ("default, passage_node_weight 0.5", {**RRF_BASE, "passage_node_weight": 0.5}),
    # PPR-ranked variants (no fusion)
    ("PPR: facts + query phrases x2 + top-3 dense", {
        **PPR_BASE, "query_phrase_weight": 2.0}),
    ("PPR: facts + query phrases + top-3 dense x0.5", {
        **PPR_BASE, "dense_seed_weight": 0.5}),
    ("PPR: facts + query phrases + top-3 dense, linking_top_k 10", {
        **PPR_BASE, "linking_top_k": 10}),
    ("PPR: facts + query phrases + top-3 dense, all seeds", {**PPR_BASE, "linking_top_k": 0}),
    ("PPR: no facts, query phrases + top-3 dense", {**PPR_BASE, "use_facts": False}),
    ("PPR: facts + query phrases + top-2 dense", {**PPR_BASE, "dense_seed_passages": 2}),
    ("PPR: facts + query phrases + top-3 dense, pnw 0.1", {
        **PPR_BASE, "passage_node_weight": 0.1}),
    ("PPR: facts + query phrases + top-3 dense, pnw 0.02", {
        **PPR_BASE, "passage_node_weight": 0.02}),
    ("PPR: facts top-10 + query phrases + top-3 dense", {**PPR_BASE, "fact_top_k": 10}),
    ("PPR: + damping 0.7", {**PPR_BASE, "damping": 0.7}),
    ("PPR: + damping 0.3", {**PPR_BASE, "damping": 0.3}),
    # around the best LLM-free setting (no fact seeds)
    ("PPR no facts: query phrases x2 + top-3 dense", {**NOFACT, "query_phrase_weight": 2.0}),
    ("PPR no facts: top-5 dense", {**NOFACT, "dense_seed_passages": 5}),
    ("PPR no facts: top-2 dense", {**NOFACT, "dense_seed_passages": 2}),
    ("PPR no facts: pnw 0.1", {**NOFACT, "passage_node_weight": 0.1}),
    ("PPR no facts: pnw 0.02", {**NOFACT, "passage_node_weight": 0.02}),
    ("PPR no facts: no query phrases (top-3 dense only)", {**NOFACT, "query_phrase_weight": 0.0}),
    ("PPR no facts: linking_top_k 10", {**NOFACT, "linking_top_k": 10}),
    ("memkit LLM-free default (LLM_FREE_DEFAULTS)", dict(LLM_FREE_DEFAULTS)),
    ("PPR no facts: top-2 dense, pnw 0.1", {**NOFACT, "dense_seed_passages": 2,
                                             "passage_node_weight": 0.1}),
    ("PPR no facts: top-1 dense", {**NOFACT, "dense_seed_passages": 1}),
    ("PPR no facts: top-2 dense, query phrases x2", {**NOFACT, "dense_seed_passages": 2,
                                                      "query_phrase_weight": 2.0}),
]


def recall(ranked: list[int], gold: list[int], k: int) -> float:
    return len(set(ranked[:k]) & set(gold)) / max(1, len(gold))


def mean_recalls(ranked: list[list[int]], gold: list[list[int]]) -> list[float]:
    """Recall@k for k in KS, averaged over questions, x100."""
    return [100 * sum(recall(r, g, k) for r, g in zip(ranked, gold, strict=True)) / len(gold)
            for k in KS]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cached_parser(extractor: object, bodies_to_docs: dict[str, object]) -> None:
    """Feed the spaCy extractor cached parses of the corpus (parsing 3,141 bodies takes
    minutes on 2 cores); unknown texts are parsed normally."""
    original = extractor.parse  # type: ignore[attr-defined]

    def parse(bodies: list[str]) -> list[object]:
        missing = [b for b in bodies if b not in bodies_to_docs]
        fresh = dict(zip(missing, original(missing), strict=True)) if missing else {}
        return [bodies_to_docs.get(b) or fresh[b] for b in bodies]

    extractor.parse = parse  # type: ignore[attr-defined]


def load_parse_cache(extractor: object) -> dict[str, object]:
    path = cache_dir() / "musique_bodies.spacy"
    if not path.exists():
        return {}
    from spacy.tokens import DocBin

    docs = DocBin().from_disk(path).get_docs(extractor.nlp.vocab)  # type: ignore[attr-defined]
    return {d.text: d for d in docs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--extractor", default="spacy", choices=["spacy", "rules"])
    ap.add_argument("--synonymy", type=float, default=0.8)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--variants", default="all", help="'all' or comma-separated indices")
    ap.add_argument("--out", default=None, help="also write the table (markdown) here")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest on a shared 2-core box)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    corpus, questions = load_musique(limit=args.limit)
    emb = minilm_cached()
    tag = f"{args.extractor}-syn{args.synonymy}-{len(corpus)}"
    directory = cache_dir() / f"mem-{tag}"
    if args.rebuild and directory.exists():
        shutil.rmtree(directory)
    opts = {"hipporag": {"extractor": args.extractor, "synonymy_threshold": args.synonymy}}
    t0 = time.perf_counter()
    mem = Memory.open(
        directory, backends=["hipporag", "dense"], embedder=emb, backend_options=opts, progress=True
    )
    be = mem.backends["hipporag"]
    if args.extractor == "spacy":
        cached_parser(be.extractor, load_parse_cache(be.extractor))
    rss_before = peak_rss_mb()
    if mem.store.count() < len(corpus):
        t_build = time.perf_counter()
        mem.write_many(corpus, batch_size=256, progress=True, desc="building")
        mem.flush()
        build_s = time.perf_counter() - t_build
        print(f"built in {build_s:.1f} s: {be.index_timings}")
    open_s = time.perf_counter() - t0
    ids = {it.text: it.id for it in mem.store.iter_items()}
    corpus_ids = [ids[t] for t in corpus]
    gold = [[corpus_ids[i] for i in q.gold] for q in questions]
    stats = be.stats()
    print(
        f"graph: {stats}; open+build {open_s:.1f} s; peak RSS {peak_rss_mb():.0f} MB "
        f"(before build {rss_before:.0f} MB)"
    )
    emb.embed_queries([q.question for q in questions])  # warm the query cache

    rows: list[tuple[str, list[float], float]] = []
    t = time.perf_counter()
    dense_rank = [
        [h.item.id for h in mem.read(q.question, k=10, backend="dense").hits] for q in questions
    ]
    rows.append(
        (
            "dense MiniLM",
            [
                100
                * sum(recall(r, g, k) for r, g in zip(dense_rank, gold, strict=False))
                / len(gold)
                for k in KS
            ],
            1000 * (time.perf_counter() - t) / len(questions),
        )
    )
    chosen = (
        range(len(VARIANTS))
        if args.variants == "all"
        else [int(x) for x in args.variants.split(",")]
    )
    plain = RetrievalOptions(use_filter=False)
    for vi in chosen:
        name, over = VARIANTS[vi]
        # each variant starts from the dataclass defaults (not the LLM-free ones), per read
        knobs = {**{key: getattr(plain, key) for key in LLM_FREE_DEFAULTS}, **over}
        knobs.pop("use_filter", None)
        t = time.perf_counter()
        ranks = [
            [h.item.id for h in mem.read(q.question, k=10, backend="hipporag",
                                         read_options={"hipporag": knobs}).hits]
            for q in questions
        ]
        ms = 1000 * (time.perf_counter() - t) / len(questions)
        rows.append(
            (
                f"graph: {name}",
                [
                    100
                    * sum(recall(r, g, k) for r, g in zip(ranks, gold, strict=False))
                    / len(gold)
                    for k in KS
                ],
                ms,
            )
        )
        print(f"{rows[-1][0]:<62} " + " ".join(f"{v:5.1f}" for v in rows[-1][1]), flush=True)
    mem.close()

    dense_r5 = rows[0][1][1]
    lines = [
        f"MuSiQue-200 ({len(questions)} questions, {len(corpus)} passages), MiniLM, "
        f"extractor={args.extractor}, synonymy>={args.synonymy}, no LLM. "
        f"Graph: {stats['phrases']} phrases, {stats['facts']} facts, "
        f"{stats['synonymy_edges']} synonymy edges, {stats['edges']} edges.",
        "",
        "| retrieval | R@2 | R@5 | R@10 | R@5 / dense | ms/query |",
        "|---|---|---|---|---|---|",
    ]
    for name, vals, ms in rows:
        lines.append(
            f"| {name} | {vals[0]:.1f} | {vals[1]:.1f} | {vals[2]:.1f} | "
            f"{vals[1] / dense_r5:.3f} | {ms:.1f} |"
        )
    lines.append("")
    lines.append(
        f"command: python benchmarks/hipporag_musique.py --extractor {args.extractor} "
        f"--synonymy {args.synonymy}" + (f" --limit {args.limit}" if args.limit else "")
    )
    lines.append(f"peak RSS of this process (graph + dense + MiniLM): {peak_rss_mb():.0f} MB")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
