"""Batch-ingest a folder of documents into a memory, then query it.

    python examples/ingest_folder.py examples/docs --memory /tmp/kb --query "who owns Basalt?"

Interrupt it and run it again: what is already in is skipped, nothing is duplicated.
"""

from __future__ import annotations

import argparse

from memkit import Memory
from memkit.ingest import ingest_paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="+")
    ap.add_argument("--memory", required=True)
    ap.add_argument("--embedder", default=None, help="minilm (default) or hash")
    ap.add_argument("--query", action="append", default=[])
    args = ap.parse_args(argv)
    kwargs = {"embedder": args.embedder} if args.embedder else {}
    with Memory.open(args.memory, progress=True, **kwargs) as mem:
        report = ingest_paths(mem, args.folder, max_tokens=200, overlap=32)
        print(f"added {len(report.added)}, duplicates {report.skipped_duplicates}, "
              f"rejected {len(report.rejected)}")
        for what, why in report.rejected:
            print(f"  rejected {what}: {why}")
        for q in args.query:
            print(f"\n{q}")
            for hit in mem.read(q, k=3):
                print(f"  {hit.rank}. {hit.score:.3f} {hit.item.metadata.get('title')}: "
                      f"{' '.join(hit.item.text.split())[:100]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
