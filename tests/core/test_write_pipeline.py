"""write_many as a pipeline: extraction of committed batches overlaps embedding of the next,
a rerun embeds nothing already in, a batch the embedder fails on is still written and
indexed, and each stage has its own progress bar."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.backends.hipporag.extract_rules import RuleExtractor
from memkit.backends.hipporag.extraction import Extraction, KnownPhrases
from memkit.embed import HashEmbedder
from memkit.embed.base import Embedder
from memkit.ingest import pipeline

DOCS = [f"Town {i}\nTown {i} lies in Region {i % 7} near River {i % 5}." for i in range(40)]


class Recording(Embedder):
    """A hash embedder that records what it embeds, on which thread, and can fail or wait."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.inner = HashEmbedder(64)
        self.name, self.dim = self.inner.name, self.inner.dim
        self.texts: list[str] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on
        self.started_late_batch = threading.Event()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if self.fail_on is not None and any(self.fail_on in t for t in texts) and \
                len(texts) > 1:
            raise ValueError("this batch cannot be tokenized")
        self.texts.extend(texts)
        self.threads.add(threading.current_thread().name)
        if any(t.startswith("Town 3") for t in texts):  # a passage of a later batch
            self.started_late_batch.set()
        return self.inner.embed_batch(texts)


class WaitingExtractor:
    """Rules extraction that, on its first call, waits until the embedder has started on a
    later batch: it can only return if the stages overlap."""

    name = "rules"

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.overlapped: bool | None = None
        self.inner = RuleExtractor()

    def extract(self, texts: Sequence[str], known: KnownPhrases | None = None
                ) -> list[Extraction]:
        if self.overlapped is None:
            self.overlapped = self.event.wait(timeout=30)
        return self.inner.extract(texts, known)


def test_extraction_overlaps_embedding_of_later_batches(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "EMBED_WINDOW", 10)  # one commit batch per embedding group
    emb = Recording()
    ex = WaitingExtractor(emb.started_late_batch)
    with Memory.open(tmp_path / "m", backends=["dense", "hipporag"], embedder=emb,
                     components={"hipporag": {"extractor": ex}}) as mem:
        report = mem.write_many(DOCS, batch_size=10)
        assert len(report.added) == len(DOCS)
        assert ex.overlapped is True  # extracting batch 1 while batch 4 was being embedded
        assert any(t.startswith("memkit-embed") for t in emb.threads)
        # sync mode: everything is indexed when write_many returns
        assert mem.stats()["backends"]["hipporag"]["passages"] == len(DOCS)
        assert mem.read("Town 17", k=1).ids == [report.added[17]]


def test_a_rerun_embeds_only_what_is_new(tmp_path: Path) -> None:
    emb = Recording()
    with Memory.open(tmp_path / "m", backends=["dense", "hipporag"], embedder=emb,
                     backend_options={"hipporag": {"extractor": "rules"}}) as mem:
        first = mem.write_many(DOCS[:30], batch_size=8)
        emb.texts.clear()
        again = mem.write_many(DOCS, batch_size=8)
        assert again.skipped_duplicates == 30 and len(again.added) == 10
        passages = [t for t in emb.texts if "\n" in t]
        assert sorted(passages) == sorted(DOCS[30:])  # nothing already in was re-embedded
        assert set(first.added).isdisjoint(again.added)
        stored = {r[0] for r in mem.store.conn.execute("SELECT item_id FROM item_vectors")}
        assert stored == set(first.added) | set(again.added)


def test_duplicates_and_rejects_within_a_batch(tmp_path: Path) -> None:
    emb = Recording()
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        report = mem.write_many([DOCS[0], DOCS[0], "", {"text": DOCS[1], "scope": "u"},
                                 {"text": DOCS[1]}], batch_size=10)
        assert len(report.added) == 3 and report.skipped_duplicates == 1
        assert [r[0] for r in report.rejected] == ["record 2"]
        assert [t for t in emb.texts].count(DOCS[0]) == 1


def test_a_batch_the_embedder_fails_on_is_retried_in_halves(tmp_path: Path) -> None:
    emb = Recording(fail_on="Town 5\n")  # fails on any batch holding it, works alone
    calls: list[int] = []
    inner = emb.embed_batch

    def counting(texts: Sequence[str]) -> np.ndarray:
        calls.append(len(texts))
        return inner(texts)

    emb.embed_batch = counting  # type: ignore[method-assign]
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        report = mem.write_many(DOCS[:12], batch_size=6)
        assert len(report.added) == 12
        dense = mem.backends["dense"]
        assert sorted(dense.index.ids().tolist()) == sorted(report.added)
        assert emb.texts.count(DOCS[5]) == 1
    # one group of 12, embedded 6 at a time (batch_size): its first 6 fail -> the half 0-5
    # fails -> 0-2 ok, 3-5 fails -> 3 ok, 4-5 fails -> 4 ok, 5 ok; then 6-11 ok
    assert calls == [6, 6, 3, 3, 1, 2, 1, 1, 6]


def test_passages_are_embedded_in_groups_and_committed_per_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "EMBED_WINDOW", 12)
    emb = Recording()
    calls: list[int] = []
    inner = emb.embed

    def counting(texts: Sequence[str], batch_size: int = 64, progress: bool = False,
                 desc: str = "embedding") -> np.ndarray:
        calls.append(len(texts))
        return inner(texts, batch_size=batch_size, progress=progress, desc=desc)

    emb.embed = counting  # type: ignore[method-assign]
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        txns: list[int] = []
        real = pipeline.commit_batch

        def recording_commit(store, vectors, items, todo, vecs):  # type: ignore[no-untyped-def]
            txns.append(len(items))
            return real(store, vectors, items, todo, vecs)

        monkeypatch.setattr(pipeline, "commit_batch", recording_commit)
        report = mem.write_many(DOCS, batch_size=4)
        assert report.added == sorted(report.added) and len(report.added) == 40
        assert calls == [12, 12, 12, 4]  # groups of 3 batches, the rest at the end
        assert txns == [4] * 10  # one transaction per batch of 4
        assert mem.read(DOCS[21], k=1).ids == [report.added[21]]
        for iid, text in zip(report.added, DOCS, strict=True):
            assert mem.get(iid).text == text  # each batch got its own rows of the group


class Refusing(Recording):
    """Fails on any batch holding a text with ``refuse`` in it, even alone."""

    def __init__(self, refuse: str) -> None:
        super().__init__()
        self.refuse = refuse

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if any(self.refuse in t for t in texts):
            raise ValueError("the tokenizer cannot handle this text")
        return super().embed_batch(texts)


def test_faulty_records_are_reported_and_the_batch_goes_on(tmp_path: Path) -> None:
    """A text the embedder fails on even alone, a 10 MB passage and an empty chunk: each is
    reported with its reason, is not in the record, and every other item is written and
    indexed (record and dense index hold the same items, and stay so on a reopen)."""
    huge = "word " * 2_000_000  # 10 MB
    records = [DOCS[0], "\ufffe cannot embed", huge, "", DOCS[1], {"text": "   "}, DOCS[2]]
    emb = Refusing("\ufffe")
    with Memory.open(tmp_path / "m", embedder=emb) as mem:
        report = mem.write_many(records, batch_size=3)
        reasons = dict(report.rejected)
        assert sorted(reasons) == ["record 1", "record 2", "record 3", "record 5"]
        assert "embedder failed" in reasons["record 1"] and "tokenizer" in reasons["record 1"]
        assert "max_item_chars" in reasons["record 2"]
        assert "empty" in reasons["record 3"] and "empty" in reasons["record 5"]
        assert len(report.added) == 3
        in_record = [i for (i,) in mem.store.conn.execute("SELECT id FROM items")]
        assert sorted(in_record) == sorted(report.added)  # nothing half-written
        assert sorted(mem.backends["dense"].index.ids().tolist()) == sorted(report.added)
        assert mem.indexer.errors() == {}  # no item left for the indexer to fail on
    with Memory.open(tmp_path / "m", embedder=Refusing("\ufffe")) as mem:
        assert mem.indexer.errors() == {} and mem.stats()["items"] == 3


@pytest.mark.parametrize("index", ["sync", "async"])
def test_one_progress_bar_per_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    index: str) -> None:
    with Memory.open(tmp_path / "m", embedder=HashEmbedder(64), index=index) as mem:
        mem.write_many(DOCS, batch_size=10, progress=True, desc="ingesting")
        mem.wait_indexed()
        assert mem.stats()["backends"]["dense"]["vectors"] == len(DOCS)
    err = capsys.readouterr().err
    for stage in ("ingesting", "embedding", "indexing"):
        assert f"{stage}: 100%" in err and "40/40" in err
