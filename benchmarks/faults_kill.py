"""Seeded SIGKILLs in the middle of every kind of write, with invariant checks record <-> every
index after each kill (a section of ``benchmarks/faults.py``, also run small by a test).

A child process opens a dense + hipporag memory and runs a seeded random program of
``write_many``, ``update``, ``delete`` and ``forget`` (sync or async indexing); the parent
kills it after a random delay, reopens the memory and checks:

* every item of the record is in the dense index and has its shared vector, and nothing else is;
* every item of the record has a HippoRAG passage row, and no deleted item keeps one;
* no two current items of one scope hold the same text;
* the shared watermarks never run ahead of the record.

    python benchmarks/faults_kill.py --kills 100 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import random, sys, time
from memkit import Memory
directory, seed, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(seed)
with Memory.open(directory, backends=["dense", "hipporag"], embedder="hash:64", index=mode,
                 backend_options={"hipporag": {"extractor": "rules"}}) as mem:
    print("ready", flush=True)
    for step in range(10_000):
        op = rng.random()
        ids = [it.id for it in mem.store.iter_items()]
        if op < 0.45 or not ids:
            mem.write_many([{"text": f"Note {seed}-{step}-{n}: Team {rng.randint(0, 9)} "
                                     f"met Client {rng.randint(0, 9)} in Oslo.",
                             "ttl": rng.choice([None, None, 0.01])} for n in range(20)],
                           batch_size=7)
        elif op < 0.7:
            try:
                mem.update(rng.choice(ids), f"Revised {seed}-{step}: Team {rng.randint(0, 9)}.")
            except Exception:
                pass  # superseded meanwhile, or the same text already current
        elif op < 0.9:
            mem.delete(rng.sample(ids, min(len(ids), rng.randint(1, 4))), reason="test")
        else:
            mem.forget("ttl")
        print(step, flush=True)
"""


def check(directory: Path) -> list[str]:
    """Invariant violations of a memory after a crash (empty when consistent)."""
    sys.path.insert(0, str(REPO))
    from memkit import Memory

    problems: list[str] = []
    with Memory.open(directory) as mem:
        conn = mem.store.conn
        record = {r[0] for r in conn.execute("SELECT id FROM items")}
        dense = set(mem.backends["dense"].index.ids().tolist())  # type: ignore[attr-defined]
        vectors = {r[0] for r in conn.execute("SELECT item_id FROM item_vectors")}
        passages = {r[0] for r in conn.execute("SELECT item_id FROM hipporag_passages")}
        if dense != record:
            missing, extra = sorted(record - dense)[:5], sorted(dense - record)[:5]
            problems.append(f"dense {len(dense)} vs record {len(record)}: "
                            f"missing {missing} extra {extra}")
        if not record <= vectors or not vectors <= record:
            problems.append(f"item vectors differ from the record by "
                            f"{len(record ^ vectors)} ids")
        if passages != record:
            problems.append(f"hipporag passages differ from the record by "
                            f"{len(record ^ passages)} ids")
        dup = conn.execute("SELECT scope_key, content_hash, COUNT(*) FROM items WHERE "
                           "valid_until IS NULL GROUP BY 1, 2 HAVING COUNT(*) > 1").fetchall()
        if dup:
            problems.append(f"{len(dup)} duplicated current texts")
        last = mem.store.last_seq()
        ahead = [r for r in conn.execute("SELECT name, watermark FROM backend_state")
                 if r[1] > last]
        if ahead:
            problems.append(f"watermarks ahead of the record: {ahead}")
    return problems


def _create(directory: Path) -> None:
    sys.path.insert(0, str(REPO))
    from memkit import Memory

    with Memory.open(directory, backends=["dense", "hipporag"], embedder="hash:64",
                     backend_options={"hipporag": {"extractor": "rules"}}) as mem:
        mem.write("The memory was created for the fault suite.")


def run_kills(kills: int, seed: int, modes: tuple[str, ...] = ("sync", "async"),
              max_delay: float = 1.2) -> dict[str, Any]:
    """``kills`` seeded kills per indexing mode; returns counts and the first violations."""
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}
    out: dict[str, Any] = {}
    for mode in modes:
        t0 = time.perf_counter()
        violations: list[str] = []
        steps = 0
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "m"
            _create(directory)  # a kill during a child's start-up still finds the memory
            for k in range(kills):
                proc = subprocess.Popen([sys.executable, "-c", CHILD, str(directory),
                                         str(rng.randrange(10**6)), mode], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                assert proc.stdout is not None
                ready = proc.stdout.readline()  # the memory is open: kill mid-program
                time.sleep(rng.uniform(0.0, max_delay))
                proc.send_signal(signal.SIGKILL)
                stdout, stderr = proc.communicate(timeout=60)
                if proc.returncode != -signal.SIGKILL or ready.strip() != "ready":
                    violations.append(f"kill {k}: the child ended by itself ({proc.returncode}):"
                                      f" {stderr[-300:]}")
                steps += len(stdout.split())
                violations += [f"kill {k}: {p}" for p in check(directory)]
        out[mode] = {"kills": kills, "steps_completed": steps, "violations": len(violations),
                     "examples": violations[:5],
                     "seconds": round(time.perf_counter() - t0, 1)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=100, help="kills per indexing mode")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    result = run_kills(args.kills, args.seed)
    print(json.dumps(result, indent=1))
    return 0 if all(r["violations"] == 0 for r in result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())


LOAD_WRITER = r"""
import sys, time
from memkit import Memory
directory, tag, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
acked = 0
with Memory.open(directory) as mem:
    deadline = time.time() + seconds
    n = 0
    while time.time() < deadline:
        n += 1
        mem.write(f"{tag} wrote note {n} about Oslo")
        acked += 1
print(acked)
"""

LOAD_READER = r"""
import sys, time
from memkit import Memory
directory, seconds = sys.argv[1], float(sys.argv[2])
reads = errors = 0
with Memory.open(directory) as mem:
    deadline = time.time() + seconds
    while time.time() < deadline:
        for backend in ("dense", "hipporag"):
            try:
                mem.read("who wrote a note about Oslo", k=5, backend=backend)
                reads += 1
            except Exception as exc:
                errors += 1
                print("error", repr(exc), file=sys.stderr)
print(reads, errors)
"""


def run_load(seconds: float, writers: int = 2, readers: int = 1) -> dict[str, Any]:
    """Writer and long-lived reader processes on one directory for ``seconds``; then every
    acknowledged write must be in the record and every index (``check``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "m"
        _create(directory)
        procs = [subprocess.Popen([sys.executable, "-c", LOAD_WRITER, str(directory), f"w{i}",
                                   str(seconds)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(writers)]
        procs += [subprocess.Popen([sys.executable, "-c", LOAD_READER, str(directory),
                                    str(seconds)], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for _ in range(readers)]
        outs = [p.communicate(timeout=seconds + 300) for p in procs]
        failed = [f"process {i} exited {p.returncode}: {err[-300:]}"
                  for i, (p, (_, err)) in enumerate(zip(procs, outs, strict=True))
                  if p.returncode != 0]
        acked = sum(int(o.split()[0]) for o, _ in outs[:writers] if o.strip())
        reads = sum(int(o.split()[0]) for o, _ in outs[writers:] if o.strip())
        read_errors = sum(int(o.split()[1]) for o, _ in outs[writers:] if o.strip())
        problems = check(directory)
        sys.path.insert(0, str(REPO))
        from memkit import Memory

        with Memory.open(directory) as mem:
            items = mem.store.count()
    lost = max(0, acked + 1 - items)  # +1: the item _create wrote
    return {"seconds": round(time.perf_counter() - t0, 1), "writers": writers,
            "readers": readers, "acknowledged_writes": acked, "items": items, "lost": lost,
            "reads": reads, "read_errors": read_errors, "process_failures": failed,
            "violations": problems}
