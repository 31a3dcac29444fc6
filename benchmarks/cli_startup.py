"""How long `memkit` commands take to start: a baseline checkout against this tree, same run.

    python benchmarks/cli_startup.py                     # baseline: /work/main
    python benchmarks/cli_startup.py --baseline ../memkit-old --repeats 5

Each command runs in a fresh interpreter (``python -m memkit.cli ...``, with PYTHONPATH set to
the tree under test) on a copy of one small memory (6 items, packaged MiniLM), so both trees
pay the same cold start; the median wall-clock of ``--repeats`` runs is printed side by side
with the ratio. Then ``python -X importtime`` shows the modules that dominate ``import
memkit.cli`` and a ``stats`` command in each tree. The targets (issue 21): commands that do
not embed under 0.5 s, a cold ``read`` under 3 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
NOTES = ["Alice moved to Paris in 2021.", "The deploy freeze starts on 20 December.",
         "Basalt is the storage cluster; the infra team owns it.",
         "Quarterly revenue grew by eight percent.", "Bob prefers genmaicha tea.",
         "The lighthouse keeper feeds the gulls at dawn."]

#: label -> arguments after `memkit`
COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "argument error": ["read", "--bogus"],
    "stats": ["stats", "-m", "{mem}"],
    "get 1": ["get", "1", "-m", "{mem}"],
    "audit": ["audit", "-m", "{mem}"],
    "delete 1": ["delete", "1", "-m", "{mem}"],
    "read (cold)": ["read", "who owns Basalt?", "-m", "{mem}", "-k", "2"],
}


def has_command(tree: Path, name: str, cwd: Path) -> bool:
    out = subprocess.run([sys.executable, "-m", "memkit.cli", "--help"], env=_env(tree),
                         cwd=cwd, capture_output=True, text=True, check=False).stdout
    return any(line.split()[:1] == [name] for line in out.splitlines())


def build_memory(path: Path, tree: Path = HERE) -> None:
    """The 6-note memory, built by ``tree`` with its default embedder. Built by the baseline,
    both trees can open it (a newer tree migrates a copy; an older one cannot read a newer
    schema), so both are timed on the same memory and the same embedder."""
    code = ("import sys; from memkit.memory import Memory\n"
            "with Memory.open(sys.argv[1]) as m:\n"
            f"    m.write_many({NOTES!r})\n")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=_env(tree),
                   capture_output=True, cwd=path.parent)


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env.pop("MEMKIT_MEMORY", None)
    return env


def time_command(tree: Path, args: list[str], memory: Path, scratch: Path) -> float:
    mem = scratch / "mem"
    if mem.exists():
        shutil.rmtree(mem)
    shutil.copytree(memory, mem)
    argv = [a.replace("{mem}", str(mem)) for a in args]
    start = time.perf_counter()
    # cwd outside both trees: `python -m` puts the working directory first on sys.path
    subprocess.run([sys.executable, "-m", "memkit.cli", *argv], env=_env(tree), cwd=scratch,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def import_top(tree: Path, argv: list[str], n: int, cwd: Path) -> list[tuple[str, float]]:
    """The ``n`` top-level imports (depth 1) with the largest cumulative time, in seconds."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], env=_env(tree),
                          capture_output=True, text=True, check=False, cwd=cwd)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        if m and len(m.group(2)) <= 2:  # top level and its direct children
            rows.append((m.group(3), int(m.group(1)) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:n]


def tree_of(tree: Path, cwd: Path) -> Path:
    """The checkout ``memkit`` is imported from with PYTHONPATH=tree (a guard against
    measuring the wrong tree)."""
    out = subprocess.run([sys.executable, "-c", "import memkit; print(memkit.__file__)"],
                         env=_env(tree), cwd=cwd, capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="/work/main", help="checkout to compare against")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--top", type=int, default=8, help="importers listed per tree")
    args = ap.parse_args()
    base, new = Path(args.baseline).resolve(), HERE
    with tempfile.TemporaryDirectory(prefix="memkit-startup-") as tmp:
        scratch = Path(tmp)
        memory = scratch / "template"
        build_memory(memory, base)
        fresh = scratch / "template-new"  # a memory this tree creates: its default embedder
        build_memory(fresh, new)
        for tree in (base, new):
            if tree_of(tree, scratch) != tree:
                raise SystemExit(f"PYTHONPATH={tree} imports memkit from {tree_of(tree, scratch)}")
        for tree in (base, new):  # warm the OS file cache so neither tree pays it alone
            time_command(tree, ["stats", "-m", "{mem}"], memory, scratch)
        print(f"baseline: {base}\nthis tree: {new}\nmedian of {args.repeats} fresh processes; "
              "target: < 0.5 s for commands that do not embed, < 3 s for a cold read\n")
        print("| command | baseline s | this tree s | speed-up |\n|---|---:|---:|---:|")
        for label, argv in COMMANDS.items():
            times = {}
            for name, tree in (("base", base), ("new", new)):
                if argv[0].startswith("-") or has_command(tree, argv[0], scratch):
                    times[name] = statistics.median(
                        time_command(tree, argv, memory, scratch) for _ in range(args.repeats))
            if "base" not in times:
                print(f"| memkit {label} | (no such command) | {times['new']:.2f} | |")
                continue
            print(f"| memkit {label} | {times['base']:.2f} | {times['new']:.2f} | "
                  f"{times['base'] / times['new']:.1f}x |", flush=True)
        read = COMMANDS["read (cold)"]
        t_new = statistics.median(time_command(new, read, fresh, scratch)
                                  for _ in range(args.repeats))
        print(f"| memkit read (cold), a memory this tree created (its default embedder) | "
              f"| {t_new:.2f} | |", flush=True)
        for what, argv in (("import memkit.cli", ["-c", "import memkit.cli"]),
                           ("memkit stats", ["-m", "memkit.cli", "stats", "-m",
                                             str(memory)])):
            print(f"\npython -X importtime, {what}: largest cumulative imports (s)")
            tops = {name: import_top(tree, argv, args.top, scratch)
                    for name, tree in (("baseline", base), ("this tree", new))}
            print("| baseline | s | this tree | s |\n|---|---:|---|---:|")
            for i in range(args.top):
                cells = []
                for name in ("baseline", "this tree"):
                    row = tops[name][i] if i < len(tops[name]) else ("", 0.0)
                    cells += [row[0], f"{row[1]:.3f}" if row[0] else ""]
                print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
