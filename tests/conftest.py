"""Shared fixtures: real SQLite files and faiss indexes, a deterministic embedder, fake LLMs
only at the LLM boundary."""

from __future__ import annotations

import os
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


@pytest.fixture
def mem(tmp_path: Path, embedder: HashEmbedder) -> Iterator[Memory]:
    """A memory in a real directory (SQLite file + faiss file) with the hash embedder."""
    m = Memory.open(tmp_path / "mem", embedder=embedder)
    yield m
    m.close()


@pytest.fixture(scope="session")
def minilm():  # type: ignore[no-untyped-def]
    """The packaged all-MiniLM-L6-v2 (loaded once per test session)."""
    from memkit.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()
