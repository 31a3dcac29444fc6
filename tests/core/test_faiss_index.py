from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memkit.errors import InvalidInput, StoreCorrupt
from memkit.vectors import FaissIndex


def unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("threshold", [10_000, 100])
def test_search_equals_numpy_brute_force_under_a_filter(threshold: int) -> None:
    v, ids = unit(600, 24), np.arange(1, 601)
    index = FaissIndex(24, hnsw_threshold=threshold, ef_search=256)
    index.add(ids, v)
    assert index.kind == ("hnsw" if threshold == 100 else "flat")
    allowed = np.arange(3, 601, 5)  # 20 % of the items
    for q in range(0, 600, 97):
        got, scores = index.search(v[q], 7, allowed)
        exact = allowed[np.argsort(-(v[allowed - 1] @ v[q]), kind="stable")[:7]]
        assert list(got) == list(exact)
        assert np.allclose(scores, v[got - 1] @ v[q], atol=1e-5)


def test_a_tiny_allowed_set_still_fills_k() -> None:
    v = unit(5000, 16)
    index = FaissIndex(16, hnsw_threshold=100)
    index.add(np.arange(1, 5001), v)
    allowed = np.array([7, 4000, 4999])
    got, _ = index.search(v[0], 10, allowed)
    assert sorted(got) == [7, 4000, 4999]


def test_remove_add_idempotence_and_tombstones() -> None:
    v = unit(300, 8)
    for threshold in (10_000, 50):
        index = FaissIndex(8, hnsw_threshold=threshold)
        index.add(np.arange(1, 301), v)
        index.add(np.arange(1, 301), v)  # replay: no duplicates
        assert index.ntotal == 300
        assert index.remove(np.array([5, 6, 999])) == 2
        assert index.ntotal == 298 and 5 not in index
        got, _ = index.search(v[4], 3)
        assert 5 not in got and 6 not in got


def test_save_load_roundtrip_and_corruption(tmp_path: Path) -> None:
    v = unit(100, 8)
    index = FaissIndex(8, hnsw_threshold=50)
    index.add(np.arange(1, 101), v)
    index.remove(np.array([10]))
    index.save(tmp_path / "x.faiss", generation=7)
    other = FaissIndex(8)
    assert other.load(tmp_path / "x.faiss") == 7
    assert other.kind == "hnsw" and other.ntotal == 99 and 10 not in other
    (tmp_path / "x.faiss").write_bytes(b"\x00" * 64)
    with pytest.raises(StoreCorrupt):
        FaissIndex(8).load(tmp_path / "x.faiss")
    with pytest.raises(StoreCorrupt):
        FaissIndex(8).load(tmp_path / "missing.faiss")


def test_shape_errors_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="dimension 8"):
        FaissIndex(8).add(np.array([1]), np.zeros((1, 7), dtype=np.float32))


@pytest.mark.parametrize("threshold", [10_000, 4])
def test_vectors_returns_the_stored_rows_of_live_ids(threshold: int) -> None:
    v = np.eye(6, dtype=np.float32)[:5]  # five unit vectors e0..e4 under ids 10..14
    index = FaissIndex(6, hnsw_threshold=threshold)
    index.add(np.arange(10, 15), v)
    assert index.vectors(np.array([13, 10])).tolist() == [v[3].tolist(), v[0].tolist()]
    assert index.vectors(np.array([], dtype=np.int64)).shape == (0, 6)
    index.remove(np.array([13]))
    with pytest.raises(InvalidInput, match="13"):
        index.vectors(np.array([13]))
