"""Without the [ray] extra, the Ray ingest says which extra to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.errors import InvalidInput, MissingDependency


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from memkit.scale import ingest_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with Memory.open(tmp_path / "m", embedder=HashEmbedder(16)) as mem:
        with pytest.raises(MissingDependency) as err:
            ingest_ray(mem, [tmp_path])
    assert "memkit-agent[ray]" in str(err.value)


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from memkit.scale import ingest_ray

    with Memory.open(tmp_path / "m", embedder=HashEmbedder(16)) as mem:
        with pytest.raises(InvalidInput, match="extract"):
            ingest_ray(mem, [tmp_path], extract="gpu")
        with pytest.raises(InvalidInput, match="workers"):
            ingest_ray(mem, [tmp_path], workers=0)
