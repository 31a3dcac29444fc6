"""Ray Data ingest on a local Ray (2 CPUs): the memory equals a single-process ingest of the
same files (same items, same graph facts), a rerun adds nothing, and a killed actor leaves a
job that a rerun completes without duplicates."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.embed.base import Embedder
from memkit.ingest import ingest_paths

pytestmark = [pytest.mark.slow,
              # Ray's own modules warn about their own deprecated settings
              pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
              pytest.mark.filterwarnings("ignore::FutureWarning:ray"),
              pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                 reason="the [ray] extra is not installed")]

TOWNS = ["Stanley", "Parshall", "Plaza", "New Town", "White Earth", "Palermo", "Ross"]


def corpus(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    for i, town in enumerate(TOWNS):
        body = " ".join(f"{town} lies in Mountrail County near Lake {TOWNS[(i + k) % 7]}. "
                        f"It was founded in {1900 + 3 * k + i} by settlers from Norway."
                        for k in range(6))
        (docs / f"{i:02d}-{town}.md").write_text(f"# {town}\n\n{body}\n", encoding="utf-8")
    with (docs / "more.jsonl").open("w", encoding="utf-8") as f:
        for k in range(5):
            f.write(json.dumps({"title": f"Lake {k}", "text": f"Lake {k} drains into the "
                                f"Missouri River near {TOWNS[k]}."}) + "\n")
    (docs / "bad.json").write_text("{not json", encoding="utf-8")
    return docs


def open_mem(path: Path) -> Memory:
    return Memory.open(path, backends=["dense", "hipporag"], embedder=HashEmbedder(64),
                       backend_options={"hipporag": {"extractor": "rules"}})


def snapshot(mem: Memory) -> tuple[list[tuple[str, str, str]], set[str], int]:
    items = sorted((it.text, it.source or "", json.dumps(it.metadata, sort_keys=True))
                   for it in mem.store.iter_items())
    facts = {r[0] for r in mem.store.conn.execute("SELECT text FROM hipporag_facts")}
    vectors = mem.vectors.count()
    return items, facts, vectors


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple]:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("ref")
    docs = corpus(root)
    with open_mem(root / "single") as mem:
        report = ingest_paths(mem, [docs], max_tokens=40, overlap=8, progress=False)
        assert len(report.added) > 20 and report.rejected
        return docs, snapshot(mem)


@pytest.mark.parametrize("extract", ["driver", "ray"])
def test_ray_ingest_equals_a_single_process_ingest(ray_local: None, reference, tmp_path: Path,
                                                   extract: str) -> None:
    from memkit.scale import ingest_ray

    docs, expected = reference
    with open_mem(tmp_path / "r") as mem:
        report = ingest_ray(mem, [docs], max_tokens=40, overlap=8, batch_size=8, workers=2,
                            extract=extract, progress=False)
        assert [r[0] for r in report.rejected] == [str(docs / "bad.json")]
        items, facts, vectors = snapshot(mem)
        assert items == expected[0]
        assert vectors == expected[2] == len(items)
        if extract == "driver":
            assert facts == expected[1]
        else:  # each passage extracted against the graph as it was when the job began
            from memkit.backends.hipporag.extract_rules import RuleExtractor

            fresh = {f"{s} {p} {o}" for ex in RuleExtractor().extract(
                [t for t, _, _ in items], known=lambda _: False) for s, p, o in ex.triples}
            assert facts == fresh and facts
        hit = mem.read("When was Parshall founded?", k=1, backend="hipporag").hits[0]
        assert "Parshall" in hit.text
        again = ingest_ray(mem, [docs], max_tokens=40, overlap=8, batch_size=8, workers=2,
                           extract=extract, progress=False)
        assert again.added == [] and again.skipped_duplicates == len(items)
        assert snapshot(mem)[0] == items


def test_ray_ingest_into_a_postgres_memory(ray_local: None, reference, pg_dsn: str) -> None:
    """The same job writing to a memory on Postgres: the same items, facts and vectors as
    the single-process ingest into SQLite."""
    pytest.importorskip("psycopg", reason="needs the [postgres] extra")
    from memkit.scale import ingest_ray

    docs, expected = reference
    with open_mem(pg_dsn) as mem:  # type: ignore[arg-type]
        ingest_ray(mem, [docs], max_tokens=40, overlap=8, batch_size=8, workers=2,
                   extract="driver", progress=False)
        assert snapshot(mem) == expected
        again = ingest_ray(mem, [docs], max_tokens=40, overlap=8, batch_size=8, workers=2,
                           extract="driver", progress=False)
        assert again.added == [] and snapshot(mem) == expected


class DiesOnce(Embedder):
    """A hash embedder whose actor dies (hard exit) on its first batch while a marker file
    exists: an actor killed mid-job."""

    def __init__(self, marker: str) -> None:
        self.inner = HashEmbedder(64)
        self.name, self.dim = self.inner.name, self.inner.dim
        self.marker = marker

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if os.path.exists(self.marker):
            os.remove(self.marker)
            os._exit(1)
        return self.inner.embed_batch(texts)


def make_dying(marker: str) -> Embedder:
    return DiesOnce(marker)


def test_a_killed_actor_then_a_rerun_completes_without_duplicates(
        ray_local: None, reference, tmp_path: Path) -> None:
    import functools
    import sys

    from ray import cloudpickle

    from memkit.scale import ingest_ray

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    docs, expected = reference
    marker = tmp_path / "kill-me"
    marker.write_text("1")
    factory = functools.partial(make_dying, str(marker))
    with open_mem(tmp_path / "k") as mem:
        try:
            ingest_ray(mem, [docs], max_tokens=40, overlap=8, batch_size=8, workers=2,
                       progress=False, embedder_factory=factory)
        except Exception:  # the job may fail with its actor; what counts is the rerun
            pass
        assert not marker.exists()  # the actor did die
        ingest_ray(mem, [docs], max_tokens=40, overlap=8, batch_size=8, workers=2,
                   progress=False, embedder_factory=factory)
        items, facts, vectors = snapshot(mem)
        assert items == expected[0]  # complete, and no duplicates
        assert facts == expected[1] and vectors == len(items)


def test_the_cli_ingests_with_ray_and_reports_like_memkit_ingest(reference,
                                                                  tmp_path: Path) -> None:
    import subprocess
    import sys

    docs, expected = reference
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-c", "from memkit.cli import main; main()", "ingest", str(docs),
           "--memory", str(tmp_path / "c"), "--embedder", "hash:64", "--backends",
           "dense,hipporag", "--max-tokens", "40", "--overlap", "8", "--ray",
           "--ray-workers", "1", "--json"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["added"] == len(expected[0])
    assert [r["what"] for r in report["rejected"]] == [str(docs / "bad.json")]
