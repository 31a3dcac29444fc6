"""A deterministic, dependency-free embedder for fast tests and model-free demos.

Signed feature hashing of lower-cased word unigrams and character trigrams; texts that share
words get similar vectors. Not a semantic model: it knows nothing of paraphrase.

>>> e = HashEmbedder(dim=64)
>>> v = e.embed(["Alice lives in Paris", "alice LIVES in paris!"])
>>> round(float(v[0] @ v[1]), 3)
1.0
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from memkit.embed.base import Embedder, normalise

_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder(Embedder):
    def __init__(self, dim: int = 256, trigrams: bool = True) -> None:
        self.dim = dim
        self.trigrams = trigrams
        self.name = f"hash-{dim}{'-tri' if trigrams else ''}"
        self.spec = f"hash:{dim}" if trigrams else None

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.casefold())
        feats = [f"w:{w}" for w in words]
        if self.trigrams:
            for w in words:
                padded = f"#{w}#"
                feats += [f"c:{padded[i:i + 3]}" for i in range(len(padded) - 2)]
        return feats

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "big")
                out[row, h % self.dim] += 1.0 if (h >> 40) & 1 else -1.0
        return normalise(out)
