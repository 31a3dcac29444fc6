"""Export / import speed against the baseline of writing the same texts with write_many.

    python benchmarks/portable_speed.py                 # 2,000 items, 20% updated, hash embedder
    python benchmarks/portable_speed.py --items 500 --backends dense,hipporag

Prints items/s for export, import and the baseline, and the ratio import / baseline (an
import replays every version through the public API, so it rebuilds every index; updates go
one at a time, first versions in batches of 64).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from memkit import Memory  # noqa: E402
from memkit.embed import HashEmbedder  # noqa: E402
from memkit.portable import export_lines, import_lines  # noqa: E402


def open_mem(path: Path, backends: list[str]) -> Memory:
    opts = {"hipporag": {"extractor": "rules"}} if "hipporag" in backends else {}
    return Memory.open(path, backends=backends, embedder=HashEmbedder(256),
                       backend_options=opts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--updated", type=float, default=0.2, help="share of items updated once")
    ap.add_argument("--backends", default="dense")
    args = ap.parse_args()
    backends = args.backends.split(",")
    texts = [f"Item {n}\nPerson {n % 97} moved to City {n % 31} in {1900 + n % 120}."
             for n in range(args.items)]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with open_mem(base / "baseline", backends) as mem:
            t0 = time.perf_counter()
            mem.write_many(texts, batch_size=64)
            baseline = time.perf_counter() - t0
        with open_mem(base / "src", backends) as src:
            ids = src.write_many(texts, batch_size=64).added
            for n, iid in enumerate(ids[:int(len(ids) * args.updated)]):
                src.update(iid, texts[n] + " Updated.")
            t0 = time.perf_counter()
            dump = list(export_lines(src))
            export_s = time.perf_counter() - t0
            with open_mem(base / "dst", backends) as dst:
                t0 = time.perf_counter()
                report = import_lines(dst, dump)
                import_s = time.perf_counter() - t0
    versions = report.versions
    print(f"backends={args.backends} items={args.items} versions={versions}")
    print(f"baseline write_many: {args.items / baseline:9.0f} items/s  ({baseline:.2f} s)")
    print(f"export:              {versions / export_s:9.0f} versions/s ({export_s:.2f} s)")
    print(f"import:              {versions / import_s:9.0f} versions/s ({import_s:.2f} s)")
    print(f"import time / baseline time: {import_s / baseline:.2f}x "
          f"(for {versions / args.items:.2f}x the versions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
