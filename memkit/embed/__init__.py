"""Embedders: the protocol, the packaged MiniLM default and a deterministic test embedder."""

from __future__ import annotations

from memkit.embed.base import Embedder, normalise
from memkit.embed.hashing import HashEmbedder
from memkit.errors import ConfigError

__all__ = ["Embedder", "HashEmbedder", "SentenceTransformerEmbedder", "load_embedder",
           "normalise"]


def __getattr__(name: str) -> object:
    if name == "SentenceTransformerEmbedder":
        from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder
    raise AttributeError(name)


def load_embedder(spec: str | Embedder | None = None) -> Embedder:
    """``None``/``"minilm"``: packaged MiniLM; ``"hash"`` or ``"hash:DIM"``: HashEmbedder;
    ``"st:/path"`` or an existing directory: a local sentence-transformers model."""
    if isinstance(spec, Embedder):
        return spec
    if spec is None or spec in ("minilm", "default", "all-MiniLM-L6-v2"):
        from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder()
    if spec == "hash" or spec.startswith("hash:"):
        dim = int(spec.split(":", 1)[1]) if ":" in spec else 256
        return HashEmbedder(dim=dim)
    path = spec[3:] if spec.startswith("st:") else spec
    from pathlib import Path

    if Path(path).expanduser().exists():
        from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(path)
    raise ConfigError(
        f"unknown embedder {spec!r}: use 'minilm' (default), 'hash[:DIM]', or 'st:/local/model/dir'"
    )
