"""The standing fault suite, long versions (issue 15): runs each section and prints one table
of cases tried and failures.

    python benchmarks/faults.py                      # every section, long versions (10k+ fuzz)
    python benchmarks/faults.py --only fuzz --fuzz-scale 0.1 --out /tmp/faults.json

Sections (each a function below, registered in SECTIONS; add a section by writing one more
``def section_x(args) -> list[Row]`` and listing it):

- ``multiprocess``: writer processes and a long-lived reader on one directory for 60 s, then
  every acknowledged write checked in the record and every index (faults_kill.py);
- ``kill``: seeded SIGKILLs in the middle of write_many, update, delete and forget (sync and
  async indexing), each followed by record <-> index invariant checks (faults_kill.py);
- ``fuzz``: the Hypothesis fuzz targets of ``tests/fuzz`` (Python API, REST, schemathesis
  against the OpenAPI spec, MCP tools), run as their ``slow`` long variants with
  ``MEMKIT_FUZZ_SCALE``; at the default scale 0.5 that is about 10,000 Python API + REST + MCP
  cases plus about 1,000 schemathesis calls. A failure is an uncaught non-memkit exception,
  an HTTP 5xx, a malformed error body, a rejection naming no field, or a cross-tenant item.
- ``durability``: per ``durability=`` mode, writer processes SIGKILLed right after a random
  number of acknowledged writes; a failure is an acknowledged write missing after reopen.
  Also the cost of one write in each mode, measured in the same run (``ms/write``).

The default CI run of the same targets (``python -m pytest tests/fuzz``) is the short
version: about 2,400 cases.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One line of the table."""

    section: str
    target: str
    cases: int
    failures: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. accepted/rejected, lost items
    examples: list[str] = field(default_factory=list)  # the first failures, for the report


# ---- sections ---------------------------------------------------------------------------------
def section_fuzz(args: argparse.Namespace) -> list[Row]:
    """The long fuzz runs: pytest on tests/fuzz -m slow, tally read back from JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "tally.json"
        env = {**os.environ, "MEMKIT_FUZZ_SCALE": str(args.fuzz_scale),
               "MEMKIT_FUZZ_REPORT": str(report),
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "slow",
             "tests/fuzz"], cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if not report.exists():
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
            return [Row("fuzz", "(pytest did not run)", 0, 1, round(seconds, 1))]
        tally = json.loads(report.read_text(encoding="utf-8"))
    rows = [Row("fuzz", name, t["cases"], t["failures"], round(seconds, 1),
                {"accepted": t["accepted"], "rejected": t["rejected"]}, t["examples"])
            for name, t in tally.items()]
    if proc.returncode != 0 and not any(r.failures for r in rows):
        # a test errored outside the counted cases (e.g. the memory was left broken)
        tail = proc.stdout[-2000:]
        rows.append(Row("fuzz", "(pytest exit status)", 0, 1, round(seconds, 1), {},
                        [tail]))
    return rows


_WRITER = """
import sys
from memkit import Memory
mem = Memory.open(sys.argv[1], embedder="hash", durability=sys.argv[2])
n = int(sys.argv[3])
while True:
    print(mem.write(f"acknowledged write {n} of the durability run"), flush=True)
    n += 1
"""


def section_durability(args: argparse.Namespace) -> list[Row]:
    """SIGKILL a writer right after a random number of acknowledged writes, reopen, count
    acknowledged writes that are missing (per durability mode); and the cost of a write in
    each mode, measured in this run."""
    import random
    import signal

    sys.path.insert(0, str(REPO))
    from memkit import Memory

    rng = random.Random(15)
    rows = []
    for mode in ("full", "normal"):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "m"
            with Memory.open(directory / "speed", embedder="hash", durability=mode) as mem:
                mem.write("warm-up write")
                t0 = time.perf_counter()
                for i in range(args.writes):
                    mem.write(f"timed write {i}")
                ms = (time.perf_counter() - t0) * 1000 / args.writes
            acked: list[int] = []
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                [str(REPO), os.environ.get("PYTHONPATH", "")])}
            t0 = time.perf_counter()
            for kill in range(args.kills):
                proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(directory), mode,
                                         str(len(acked) + 1000 * kill)], env=env,
                                        stdout=subprocess.PIPE, text=True)
                assert proc.stdout is not None
                for _ in range(rng.randint(1, 5)):
                    acked.append(int(proc.stdout.readline()))
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                proc.stdout.close()
            with Memory.open(directory) as mem:
                lost = [i for i in acked if not mem.store.exists(i)]
            rows.append(Row("durability", f"SIGKILL after ack ({mode})", args.kills, len(lost),
                            round(time.perf_counter() - t0, 1),
                            {"acked writes": len(acked), "lost items": len(lost),
                             "ms/write": round(ms, 2)}))
    return rows


def section_kill(args: argparse.Namespace) -> list[Row]:
    """Seeded SIGKILLs mid write_many / update / delete / forget, sync and async indexing,
    with record <-> every index invariants checked after each (benchmarks/faults_kill.py)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from faults_kill import run_kills

    result = run_kills(args.kills, seed=args.seed)
    return [Row("kill", f"SIGKILL mid-write ({mode})", r["kills"], r["violations"],
                r["seconds"], {"program steps completed": r["steps_completed"]}, r["examples"])
            for mode, r in result.items()]


def section_multiprocess(args: argparse.Namespace) -> list[Row]:
    """Writer processes and a long-lived reader on one dense+hipporag directory for
    ``--load-seconds``; every acknowledged write must be in the record and every index."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from faults_kill import run_load

    r = run_load(args.load_seconds)
    failures = r["lost"] + r["read_errors"] + len(r["process_failures"]) + len(r["violations"])
    return [Row("multiproc", f"{r['writers']} writers + {r['readers']} reader", r["reads"] +
                r["acknowledged_writes"], failures, r["seconds"],
                {"acked writes": r["acknowledged_writes"], "lost items": r["lost"],
                 "reads": r["reads"], "read errors": r["read_errors"]},
                r["process_failures"] + r["violations"])]


SECTIONS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "fuzz": section_fuzz,
    "durability": section_durability,
    "kill": section_kill,
    "multiprocess": section_multiprocess,
}


# ---- the table --------------------------------------------------------------------------------
def table(rows: list[Row]) -> str:
    head = f"{'section':<10} {'target':<28} {'cases':>8} {'failures':>9} {'seconds':>8}  detail"
    lines = [head, "-" * len(head)]
    for r in rows:
        detail = ", ".join(f"{k} {v}" for k, v in r.extra.items())
        lines.append(f"{r.section:<10} {r.target:<28} {r.cases:>8} {r.failures:>9} "
                     f"{r.seconds:>8}  {detail}")
    lines.append("-" * len(head))
    lines.append(f"{'total':<39} {sum(r.cases for r in rows):>8} "
                 f"{sum(r.failures for r in rows):>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(SECTIONS),
                        help="run only this section (repeatable)")
    parser.add_argument("--fuzz-scale", type=float, default=0.5,
                        help="multiplier of the long fuzz runs' example counts (0.5: ~10k)")
    parser.add_argument("--kills", type=int, default=30,
                        help="durability: writer processes SIGKILLed right after an ack")
    parser.add_argument("--seed", type=int, default=1, help="kill: the program and kill times")
    parser.add_argument("--load-seconds", type=float, default=60.0,
                        help="multiprocess: how long writers and the reader run")
    parser.add_argument("--writes", type=int, default=200,
                        help="durability: writes timed per mode")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name in args.only or list(SECTIONS):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(SECTIONS[name](args))
    print(table(rows))
    for r in rows:
        for example in r.examples:
            print(f"  {r.target}: {example}")
    if args.out is not None:
        args.out.write_text(json.dumps([asdict(r) for r in rows], indent=1), encoding="utf-8")
    return 1 if any(r.failures for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
