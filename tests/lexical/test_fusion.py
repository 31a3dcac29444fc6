"""Rank and score fusion: hand-computed fused rankings, weights, and the read path."""

from __future__ import annotations

from pathlib import Path

import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.errors import InvalidInput
from memkit.fusion import fuse, minmax_fusion, reciprocal_rank_fusion
from memkit.types import Scored

DENSE = [Scored(10, 0.90), Scored(11, 0.80), Scored(12, 0.30)]
LEX = [Scored(12, 9.0), Scored(13, 6.0), Scored(10, 3.0)]


def test_rrf_by_hand() -> None:
    # C = 1: 10 -> 1/2 + 1/4 = .75; 11 -> 1/3; 12 -> 1/4 + 1/2 = .75; 13 -> 1/3
    got = reciprocal_rank_fusion({"dense": DENSE, "bm25": LEX}, k=4, c=1.0)
    assert [(s.id, round(s.score, 6)) for s in got] == [
        (10, 0.75), (12, 0.75), (11, round(1 / 3, 6)), (13, round(1 / 3, 6))]
    assert got[0].evidence["bm25"]["rank"] == 3 and got[0].evidence["dense"]["rank"] == 1


def test_weighted_rrf_by_hand() -> None:
    # bm25 weight 2, C = 1: 10 -> .5 + 2/4 = 1.0; 12 -> 1/4 + 2/2 = 1.25; 13 -> 2/3; 11 -> 1/3
    got = fuse({"dense": DENSE, "bm25": LEX}, 4, {"method": "rrf", "c": 1}, {"bm25": 2.0})
    assert [(s.id, round(s.score, 6)) for s in got] == [
        (12, 1.25), (10, 1.0), (13, round(2 / 3, 6)), (11, round(1 / 3, 6))]
    # weight 0 switches a channel off: the dense order, then bm25-only ids at 0
    off = fuse({"dense": DENSE, "bm25": LEX}, 4, "rrf", {"bm25": 0.0})
    assert [s.id for s in off] == [10, 11, 12, 13]


def test_minmax_by_hand() -> None:
    # dense: (.9, .8, .3) -> 1, 5/6, 0; bm25: (9, 6, 3) -> 1, .5, 0
    got = minmax_fusion({"dense": DENSE, "bm25": LEX}, k=4)
    assert [(s.id, round(s.score, 6)) for s in got] == [
        (10, 1.0), (12, 1.0), (11, round(5 / 6, 6)), (13, 0.5)]
    weighted = fuse({"dense": DENSE, "bm25": LEX}, 4, "minmax", {"dense": 0.5})
    # 10 -> .5; 11 -> 5/12; 12 -> 1; 13 -> .5
    assert [(s.id, round(s.score, 6)) for s in weighted] == [
        (12, 1.0), (10, 0.5), (13, 0.5), (11, round(5 / 12, 6))]
    assert got[0].evidence["bm25"]["norm"] == 0.0


def test_rank_and_score_fusion_disagree_where_score_gaps_matter() -> None:
    """One channel is sure of its first hit (a big gap), the other is not: rrf sees only
    ranks (a tie broken by id), minmax sees the gap."""
    a = [Scored(1, 0.50), Scored(2, 0.49), Scored(3, 0.0)]
    b = [Scored(2, 10.0), Scored(1, 1.0), Scored(3, 0.0)]
    assert [s.id for s in fuse({"a": a, "b": b}, 2, "rrf")] == [1, 2]  # equal: by id
    # minmax: 1 -> 1 + 0.1 = 1.1; 2 -> 0.98 + 1 = 1.98
    assert [s.id for s in fuse({"a": a, "b": b}, 2, "minmax")] == [2, 1]


def test_bad_fusion_and_weights_are_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="method"):
        fuse({"a": DENSE}, 3, "borda")
    with pytest.raises(InvalidInput, match="'c'"):
        fuse({"a": DENSE}, 3, {"c": -1})
    with pytest.raises(InvalidInput, match="not read here"):
        fuse({"a": DENSE}, 3, "rrf", {"b": 1.0})
    with pytest.raises(InvalidInput, match="finite"):
        fuse({"a": DENSE}, 3, "rrf", {"a": float("nan")})


def test_read_fuses_dense_and_bm25_per_read(tmp_path: Path) -> None:
    pytest.importorskip("bm25s", reason="the [lexical] extra (bm25s) is not installed")
    mem = Memory.open(tmp_path / "m", backends=["dense", "bm25"], embedder=HashEmbedder(dim=64))
    mem.write_many(["Zyxwv is the code name of the northern depot.",
                    "The depot in the north stores grain.",
                    "Southern depots store tools."])
    q = "what is zyxwv?"
    rankings = {b: mem.read(q, k=3, backend=b).hits for b in ("dense", "bm25")}
    expected = fuse({b: [Scored(h.item.id, h.score) for h in hs] for b, hs in rankings.items()},
                    3, "minmax", {"bm25": 2.0})
    got = mem.read(q, k=3, backend="dense,bm25", fusion="minmax", weights={"bm25": 2.0})
    assert [(h.item.id, pytest.approx(h.score)) for h in got.hits] == \
        [(s.id, pytest.approx(s.score)) for s in expected]
    assert got.hits[0].item.text.startswith("Zyxwv") and got.hits[0].backend == "dense+bm25"
    rrf = mem.read(q, k=3, backend="dense,bm25", fusion={"method": "rrf", "c": 0})
    top = rrf.hits[0]
    assert top.score == pytest.approx(
        sum(1 / top.evidence[b]["rank"] for b in ("dense", "bm25") if b in top.evidence))
    with pytest.raises(InvalidInput, match="fusion option"):
        mem.read(q, backend="dense,bm25", fusion={"method": "vote"})
    mem.close()
