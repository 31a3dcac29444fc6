"""The bm25 backend: scores equal to bm25s (and to BM25 by hand), scope, delete, reopen."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.errors import ConfigError

bm25s = pytest.importorskip("bm25s", reason="the [lexical] extra (bm25s) is not installed")
pytest.importorskip("Stemmer", reason="the [lexical] extra (PyStemmer) is not installed")

CORPUS = [
    "Alice moved to Paris in 2021 and works at the Louvre.",
    "Bob lives in Rome; he visits Paris every summer.",
    "The Louvre is the most visited museum in the world.",
    "Carol's cat sleeps on the red sofa all day.",
    "Paris is the capital of France, on the Seine.",
    "Rome is the capital of Italy.",
]


def _open(path: Path, **opts: object) -> Memory:
    return Memory.open(path, backends=["bm25"], embedder=HashEmbedder(dim=32),
                       backend_options={"bm25": opts} if opts else {})


def test_scores_equal_bm25s_on_the_same_corpus(tmp_path: Path) -> None:
    import Stemmer

    mem = _open(tmp_path / "m")
    ids = mem.write_many(CORPUS).added
    query = "Which museum in Paris did Alice work at?"
    got = mem.read(query, k=6, backend="bm25")
    stem = Stemmer.Stemmer("english").stemWords
    ref = bm25s.BM25()
    ref.index(bm25s.tokenize(CORPUS, stopwords="en", stemmer=stem, show_progress=False),
              show_progress=False)
    docs, scores = ref.retrieve(bm25s.tokenize([query], stopwords="en", stemmer=stem,
                                               show_progress=False), k=6, show_progress=False)
    expected = [(ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
    assert [(h.item.id, pytest.approx(h.score, rel=1e-6)) for h in got.hits] == \
        [(i, pytest.approx(s, rel=1e-6)) for i, s in expected]
    assert got.hits[0].item.text.startswith("Alice")
    mem.close()


def test_scores_equal_bm25_by_hand(tmp_path: Path) -> None:
    """Lucene BM25, k1=1.5, b=0.75, no stemming: worked on a 3-document corpus."""
    mem = _open(tmp_path / "m", stemmer="none")
    a, b, c = mem.write_many(["apple apple banana", "apple cherry", "durian"]).added
    hits = mem.read("apple", k=5, backend="bm25").hits
    # N = 3, df(apple) = 2 -> idf = ln(1 + 1.5 / 2.5); avgdl = 2
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))

    def tf_part(tf: int, dl: int) -> float:
        return tf / (tf + 1.5 * (1 - 0.75 + 0.75 * dl / 2))

    assert [h.item.id for h in hits] == [a, b]  # durian has no query term: not returned
    assert hits[0].score == pytest.approx(idf * tf_part(2, 3), rel=1e-6)
    assert hits[1].score == pytest.approx(idf * tf_part(1, 2), rel=1e-6)
    assert not mem.read("zebra", k=5, backend="bm25").hits
    assert c not in [h.item.id for h in hits]
    mem.close()


def test_scoped_read_returns_k_hits_in_scope(tmp_path: Path) -> None:
    mem = _open(tmp_path / "m")
    # the other user's items match the query better: a filter after top-k would lose hits
    mem.write_many([f"paris paris paris note {i}" for i in range(8)], scope={"user": "u2"})
    texts = ["paris trip museum bakery", "rome trip", "paris paris day", "bakery in lyon"]
    mine = mem.write_many(texts, scope={"user": "u1"}).added
    hits = mem.read("paris trip", k=3, scope={"user": "u1"}, backend="bm25").hits
    assert len(hits) == 3 and all(h.item.id in mine for h in hits)
    # scored as a corpus of the scope's documents only: no other scope shapes idf / avgdl
    import Stemmer

    stem = Stemmer.Stemmer("english").stemWords
    ref = bm25s.BM25()
    ref.index(bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False),
              show_progress=False)
    expected = ref.get_scores(bm25s.tokenize(["paris trip"], stopwords="en", stemmer=stem,
                                             return_ids=False, show_progress=False)[0])
    by_id = dict(zip(mine, expected.tolist(), strict=True))
    assert [pytest.approx(h.score, rel=1e-6) for h in hits] == \
        sorted((by_id[h.item.id] for h in hits), reverse=True)
    assert {h.item.id for h in hits} == {mine[0], mine[1], mine[2]}
    be = mem.backends["bm25"]
    from memkit.backends.base import AllowedIds
    raw = be.retrieve("paris trip", 3, allowed=AllowedIds(np.array(sorted(mine[:2]))))
    assert sorted(s.id for s in raw.scored) == sorted(mine[:2])  # the backend enforces it too
    mem.close()


def test_delete_and_update_change_results(tmp_path: Path) -> None:
    mem = _open(tmp_path / "m")
    ids = mem.write_many(CORPUS).added
    assert mem.read("Louvre", k=5, backend="bm25").hits[0].item.id == ids[2]
    mem.delete([ids[2]])
    got = [h.item.id for h in mem.read("Louvre", k=5, backend="bm25").hits]
    assert got == [ids[0]]
    new = mem.update(ids[3], "Carol's dog naps on the green sofa.")
    assert not mem.read("cat", k=5, backend="bm25").hits
    assert mem.read("dog", k=5, backend="bm25").hits[0].item.id in (ids[3], new)
    mem.close()


def test_reopen_loads_the_file_and_catches_up(tmp_path: Path) -> None:
    mem = _open(tmp_path / "m")
    ids = mem.write_many(CORPUS).added
    before = [(h.item.id, h.score) for h in mem.read("capital Paris", k=4, backend="bm25").hits]
    mem.close()
    assert (tmp_path / "m" / "lexical" / "bm25.npz").exists()
    other = _open(tmp_path / "m")  # loads the saved tokens ...
    assert [(h.item.id, h.score) for h in
            other.read("capital Paris", k=4, backend="bm25").hits] == before
    extra = other.write("Lyon is not the capital of France.")  # ... and indexes new writes
    other.close()
    (tmp_path / "m" / "lexical" / "bm25.npz").write_bytes(b"garbage")  # corrupt: rebuilt
    again = _open(tmp_path / "m")
    got = [h.item.id for h in again.read("capital", k=10, backend="bm25").hits]
    assert set(got) == {ids[4], ids[5], extra}
    again.close()


def test_reopen_with_other_options_retokenises(tmp_path: Path) -> None:
    mem = _open(tmp_path / "m")
    mem.write_many(["the cats are running"])
    assert mem.read("cat", k=1, backend="bm25").hits  # stemmed: cats -> cat
    mem.close()
    raw = _open(tmp_path / "m", stemmer="none")
    assert not raw.read("cat", k=1, backend="bm25").hits  # unstemmed tokens now
    assert raw.read("cats", k=1, backend="bm25").hits
    raw.close()


def test_options_are_strict(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="k1"):
        _open(tmp_path / "m", k1=-1)
    with pytest.raises(ConfigError, match="kl"):
        _open(tmp_path / "m2", kl=1.0)


def test_two_processes_state_meets_in_the_record(tmp_path: Path) -> None:
    """A second open memory sees the first one's writes (replayed from the change feed)."""
    a = _open(tmp_path / "m")
    b = _open(tmp_path / "m")
    iid = a.write("quokkas live on Rottnest Island")
    assert [h.item.id for h in b.read("quokka", k=3, backend="bm25").hits] == [iid]
    a.close()
    b.close()
