"""HippoRAG's prepare embeds new phrase strings in calls of >= STRINGS_PER_CALL (beside the
extraction of later sub-batches) and builds the same graph as one call per sub-batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from memkit import Memory
from memkit.backends.hipporag import backend as hippo
from memkit.embed import HashEmbedder

DOCS = [f"Town {i}\nTown {i} lies in County {i % 7}. Its mayor is Ann Lee {i % 5}. "
        f"River {i % 3} flows through Town {i}." for i in range(60)]


def _build(path: Path, per_call: int, monkeypatch: pytest.MonkeyPatch
           ) -> tuple[set[tuple[str, ...]], list[int]]:
    monkeypatch.setattr(hippo, "STRINGS_PER_CALL", per_call)
    sizes: list[int] = []
    with Memory.open(path, backends=["hipporag"], embedder=HashEmbedder(64),
                     backend_options={"hipporag": {"extractor": "rules", "batch_size": 4}}
                     ) as mem:
        strings = mem.vectors.strings
        embed = strings.embed
        monkeypatch.setattr(strings, "embed", lambda texts, **kw: (
            sizes.append(len(texts)), embed(texts, **kw))[1])
        mem.write_many(DOCS, batch_size=60)  # one commit: one prepare of 15 sub-batches
        facts = {tuple(r) for r in mem.store.conn.execute(
            "SELECT text FROM hipporag_facts").fetchall()}
        phrases = {tuple(r) for r in mem.store.conn.execute(
            "SELECT text FROM hipporag_phrases").fetchall()}
    return facts | phrases, sizes


def test_string_calls_are_grouped_and_the_graph_is_unchanged(tmp_path: Path,
                                                             monkeypatch) -> None:
    grouped, sizes = _build(tmp_path / "g", 12, monkeypatch)
    single, per_chunk = _build(tmp_path / "s", 1, monkeypatch)
    assert grouped == single and len(grouped) > 60
    # one call per sub-batch of 4 passages (15) against calls of >= 12 strings (but the
    # last) in the one prepare; the same strings embedded either way
    assert len(per_chunk) == 15 and len(sizes) < len(per_chunk)
    assert sum(sizes) == sum(per_chunk)
    assert all(n >= 12 for n in sizes[:-1]), sizes
