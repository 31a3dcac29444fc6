"""`memkit demo`: ingest the sample corpus and answer a few queries (the README's main job)."""

from __future__ import annotations

from pathlib import Path

import click

from memkit.errors import NotFound
from memkit.ingest import ingest_paths
from memkit.memory import Memory


def sample_corpus() -> Path:
    """The sample documents: examples/docs in a source checkout (or the current directory)."""
    for base in (Path(__file__).resolve().parent.parent, Path.cwd()):
        docs = base / "examples" / "docs"
        if docs.is_dir():
            return docs
    raise NotFound("sample corpus examples/docs not found: run from a memkit checkout")


def run_demo(memory_dir: Path, embedder: str | None = None, k: int = 2) -> None:
    docs = sample_corpus()
    with Memory.open(memory_dir, progress=True, embedder=embedder) as mem:
        report = ingest_paths(mem, [docs], progress=True)
        click.echo(f"ingested {docs}: added {len(report.added)}, skipped "
                   f"{report.skipped_duplicates} duplicates, rejected {len(report.rejected)}")
        for query in (docs.parent / "demo_queries.txt").read_text(encoding="utf-8").splitlines():
            if not query.strip():
                continue
            res = mem.read(query, k=k)
            click.echo(f"\nQ: {query}  ({res.cost.ms:.0f} ms)")
            for hit in res.hits:
                snippet = " ".join(hit.item.text.split())[:150]
                click.echo(f"  {hit.rank}. {hit.score:.3f} {snippet}")
        click.echo(f"\nmemory: {memory_dir} ({mem.stats()['items']} items). Try: memkit read "
                   f"\"who owns Basalt?\" --memory {memory_dir}")
