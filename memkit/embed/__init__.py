"""Embedders: the protocol, the packaged MiniLM default and a deterministic test embedder."""

from __future__ import annotations

from memkit.embed.base import Embedder, normalise
from memkit.embed.hashing import HashEmbedder
from memkit.errors import ConfigError

__all__ = ["DEFAULT_EMBEDDER", "Embedder", "HashEmbedder", "OnnxEmbedder",
           "SentenceTransformerEmbedder", "load_embedder", "normalise"]

#: the embedder of a new memory: the packaged all-MiniLM-L6-v2 on onnxruntime (fp32). Its
#: vectors equal the torch model's (cosine >= 0.9999 on every MuSiQue-200 passage, the same
#: R@5), at about twice the speed and a fraction of the start-up (benchmarks/ingest_speed.py).
#: ``"minilm"`` still names the torch path; memories keep the embedder they were built with.
DEFAULT_EMBEDDER = "onnx"


def __getattr__(name: str) -> object:
    if name == "SentenceTransformerEmbedder":
        from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder
    if name == "OnnxEmbedder":
        from memkit.embed.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder
    raise AttributeError(name)


def load_embedder(spec: str | Embedder | None = None) -> Embedder:
    """``None``/``"default"``: :data:`DEFAULT_EMBEDDER`; ``"minilm"``: the packaged MiniLM on
    torch (sentence-transformers); ``"hash"`` or ``"hash:DIM"``: HashEmbedder;
    ``"st:/path"`` or an existing directory: a local sentence-transformers model (torch);
    ``"onnx[:MODEL]"`` / ``"onnx-int8[:MODEL]"``: the same model on onnxruntime, fp32 or int8
    (MODEL: ``all-MiniLM-L6-v2``, the default, or a local directory)."""
    if isinstance(spec, Embedder):
        return spec
    if spec is None or spec == "default":
        spec = DEFAULT_EMBEDDER
    if spec in ("minilm", "all-MiniLM-L6-v2"):
        from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder()
    if spec == "hash" or spec.startswith("hash:"):
        dim = int(spec.split(":", 1)[1]) if ":" in spec else 256
        return HashEmbedder(dim=dim)
    kind, _, model = spec.partition(":")
    if kind in ("onnx", "onnx-int8"):
        from memkit.embed.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(model or None, variant="int8" if kind == "onnx-int8" else "fp32")
    if spec == "st:all-MiniLM-L6-v2":
        from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder()
    path = spec[3:] if spec.startswith("st:") else spec
    from pathlib import Path

    if Path(path).expanduser().exists():
        from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(path)
    raise ConfigError(
        f"unknown embedder {spec!r}: use 'onnx' (default), 'minilm' (torch), 'hash[:DIM]', "
        f"'st:/local/model/dir' or 'onnx[-int8][:/local/model/dir]'"
    )
