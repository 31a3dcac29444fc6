"""The Embedder protocol: one abstract method over a batch; the rest is built on it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from memkit.metering import charge_embed
from memkit.tokens import approx_tokens


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors (so inner product = cosine)."""

    #: identifies the model (stored with vectors: a different name means re-embedding)
    name: str = "embedder"
    dim: int = 0
    #: the string ``load_embedder`` rebuilds this embedder from (saved in a memory's config),
    #: or None when it cannot be rebuilt from a string
    spec: str | None = None

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed one batch; returns an array of shape (len(texts), dim), rows L2-normalised."""

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
              desc: str = "embedding") -> np.ndarray:
        """Embed any number of texts in batches, with an optional progress bar."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        charge_embed(len(texts))
        out = []
        bar = tqdm(total=len(texts), desc=desc, disable=not progress, unit="text")
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            out.append(np.asarray(self.embed_batch(chunk), dtype=np.float32))
            bar.update(len(chunk))
        bar.close()
        return np.vstack(out)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` occupies for this model (an estimate unless overridden)."""
        return approx_tokens(text)

    def embed_queries(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray:
        """Embed queries; embedders that support instructions override this."""
        return self.embed(list(texts))

    def embed_query(self, text: str, instruction: str | None = None) -> np.ndarray:
        return self.embed_queries([text], instruction)[0]


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation that leaves zero rows at zero."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)
