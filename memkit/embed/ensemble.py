"""Two (or more) embedders as one: score fusion of their cosines, as a vector.

``"onnx+e5"`` embeds every text with both models and concatenates the L2-normalised
vectors, part ``i`` scaled by ``sqrt(w_i / sum(w))``. The inner product of two such vectors is
then ``sum_i w_i cos_i / sum(w)``: a weighted mean of the models' cosines, so every index
(faiss, pgvector, HippoRAG's phrase and passage indexes) fuses the models exactly, with no
second search. The weights are ``1 / spread_i``, the spread of model i's cosines between
unrelated texts (99th minus 50th percentile of random-pair cosines,
:func:`memkit.embed.base.similarity_spread`): e5 scores everything within a narrow band
(spread 0.059) that MiniLM's wider scale (0.278) would otherwise drown, and dividing by the
spread puts both on the same footing without looking at any question or label.

>>> from memkit.embed.hashing import HashEmbedder
>>> e = EnsembleEmbedder([HashEmbedder(dim=8), HashEmbedder(dim=4)])
>>> e.dim, e.embed(["a b"]).shape
(12, (1, 12))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memkit.embed.base import Embedder, similarity_spread
from memkit.errors import ConfigError


class EnsembleEmbedder(Embedder):
    """Embedders fused by a spread-weighted mean of their cosines (spec ``"a+b"``)."""

    def __init__(self, parts: Sequence[Embedder], weights: Sequence[float] | None = None
                 ) -> None:
        if len(parts) < 2:
            raise ConfigError("an ensemble embedder needs at least two embedders")
        self.parts = list(parts)
        w = [1.0 / similarity_spread(p.name) for p in self.parts] if weights is None \
            else [float(x) for x in weights]
        if len(w) != len(self.parts) or any(x <= 0 for x in w):
            raise ConfigError(f"ensemble weights must be positive, one per part, got {w}")
        self.weights = w
        self._scale = np.sqrt(np.asarray(w) / sum(w)).astype(np.float32)
        self.dim = sum(p.dim for p in self.parts)
        self.name = "ensemble(" + ",".join(p.name for p in self.parts) + ")"
        specs = [p.spec for p in self.parts]
        self.spec = "+".join(s for s in specs if s) if all(specs) and weights is None \
            else None  # explicit weights cannot be written in a spec

    def combine(self, vectors: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble vectors of the parts' own (row-normalised) vectors, in part order."""
        n = len(vectors[0])
        out = np.empty((n, self.dim), dtype=np.float32)
        col = 0
        for vec, scale, part in zip(vectors, self._scale, self.parts, strict=True):
            out[:, col:col + part.dim] = np.asarray(vec, dtype=np.float32) * scale
            col += part.dim
        return out

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.combine([p.embed_batch(texts) for p in self.parts])

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
              desc: str = "embedding") -> np.ndarray:
        """Each part embeds all the texts its own way (the ONNX embedder sorts them by
        length across the whole call), then the vectors are combined."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.combine([p.embed(texts, batch_size=batch_size, progress=progress,
                                     desc=f"{desc} ({p.name})") for p in self.parts])

    def embed_queries(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray:
        # each part embeds queries its own way (e5: the "query: " prefix)
        return self.combine([p.embed_queries(texts, instruction) for p in self.parts])

    def count_tokens(self, text: str) -> int:
        return max(p.count_tokens(text) for p in self.parts)
