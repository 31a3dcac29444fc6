"""The inspector's browse page over a large memory: keyset paging against an OFFSET baseline.

Builds (once, reused) a dense memory of N items in two namespaces with the hash embedder, then
times one page (50 rows, newest first) at several depths with the inspector's keyset query
(:func:`memkit.server.ui.queries.browse_page`) and with the ``LIMIT/OFFSET`` query it replaces,
both in this run on the same database, plus a filtered page (source prefix + text search)::

    python benchmarks/ui_browse.py                 # 100,000 items in /tmp/memkit-ui-bench
    python benchmarks/ui_browse.py --items 20000 --dir /tmp/small
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from memkit import Memory  # noqa: E402
from memkit.server.ui.queries import BrowseFilter, browse_page  # noqa: E402
from memkit.types import Scope  # noqa: E402

PAGE = 50


def build(directory: Path, n: int) -> Memory:
    mem = Memory.open(directory, embedder="hash", backends=["dense"])
    have = mem.store.count()
    if have < n:
        t0 = time.perf_counter()
        records = ({"text": f"note {i}: the {('red', 'green', 'blue')[i % 3]} plan, step {i}",
                    "source": f"chat:{i % 100}",
                    "scope": {"namespace": "acme" if i % 10 else "globex"}}
                   for i in range(have, n))
        mem.write_many(records, batch_size=2000, total=n - have)
        print(f"built {n - have} items in {time.perf_counter() - t0:.1f} s")
    return mem


def best_ms(fn, repeat: int = 7) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--dir", default="/tmp/memkit-ui-bench")
    args = ap.parse_args()
    mem = build(Path(args.dir), args.items)
    conn = mem.store.conn
    scope = Scope(namespace="acme")
    filt = BrowseFilter(scope=scope)
    total = mem.store.count(scope)
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM items WHERE namespace = 'acme' AND valid_until IS NULL "
        "ORDER BY id DESC").fetchall()]
    print(f"{total} current items in namespace acme ({mem.store.count()} in all)")
    print(f"{'depth (rows skipped)':>22} {'keyset ms':>10} {'OFFSET ms':>10} {'ratio':>7}")
    for depth in (0, total // 10, total // 2, total - PAGE):
        cursor = ids[depth - 1] if depth else None
        keyset = best_ms(lambda c=cursor: browse_page(mem, filt, before=c, limit=PAGE,
                                                      scope_rows=total))
        offset = best_ms(lambda d=depth: conn.execute(
            "SELECT * FROM items WHERE namespace = ? AND valid_until IS NULL "
            "ORDER BY id DESC LIMIT ? OFFSET ?", ("acme", PAGE, d)).fetchall())
        page = browse_page(mem, filt, before=cursor, limit=PAGE)
        assert [it.id for it in page.items] == ids[depth:depth + PAGE]
        print(f"{depth:>22} {keyset:>10.2f} {offset:>10.2f} {offset / keyset:>6.1f}x")
    search = BrowseFilter(scope=scope, q="blue plan, step 9", source="chat:9")
    print(f"filtered page (source prefix + text search), first page: "
          f"{best_ms(lambda: browse_page(mem, search, limit=PAGE, scope_rows=total)):.2f} ms")
    small = BrowseFilter(scope=Scope(namespace="globex"))
    n_small = mem.store.count(small.scope)
    print(f"first page of namespace globex ({n_small} items): "
          f"{best_ms(lambda: browse_page(mem, small, limit=PAGE, scope_rows=n_small)):.2f} ms")
    print(f"count of the scope (shown on the page): "
          f"{best_ms(lambda: mem.store.count(scope)):.2f} ms")
    mem.close()


if __name__ == "__main__":
    main()
