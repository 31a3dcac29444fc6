"""The Embedder protocol: one abstract method over a batch; the rest is built on it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from memkit.metering import charge_embed
from memkit.tokens import approx_tokens

#: quantile levels of random-pair cosines at which two models' scales are matched
SIMILARITY_LEVELS = (0.5, 0.9, 0.99, 0.999, 0.9999)

#: model name -> knots ``(reference cosine, this model's cosine)``: the two models' cosines of
#: random pairs of short strings at the quantile levels above (``python
#: benchmarks/similarity_scale.py --embedder SPEC`` measures them). The reference scale is
#: all-MiniLM-L6-v2's, on which memkit's thresholds are given; a model not listed is taken to
#: be on it (true of MiniLM on torch or onnxruntime, fp32 or int8).
SIMILARITY_KNOTS: dict[str, tuple[tuple[float, float], ...]] = {
    # multilingual-e5-small: unrelated phrases score ~0.83 (MiniLM: ~0.16); measured
    # 2026-12-04 on 2,000 phrases (both variants gave the same quantiles to 3 decimals)
    "multilingual-e5-small-q4": ((0.158, 0.827), (0.277, 0.859), (0.436, 0.886),
                                 (0.640, 0.910), (0.823, 0.943)),
    "portuguese-multilingual-e5-small-q4": ((0.158, 0.827), (0.277, 0.859),
                                            (0.436, 0.886), (0.640, 0.910), (0.823, 0.943)),
}


def scale_threshold(model: str, reference: float) -> float:
    """A cosine threshold given on the reference scale, on ``model``'s own scale: the cosine
    that passes the same share of random pairs (piecewise linear between the knots, and from
    the outer knots to (-1, -1) and (1, 1)).

    >>> scale_threshold("all-MiniLM-L6-v2", 0.8)
    0.8
    >>> round(scale_threshold("multilingual-e5-small-q4", 0.823), 3)
    0.943
    >>> round(scale_threshold("multilingual-e5-small-q4", 0.8), 3)
    0.939
    """
    knots = SIMILARITY_KNOTS.get(model)
    if knots is None:
        return float(reference)
    ref = [-1.0, *(r for r, _ in knots), 1.0]
    own = [-1.0, *(o for _, o in knots), 1.0]
    return float(np.interp(reference, ref, own))


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

    def threshold(self, reference: float) -> float:
        """A cosine threshold given on the reference (MiniLM) scale, on this model's scale
        (:func:`scale_threshold`; the identity for MiniLM and unlisted models)."""
        return scale_threshold(self.name, reference)

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
