"""A whole memory on Postgres: the same reads as on SQLite for every backend, several
processes on one database seeing each other's writes, the config kept in the database, the
CLI and server on a DSN, and the database going away in the middle of a write."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.errors import ConfigError, MissingDependency, StoreUnavailable
from memkit.types import Scope

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("psycopg", reason="needs the [postgres] extra")

CORPUS = [
    "Bergen Harbour\nBergen Harbour is run by Fjord Logistics. It opened in 1902.",
    "Fjord Logistics\nFjord Logistics is owned by Nordic Shipping Group.",
    "Nordic Shipping Group\nNordic Shipping Group is based in Oslo.",
    "Oslo\nOslo is the capital of Norway.",
    "Atlantic Freight\nAtlantic Freight runs the Oslo terminal since 2020.",
    "Marie Curie\nMarie Curie was born in Warsaw. She won the Nobel Prize in Physics.",
    "Warsaw\nWarsaw is the capital of Poland.",
]
QUERIES = ["Who owns the company that runs Bergen Harbour?", "Where was Marie Curie born?",
           "capital of Norway"]
OPTIONS = {"hipporag": {"extractor": "rules"}}


def _reads(mem: Memory, backend: str) -> list[list[tuple[str, float]]]:
    out = []
    for q in QUERIES:
        res = mem.read(q, k=4, backend=backend)
        out.append([(h.item.text, round(h.score, 6)) for h in res.hits])
        if backend == "hipporag":  # the fact channel: facts deferred at write, embedded now
            res = mem.read(q, k=4, backend=backend,
                           read_options={"hipporag": {"use_facts": True}})
            out.append([(h.item.text, round(h.score, 6)) for h in res.hits])
    return out


@pytest.mark.parametrize("backends", [["dense", "hipporag"], ["panini"], ["bm25"]])
def test_every_backend_reads_the_same_on_postgres_as_on_sqlite(
        tmp_path: Path, pg_dsn: str, backends: list[str]) -> None:
    results = []
    for target in (tmp_path / "sqlite", pg_dsn):
        with Memory.open(target, backends=backends, embedder=HashEmbedder(64),
                         backend_options={b: OPTIONS[b] for b in backends if b in OPTIONS}
                         ) as mem:
            mem.write_many(CORPUS[:5])
            mem.delete([mem.write("A passage that is written, then deleted.")])
            mem.update(mem.write_many(CORPUS[5:]).added[0], CORPUS[5] + " In 1903 too.")
            results.append({b: _reads(mem, b) for b in backends})
            results[-1]["stats"] = {b: mem.stats()["backends"][b].get("passages")
                                    for b in backends}
    assert results[0] == results[1]
    assert any(results[0][backends[0]])


def test_config_lives_in_the_database(pg_dsn: str) -> None:
    with Memory.open(pg_dsn, backends=["dense", "hipporag"], embedder="hash",
                     backend_options=OPTIONS) as mem:
        mem.write("Oslo is the capital of Norway.")
    with Memory.open(pg_dsn) as mem:  # no arguments: the saved configuration
        assert mem.config.backends == ["dense", "hipporag"] and mem.config.embedder == "hash"
        assert mem.read("capital of Norway", k=1)[0].text == "Oslo is the capital of Norway."


def test_a_cache_directory_belongs_to_one_database(tmp_path: Path, pg_server: Any) -> None:
    from pgtools import dsn_for

    a, b = dsn_for(pg_server), dsn_for(pg_server)
    cache = tmp_path / "cache"
    with Memory.open(cache, store=a, embedder="hash") as mem:
        mem.write("x")
    assert (cache / "vectors" / "dense.faiss").exists()
    with Memory.open(cache, store=a, embedder="hash") as mem:  # reused: its files load
        assert mem.read("x", k=1)[0].text == "x"
    with pytest.raises(ConfigError, match="caches another memory"):
        Memory.open(cache, store=b, embedder="hash")
    (tmp_path / "sqlite").mkdir()
    (tmp_path / "sqlite" / "memory.db").write_bytes(b"")
    with pytest.raises(ConfigError, match="not empty"):
        Memory.open(tmp_path / "sqlite", store=b, embedder="hash")


CHILD = r"""
import sys
from memkit import Memory
with Memory.open(sys.argv[1]) as mem:
    for line in sys.stdin:
        mem.write(line.strip())
        print("ok", flush=True)
"""


def test_two_processes_on_one_database_see_each_others_writes(pg_dsn: str) -> None:
    with Memory.open(pg_dsn, backends=["dense", "hipporag"], embedder="hash",
                     backend_options=OPTIONS) as mem:
        mem.write(CORPUS[0])
        child = subprocess.Popen([sys.executable, "-c", CHILD, pg_dsn], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO)})
        assert child.stdin is not None and child.stdout is not None
        try:
            for text in CORPUS[1:4]:
                child.stdin.write(text.replace("\n", " ") + "\n")
                child.stdin.flush()
                assert child.stdout.readline().strip() == "ok"
                # this process's faiss index and graph catch up from the shared change feed
                for backend in ("dense", "hipporag"):
                    hits = mem.read(text, k=8, backend=backend).hits
                    assert text.replace("\n", " ") in [h.item.text for h in hits], backend
        finally:
            child.stdin.close()
            child.wait(timeout=60)
            child.stdout.close()
        assert child.returncode == 0
        assert mem.stats()["items"] == 4


class _StopsServer(HashEmbedder):
    """Stops the Postgres server the third time it embeds: the middle of a write_many."""

    def __init__(self, server: Any) -> None:
        super().__init__(64)
        self.server, self.calls = server, 0

    def embed(self, texts: Any, **kw: Any) -> np.ndarray:
        self.calls += 1
        if self.calls == 3 and self.server is not None:
            self.server.cleanup()
            self.server = None
        return super().embed(texts, **kw)


def test_the_database_going_away_mid_write_many_loses_and_duplicates_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pgtools import dsn_for, start_server

    from memkit.ingest import pipeline

    # embedding groups of two commit batches: the server stops while the third group is
    # embedded, after the first groups' batches may have committed
    monkeypatch.setattr(pipeline, "EMBED_WINDOW", 100)

    server = start_server()
    pgdata = server.pgdata
    dsn = dsn_for(server, "faults") + "&pool_timeout=2"
    texts = [f"passage number {i} about topic {i % 5}" for i in range(300)]
    try:
        emb = _StopsServer(server)
        mem = Memory.open(dsn, embedder=emb)
        with pytest.raises(StoreUnavailable, match="Postgres"):
            mem.write_many(texts, batch_size=50)
        try:
            mem.close()
        except StoreUnavailable:
            pass  # closing flushes nothing to a database that is gone
        server = start_server(pgdata)  # the same data directory, restarted
        with Memory.open(dsn, embedder=HashEmbedder(64)) as mem:
            written = mem.stats()["items"]
            assert 0 <= written < len(texts)  # whole batches, never a partial one
            assert written % 50 == 0
            report = mem.write_many(texts, batch_size=50)
            assert mem.stats()["items"] == len(texts)
            assert len(report.added) == len(texts) - written
            # every item is in the record and in the index, once
            ids = set(mem.store.allowed_ids(Scope()).tolist())
            assert len(ids) == len(texts)
            assert mem.indexer.backend("dense").index.ntotal == len(texts)  # type: ignore
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(pgdata.parent, ignore_errors=True)


def test_bad_targets_get_clear_errors(tmp_path: Path, pg_dsn: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StoreUnavailable, match="cannot connect to Postgres"):
        Memory.open("postgresql://nobody@127.0.0.1:1/nothing", embedder="hash")
    with pytest.raises(ConfigError, match="schema must be"):
        Memory.open(pg_dsn.replace("schema=", "schema=Bad-Name"), embedder="hash")
    with pytest.raises(StoreUnavailable) as info:
        Memory.open("postgresql://me:s3cret@127.0.0.1:1/x", embedder="hash")
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingDependency, match=r"memkit-agent\[postgres\]"):
        Memory.open(pg_dsn, embedder="hash")


def test_cli_on_a_dsn(pg_dsn: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MEMKIT_MEMORY": pg_dsn}

    def memkit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "memkit.cli", *args], env=env, text=True,
                              capture_output=True, timeout=120)

    missing = memkit("read", "anything")
    assert missing.returncode != 0 and "no memory at" in missing.stderr
    assert memkit("write", "--embedder", "hash", "Oslo is the capital of Norway.").returncode == 0
    out = memkit("read", "--json", "capital of Norway")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["hits"][0]["text"] == "Oslo is the capital of Norway."
    stats = json.loads(memkit("stats", "--json").stdout)
    assert stats["items"] == 1 and stats["store"]["kind"] == "postgres"


def test_concurrent_threads_share_the_pool(pg_dsn: str) -> None:
    with Memory.open(pg_dsn, embedder="hash") as mem:
        errors: list[BaseException] = []

        def work(w: int) -> None:
            try:
                for i in range(15):
                    mem.write(f"thread {w} note {i}")
                    mem.read(f"note {i}", k=3)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and mem.stats()["items"] == 60


def test_the_llm_call_cache_lives_in_postgres(pg_dsn: str) -> None:
    from memkit.llm.cache import CachedLLM
    from memkit.llm.fake import ScriptedLLM

    inner = ScriptedLLM({"capital": "Oslo"})
    with Memory.open(pg_dsn, embedder="hash", llm=inner) as mem:
        assert isinstance(mem.llm, CachedLLM)
        assert mem.llm.complete("the capital of Norway?").text == "Oslo"
        assert "llm_cache" in mem.store.table_names()
    again = ScriptedLLM({"capital": "Bergen"})  # another process: the cached reply wins
    with Memory.open(pg_dsn, llm=again) as mem:
        reply = mem.llm.complete("the capital of Norway?")  # type: ignore[union-attr]
        assert (reply.text, reply.cached) == ("Oslo", True) and again.calls == []
