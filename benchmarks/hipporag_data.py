"""MuSiQue-200 loading and a disk-cached embedder for the HippoRAG benchmarks.

The corpus is every unique paragraph of the 200 dev questions (3,141 items), each rendered
``f"{title}\\n{paragraph_text}"``. Embeddings are cached by text hash under
``$MEMKIT_BENCH_CACHE`` (default ``/tmp/memkit-cache/hipporag``), never in the repository, so
ablation runs re-embed only texts they have not seen (new phrases, facts).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memkit.embed.base import Embedder

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "musique_dev200.jsonl"


def cache_dir() -> Path:
    d = Path(os.environ.get("MEMKIT_BENCH_CACHE", "/tmp/memkit-cache/hipporag"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class Question:
    qid: str
    question: str
    answer: str
    gold: list[int]  # corpus indices of the supporting paragraphs


def load_musique(path: Path = DATA, limit: int | None = None) -> tuple[list[str], list[Question]]:
    """(corpus texts, questions) with gold passages as corpus indices."""
    corpus: list[str] = []
    index: dict[str, int] = {}
    questions: list[Question] = []
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    for row in rows[:limit]:
        gold = []
        for p in row["paragraphs"]:
            text = f"{p['title']}\n{p['paragraph_text']}"
            if text not in index:
                index[text] = len(corpus)
                corpus.append(text)
            if p.get("is_supporting"):
                gold.append(index[text])
        questions.append(Question(row["id"], row["question"], row["answer"], gold))
    return corpus, questions


class CachedEmbedder(Embedder):
    """Wraps an embedder; vectors are stored by sha1(name + text) in a SQLite file."""

    def __init__(self, inner: Embedder, path: Path | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.path = path or cache_dir() / f"vectors-{inner.name.replace('/', '_')}.sqlite"
        self.conn = sqlite3.connect(str(self.path))
        self.conn.execute("CREATE TABLE IF NOT EXISTS v (k TEXT PRIMARY KEY, vec BLOB)")

    def _key(self, text: str, kind: str) -> str:
        return hashlib.sha1(f"{kind}\x00{text}".encode()).hexdigest()

    def _lookup(self, texts: Sequence[str], kind: str, embed: object) -> np.ndarray:
        keys = [self._key(t, kind) for t in texts]
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            q = f"SELECT k, vec FROM v WHERE k IN ({','.join('?' * len(chunk))})"
            for k, blob in self.conn.execute(q, chunk):
                found[k] = np.frombuffer(blob, dtype=np.float32)
        todo = sorted(
            {i for i, k in enumerate(keys) if k not in found}, key=lambda i: len(texts[i])
        )
        if todo:
            vecs = embed([texts[i] for i in todo])  # type: ignore[operator]
            rows = [
                (keys[i], np.asarray(v, dtype=np.float32).tobytes())
                for i, v in zip(todo, vecs, strict=False)
            ]
            self.conn.executemany("INSERT OR REPLACE INTO v VALUES (?, ?)", rows)
            self.conn.commit()
            for (k, _), v in zip(rows, vecs, strict=False):
                found[k] = np.asarray(v, dtype=np.float32)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([found[k] for k in keys])

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self._lookup(texts, "doc", self.inner.embed_batch)

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: bool = False,
        desc: str = "embedding",
    ) -> np.ndarray:
        return self._lookup(
            list(texts),
            "doc",
            lambda t: self.inner.embed(
                t, batch_size=batch_size, progress=progress or len(t) > 500, desc=desc
            ),
        )

    def embed_queries(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray:
        kind = f"query:{instruction or ''}"
        return self._lookup(list(texts), kind, lambda t: self.inner.embed_queries(t, instruction))


def minilm_cached() -> CachedEmbedder:
    from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

    return CachedEmbedder(SentenceTransformerEmbedder())


if __name__ == "__main__":  # warm the cache: python benchmarks/hipporag_data.py
    corpus, qs = load_musique()
    emb = minilm_cached()
    emb.embed(corpus, progress=True)
    emb.embed_queries([q.question for q in qs])
    print(len(corpus), "passages and", len(qs), "questions cached in", emb.path)
