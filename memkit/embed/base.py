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

#: the reference model's (all-MiniLM-L6-v2's) cosines of random pairs of short strings at
#: those levels; memkit's text-to-text thresholds (HippoRAG's synonymy threshold) are given on
#: its scale. Not for query-to-text thresholds: a query prefix (e5's ``query:``) moves those
#: to another scale (``benchmarks/similarity_scale.py --queries``)
REFERENCE_QUANTILES = (0.158, 0.277, 0.436, 0.640, 0.823)

#: model name -> its own cosines of random pairs of short strings at the same levels
#: (``python benchmarks/similarity_scale.py --embedder SPEC`` measures them). A model not
#: listed is taken to be on the reference scale (true of MiniLM on torch or onnxruntime, fp32
#: or int8).
SIMILARITY_QUANTILES: dict[str, tuple[float, ...]] = {
    # multilingual-e5-small: unrelated phrases score ~0.83 (MiniLM: ~0.16); measured
    # 2026-12-04 on 2,000 phrases (both variants gave the same quantiles to 3 decimals)
    "multilingual-e5-small-q4": (0.827, 0.859, 0.886, 0.910, 0.943),
    "portuguese-multilingual-e5-small-q4": (0.827, 0.859, 0.886, 0.910, 0.943),
    # the two fused (``onnx+e5``), measured the same way; the parts' spread-weighted mean
    # (what an unlisted ensemble gets) is (0.710, 0.757, 0.807, 0.863, 0.922)
    "ensemble(all-MiniLM-L6-v2-onnx@256,multilingual-e5-small-q4)":
        (0.710, 0.747, 0.791, 0.847, 0.915),
}


def _ensemble_parts(model: str) -> list[str] | None:
    """The part names of an ensemble embedder's name (``ensemble(a,b)``), else None."""
    if model.startswith("ensemble(") and model.endswith(")"):
        return model[len("ensemble("):-1].split(",")
    return None


def similarity_spread(model: str) -> float:
    """How widely ``model`` spreads unrelated texts: the 99th minus the 50th percentile of
    its random-pair cosines (MiniLM 0.278, e5 0.059)."""
    return _spread(similarity_quantiles(model))


def _spread(quantiles: tuple[float, ...]) -> float:
    return quantiles[2] - quantiles[0]  # the 99th and the 50th percentile


def similarity_quantiles(model: str) -> tuple[float, ...]:
    """``model``'s random-pair cosines at :data:`SIMILARITY_LEVELS`. An ensemble's are the
    spread-weighted mean of its parts' unless measured (exact when the parts rank pairs
    alike; for MiniLM + e5 within 0.016 of the measurement)."""
    if model in SIMILARITY_QUANTILES:
        return SIMILARITY_QUANTILES[model]
    parts = _ensemble_parts(model)
    if parts is None:
        return REFERENCE_QUANTILES
    qs = [similarity_quantiles(p) for p in parts]
    w = [1.0 / _spread(q) for q in qs]
    return tuple(sum(wi * q[j] for wi, q in zip(w, qs, strict=True)) / sum(w)
                 for j in range(len(SIMILARITY_LEVELS)))


def scale_threshold(model: str, reference: float) -> float:
    """A text-to-text cosine threshold given on the reference scale, on ``model``'s own scale
    (not for query-to-text thresholds: see :data:`REFERENCE_QUANTILES`): the cosine
    that passes the same share of random pairs (piecewise linear between the quantiles, and
    from the outer ones to (-1, -1) and (1, 1)).

    >>> scale_threshold("all-MiniLM-L6-v2", 0.8)
    0.8
    >>> round(scale_threshold("multilingual-e5-small-q4", 0.823), 3)
    0.943
    >>> round(scale_threshold("multilingual-e5-small-q4", 0.8), 3)
    0.939
    """
    own = similarity_quantiles(model)
    if own == REFERENCE_QUANTILES:
        return float(reference)
    return float(np.interp(reference, [-1.0, *REFERENCE_QUANTILES, 1.0], [-1.0, *own, 1.0]))


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
        """A text-to-text cosine threshold given on the reference (MiniLM) scale, on this
        model's scale (:func:`scale_threshold`; the identity for MiniLM and unlisted models;
        not for query-to-text thresholds)."""
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
