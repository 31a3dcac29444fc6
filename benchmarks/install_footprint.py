"""What the core install costs on disk and at start-up, against the same install plus torch.

    python benchmarks/install_footprint.py                 # two fresh venvs, 5 runs each
    python benchmarks/install_footprint.py --repeats 9 --keep /tmp/footprint

Two virtual environments are made from this checkout in one run:

* ``core``: ``pip install -e .`` - the default (ONNX) embedder, dense, graph, CLI;
* ``core+torch``: ``pip install torch==2.13.0 -e '.[torch]'`` - what every install carried
  before torch and sentence-transformers left the core dependencies (the torch embedder,
  ``minilm``, was then the default).

Printed: the size of each environment's ``site-packages`` (and its largest packages), whether
torch is importable, and the median wall-clock of a cold ``memkit read`` (a fresh interpreter
each time) on a small memory: with the ONNX embedder in both environments, and with the torch
embedder in ``core+torch`` - the start-up a reader paid when torch was the default.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTES = ["Alice moved to Paris in 2021.", "The deploy freeze starts on 20 December.",
         "Basalt is the storage cluster; the infra team owns it.",
         "Bob prefers genmaicha tea."]


def make_env(path: Path, packages: list[str]) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = path / "bin" / "pip"
    t0 = time.perf_counter()
    subprocess.run([str(pip), "install", "-q", *packages], check=True, cwd=REPO)
    print(f"  {path.name}: installed in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python*/site-packages"))


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) \
        / 2**20


def largest(env: Path, n: int = 5) -> str:
    sp = site_packages(env)
    sizes = [(size_mb(d), d.name) for d in sp.iterdir()
             if d.is_dir() and not d.name.endswith((".dist-info", "__pycache__"))]
    return ", ".join(f"{name} {mb:.0f}" for mb, name in sorted(sizes, reverse=True)[:n])


def has(env: Path, module: str) -> bool:
    code = f"import importlib.util as u; print(u.find_spec({module!r}) is not None)"
    out = subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip() == "True"


def memkit(env: Path, *args: str, cache: Path) -> float:
    """Seconds one ``memkit`` command takes in ``env`` (a fresh interpreter)."""
    t0 = time.perf_counter()
    subprocess.run([str(env / "bin" / "memkit"), *args], check=True, capture_output=True,
                   env={"PATH": str(env / "bin"), "MEMKIT_CACHE": str(cache),
                        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": str(cache)})
    return time.perf_counter() - t0


def cold_reads(env: Path, memory: Path, repeats: int, cache: Path) -> float:
    memkit(env, "read", "--memory", str(memory), "Who owns Basalt?", cache=cache)  # warm disk
    return statistics.median(memkit(env, "read", "--memory", str(memory), "Who owns Basalt?",
                                    cache=cache) for _ in range(repeats))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keep", default=None, help="build the venvs here and keep them")
    ap.add_argument("--torch", default="torch==2.13.0", help="the torch requirement")
    args = ap.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="footprint-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print("building the two environments (pip, from the package index)", flush=True)
        core = make_env(work / "core", ["-e", "."])
        torch_env = make_env(work / "core+torch", [args.torch, "-e", ".[torch]"])
        cache = work / "cache"
        memories = {}
        for embedder, env in (("onnx", core), ("minilm", torch_env)):
            memories[embedder] = work / f"memory-{embedder}"
            shutil.rmtree(memories[embedder], ignore_errors=True)
            code = ("import sys, memkit\n"
                    "with memkit.Memory.open(sys.argv[1], embedder=sys.argv[2]) as m:\n"
                    "    m.write_many(sys.argv[3:], progress=False)")
            subprocess.run([str(env / "bin" / "python"), "-c", code, str(memories[embedder]),
                            embedder, *NOTES], check=True, env={
                                "MEMKIT_CACHE": str(cache), "HOME": str(cache),
                                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        rows = [("core", core, "onnx"), ("core+torch", torch_env, "onnx"),
                ("core+torch", torch_env, "minilm")]
        print(f"\n{'environment':12s} {'site-packages MB':>17s} {'torch':>6s} {'embedder':>9s} "
              f"{'cold memkit read s':>19s}")
        for name, env, embedder in rows:
            seconds = cold_reads(env, memories[embedder], args.repeats, cache)
            print(f"{name:12s} {size_mb(site_packages(env)):17.0f} "
                  f"{'yes' if has(env, 'torch') else 'no':>6s} {embedder:>9s} {seconds:19.2f}",
                  flush=True)
        for name, env in (("core", core), ("core+torch", torch_env)):
            print(f"largest in {name} (MB): {largest(env)}")
        print(f"\n(median of {args.repeats} cold reads, each a fresh interpreter, after one "
              f"warm-up run; the same 4-note memory per embedder)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
