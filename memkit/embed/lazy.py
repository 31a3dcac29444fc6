"""An embedder that loads its model on first use.

Opening a memory needs only an embedder's ``name`` and ``dim`` (the backends check them against
what they stored); embedding needs the model. A command that never embeds -- ``stats``,
``get``, ``delete``, ``audit`` -- should not pay the seconds that importing torch and loading
sentence-transformers cost, so the CLI opens memories with a :class:`LazyEmbedder`, whose name
and dimension come from the model's files and whose model loads when a text is first embedded.

>>> emb = LazyEmbedder("hash:8", name="hash-8-tri", dim=8)
>>> emb.loaded
False
>>> emb.embed(["x"]).shape, emb.loaded
((1, 8), True)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from memkit.embed.base import Embedder
from memkit.errors import ConfigError

#: the max_seq_length SentenceTransformerEmbedder uses by default (part of its name)
_DEFAULT_MAX_SEQ = 256
_MINILM_SPECS = ("minilm", "all-MiniLM-L6-v2", "st:all-MiniLM-L6-v2")
_ONNX_SPECS = ("onnx", "onnx:all-MiniLM-L6-v2", "onnx-int8", "onnx-int8:all-MiniLM-L6-v2",
               "openvino", "openvino:all-MiniLM-L6-v2")


class LazyEmbedder(Embedder):
    """Stands in for ``load_embedder(spec)``: ``name``/``dim``/``spec`` are known up front, the
    real embedder is built on the first call that needs it. If the loaded model's name or
    dimension differs from the promised one, that call raises ConfigError (nothing is embedded
    with the wrong model)."""

    def __init__(self, spec: str, *, name: str, dim: int,
                 factory: Callable[[], Embedder] | None = None) -> None:
        self.spec = spec
        self.name = name
        self.dim = dim
        self._factory = factory
        self._inner: Embedder | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def load(self) -> Embedder:
        """The real embedder (built once, thread-safely)."""
        if self._inner is not None:
            return self._inner
        with self._lock:
            if self._inner is None:
                if self._factory is not None:
                    inner = self._factory()
                else:
                    from memkit.embed import load_embedder

                    inner = load_embedder(self.spec)
                if (inner.name, inner.dim) != (self.name, self.dim):
                    raise ConfigError(
                        f"embedder {self.spec!r} loaded as {inner.name} (dim {inner.dim}), "
                        f"not the expected {self.name} (dim {self.dim})")
                self._inner = inner
        return self._inner

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.load().embed_batch(texts)

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
              desc: str = "embedding") -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.load().embed(texts, batch_size=batch_size, progress=progress, desc=desc)

    def count_tokens(self, text: str) -> int:
        return self.load().count_tokens(text)

    def embed_queries(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray:
        return self.load().embed_queries(texts, instruction)

    def embed_query(self, text: str, instruction: str | None = None) -> np.ndarray:
        return self.load().embed_query(text, instruction)


def lazy_embedder(spec: str | None) -> Embedder:
    """A :class:`LazyEmbedder` for a sentence-transformers spec (``minilm``, ``st:/dir`` or a
    model directory) whose name and dimension can be read from its files; any other spec
    (``hash``, which is instant, or one whose files say too little) is loaded right away."""
    from memkit.embed import DEFAULT_EMBEDDER, load_embedder

    spec = DEFAULT_EMBEDDER if spec in (None, "", "default") else spec
    described = _describe(spec)
    if described is None:
        return load_embedder(spec)
    name, dim = described
    return LazyEmbedder(spec, name=name, dim=dim, factory=lambda: _quiet_load(spec))


def _describe(spec: str) -> tuple[str, int] | None:
    """(name, dim) that SentenceTransformerEmbedder(spec) would have, from the model's files."""
    from memkit.embed import packaged

    if spec in _ONNX_SPECS:  # the packaged MiniLM on onnxruntime: OnnxEmbedder's naming
        try:
            onnx_path = packaged.packaged_minilm_path()
        except Exception:  # noqa: BLE001 - the eager load reports what is missing
            return None
        onnx_dim = _dimension(onnx_path)
        from memkit.embed.onnx_build import VARIANT_TAGS

        tag = VARIANT_TAGS["int8" if spec.startswith("onnx-int8") else "fp32"]
        return None if onnx_dim is None else (
            f"{packaged.DEFAULT_MODEL}-onnx{tag}@{_DEFAULT_MAX_SEQ}", onnx_dim)
    from memkit.embed import sentence_transformers as st_embed

    if spec in _MINILM_SPECS:
        try:
            path = st_embed.packaged_minilm_path()
        except Exception:  # noqa: BLE001 - the eager load reports what is missing
            return None
        base = st_embed.DEFAULT_MODEL
    elif spec.startswith("hash") or spec.startswith("onnx"):
        return None
    else:
        path = Path(spec[3:] if spec.startswith("st:") else spec).expanduser()
        if not path.is_dir():
            return None
        base = path.name
    dim = _dimension(path)
    return None if dim is None else (f"{base}@{_DEFAULT_MAX_SEQ}", dim)


def _dimension(path: Path) -> int | None:
    """The output dimension of a sentence-transformers model directory: the last Dense
    module's ``out_features``, else the Pooling module's ``word_embedding_dimension``."""
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        dim = None
        for module in modules:
            kind = str(module.get("type", ""))
            config = path / str(module.get("path", "")) / "config.json"
            if kind.endswith(".Pooling") and config.exists():
                conf = json.loads(config.read_text(encoding="utf-8"))
                if conf.get("pooling_mode_concat_cls_token_and_mean") or sum(
                        bool(v) for k, v in conf.items() if k.startswith("pooling_mode")) != 1:
                    return None  # concatenated poolings: leave the arithmetic to the model
                dim = int(conf["word_embedding_dimension"])
            elif kind.endswith(".Dense") and config.exists():
                dim = int(json.loads(config.read_text(encoding="utf-8"))["out_features"])
            elif not kind.endswith((".Transformer", ".Normalize")):
                return None  # a module whose effect on the dimension is unknown
        return dim
    except (OSError, ValueError, KeyError, TypeError):
        return None


#: embedder kinds that load without transformers
_TORCH_FREE = frozenset({"onnx", "onnx-int8", "openvino", "hash"})


def _quiet_load(spec: str) -> Embedder:
    """load_embedder(spec) without transformers' "Loading weights" progress bar (only torch
    embedders import transformers: importing it for the ONNX one costs seconds)."""
    if spec.split(":", 1)[0] not in _TORCH_FREE:
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:
            pass
    from memkit.embed import load_embedder

    return load_embedder(spec)
