"""A record the embedder fails on, one the tokenizer fails on and an empty one, on the Ray
path (real Ray, 2 CPUs): each is reported per record with the local pipeline's wording, the
rest of the job is committed, nothing of them is half-indexed (no item, no vector, no graph
fact, no cached string), and a rerun adds nothing."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.ingest import file_records, ingest_paths

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
              pytest.mark.filterwarnings("ignore::FutureWarning:ray"),
              pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                 reason="the [ray] extra is not installed")]

TOWNS = ["Stanley", "Parshall", "Plaza", "New Town", "White Earth"]


class Poisoned(HashEmbedder):
    """The hashing embedder (same name, dim and vectors), except that it raises on any
    batch holding a text with the word POISON in it - a text the model cannot handle."""

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        bad = [t for t in texts if "POISON" in t]
        if bad:
            raise ValueError(f"cannot embed {bad[0][:20]!r}")
        return super().embed_batch(texts)

    def count_tokens(self, text: str) -> int:  # the tokenizer: fails on UNTOKENIZABLE
        if "UNTOKENIZABLE" in text:
            raise ValueError("cannot count 'UNTOKENIZABLE'")
        return super().count_tokens(text)


def poisoned() -> Poisoned:
    return Poisoned(64)


def corpus(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    for i, town in enumerate(TOWNS):
        body = " ".join(f"{town} lies in Mountrail County near Lake {TOWNS[(i + k) % 5]}. "
                        f"It was founded in {1900 + 3 * k + i} by settlers from Norway."
                        for k in range(4))
        (docs / f"{i:02d}-{town}.md").write_text(f"# {town}\n\n{body}\n", encoding="utf-8")
    lines = [{"title": f"Lake {k}", "text": f"Lake {k} drains into the Missouri River near "
              f"{TOWNS[k]}."} for k in range(4)]
    lines.insert(2, {"title": "Lake X", "text": "Lake POISON drains nowhere near Plaza."})
    lines.insert(3, {"title": "", "text": "   "})  # an empty record
    lines.append({"title": "Lake Y", "text": "Lake UNTOKENIZABLE is east of Ross."})
    with (docs / "lakes.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    return docs


def open_mem(path: Path | str) -> Memory:
    return Memory.open(path, backends=["dense", "hipporag"], embedder=poisoned(),
                       backend_options={"hipporag": {"extractor": "rules"}})


def snapshot(mem: Memory) -> tuple[list[str], set[str], int]:
    texts = sorted(it.text for it in mem.store.iter_items())
    facts = {r[0] for r in mem.store.conn.execute("SELECT text FROM hipporag_facts")}
    return texts, facts, mem.vectors.count()


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The same files through the local pipeline: the report and memory to match."""
    root = tmp_path_factory.mktemp("local")
    docs = corpus(root)
    with open_mem(root / "m") as mem:
        report = ingest_paths(mem, [docs], max_tokens=40, overlap=8, batch_size=4,
                              progress=False)
        return docs, report, snapshot(mem)


POISONED = ("not written: the embedder failed on this text "
            "(ValueError: cannot embed 'Lake X\\nLake POISON d')")
EMPTY = "text is empty or whitespace only"
UNCHUNKABLE = ("cannot chunk this text (the token counter failed: ValueError: cannot count "
               "'UNTOKENIZABLE')")


def test_the_local_pipeline_reports_the_poisoned_and_the_empty_record(local) -> None:  # type: ignore[no-untyped-def]
    docs, report, (texts, facts, vectors) = local
    # write_many numbers the records it is given: every chunk of the five .md files, then
    # the two lakes before the poisoned one
    before = sum(1 for f in sorted(docs.glob("*.md")) for _ in file_records(
        f, max_tokens=40, overlap=8, count=getattr(poisoned(), "count_tokens", None))) + 2
    assert before > 7
    assert report.rejected == [(f"{docs / 'lakes.jsonl'}:4", EMPTY),
                               (f"{docs / 'lakes.jsonl'}:7", UNCHUNKABLE),
                               (f"record {before}", POISONED)]
    assert not any("POISON" in t or "UNTOKENIZABLE" in t for t in texts)
    assert vectors == len(texts) == len(report.added)


@pytest.mark.parametrize("extract", ["driver", "ray"])
def test_ray_reports_the_record_it_cannot_embed_and_commits_the_rest(
        ray_local: None, local, tmp_path: Path, extract: str) -> None:  # type: ignore[no-untyped-def]
    from memkit.scale import ingest_ray

    docs, want, (texts, facts, vectors) = local
    with open_mem(tmp_path / "r") as mem:
        report = ingest_ray(mem, [docs], max_tokens=40, overlap=8, batch_size=4, workers=2,
                            extract=extract, progress=False, embedder_factory=poisoned)
        # per record, by its source, with the local pipeline's reasons
        assert sorted(report.rejected) == [(f"{docs / 'lakes.jsonl'}:3", POISONED),
                                           (f"{docs / 'lakes.jsonl'}:4", EMPTY),
                                           (f"{docs / 'lakes.jsonl'}:7", UNCHUNKABLE)]
        assert sorted(r for _, r in report.rejected) == sorted(r for _, r in want.rejected)
        assert len(report.added) == len(texts)
        got_texts, got_facts, got_vectors = snapshot(mem)
        assert got_texts == texts  # the rest of every batch is in, the poisoned one is not
        assert got_vectors == len(texts)  # every item has its vector, no vector is orphaned
        strings = [r[0] for r in mem.store.conn.execute("SELECT text FROM hipporag_phrases")]
        assert not any("poison" in s.casefold() for s in strings)
        assert not any("poison" in f.casefold() for f in got_facts)
        if extract == "driver":
            assert got_facts == facts
        assert mem.indexer.errors() == {}
        ids = {it.id for it in mem.store.iter_items()}
        assert {r[0] for r in mem.store.conn.execute(
            "SELECT item_id FROM hipporag_passages")} == ids  # the graph indexed every item

        again = ingest_ray(mem, [docs], max_tokens=40, overlap=8, batch_size=4, workers=2,
                           extract=extract, progress=False, embedder_factory=poisoned)
        assert again.added == [] and again.skipped_duplicates == len(texts)
        assert again.rejected == report.rejected
        assert snapshot(mem) == (got_texts, got_facts, got_vectors)
