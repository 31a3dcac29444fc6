"""Build an ONNX sentence encoder from a local BERT sentence-transformers model, without torch.

The graph is written op by op from the ``model.safetensors`` weights and ``config.json``
(a standard post-LayerNorm BERT encoder: embeddings + LayerNorm, then per layer self-attention,
residual + LayerNorm, GELU feed-forward, residual + LayerNorm), followed by what the
sentence-transformers modules do: mean pooling over the attention mask (``1_Pooling``) and L2
normalisation (``Normalize``). Inputs ``input_ids`` and ``attention_mask`` (int64, batch x
sequence), output ``sentence_embedding`` (float32, batch x hidden).

Two simplifications, both exact: token type 0 (a single sentence) is folded into the position
table, and the attention scale 1/sqrt(head size) into the query weights.

Building needs the ``onnx`` package; it happens once per model and variant, then the file is
reused from the cache (see :func:`ensure_onnx_model`). Running the file needs only onnxruntime
(or, for fp32, OpenVINO: :mod:`memkit.embed.openvino_runtime`).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from memkit._deps import require
from memkit.embed.onnx_int8 import TokenInt8
from memkit.embed.packaged import cache_root
from memkit.errors import ConfigError

#: bump when the graph written here changes, so cached files are rebuilt
BUILD_VERSION = 3
VARIANTS = ("fp32", "int8")
#: what a variant adds to the embedder's name and the cached file's: ``int8t7`` is the int8
#: recipe of :mod:`memkit.embed.onnx_int8` (per-token activations, 7-bit weights); earlier
#: recipes' vectors carry other names (``int8r7``), so a memory never mixes them (its vectors
#: are re-embedded instead)
VARIANT_TAGS = {"fp32": "", "int8": "-int8t7"}
_OPSET = 17
_LOCK = threading.Lock()
_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ``.safetensors`` file into numpy arrays (8-byte header length, JSON, raw data)."""
    data = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start:base + end]
        if info["dtype"] == "BF16":  # widen bfloat16 to float32 (the high half of the bits)
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif info["dtype"] in _DTYPES:
            arr = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]])
        else:
            raise ConfigError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        out[name] = arr.reshape(info["shape"])
    return out


def _check_model_dir(model_dir: Path) -> dict[str, Any]:
    """The BERT config of a sentence-transformers directory, after checking it fits the graph."""
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (model_dir / name).exists():
            raise ConfigError(f"{model_dir} has no {name}: the ONNX embedder needs a local "
                              f"BERT sentence-transformers model with safetensors weights")
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "bert":
        raise ConfigError(f"{model_dir}/config.json: model_type {config.get('model_type')!r} "
                          f"is not supported by the ONNX builder (only 'bert')")
    if config.get("hidden_act", "gelu") != "gelu":
        raise ConfigError(f"{model_dir}/config.json: hidden_act {config['hidden_act']!r} "
                          f"is not supported (only 'gelu')")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError(f"{model_dir}/config.json: position_embedding_type must be 'absolute'")
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.exists():
        modes = {k: v for k, v in json.loads(pooling.read_text()).items()
                 if k.startswith("pooling_mode") and v}
        if set(modes) != {"pooling_mode_mean_tokens"}:
            raise ConfigError(f"{pooling}: pooling {sorted(modes)} is not supported by the ONNX "
                              f"builder (only pooling_mode_mean_tokens)")
    return config


class _Graph:
    """A tiny helper that names nodes and initializers as they are added."""

    def __init__(self, helper: Any, numpy_helper: Any) -> None:
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.count = 0
        self.names: set[str] = set()

    def const(self, name: str, value: np.ndarray) -> str:
        """An initializer; a name already added is reused as it is."""
        if name not in self.names:
            self.names.add(name)
            self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, domain: str = "", **attrs: Any) -> str:
        self.count += 1
        out = f"{op_type.lower()}_{self.count}"
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], domain=domain,
                                                name=f"{op_type}_{self.count}", **attrs))
        return out


def _bert_graph(weights: dict[str, np.ndarray], config: dict[str, Any], fused: bool,
                int8: bool = False) -> Any:
    onnx = require("onnx", "onnx", "building the ONNX embedder")
    from onnx import TensorProto, helper, numpy_helper

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    f32 = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()
           if not k.endswith("position_ids")}
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in f32 else ""

    def w(name: str) -> np.ndarray:
        try:
            return f32[prefix + name]
        except KeyError:
            raise ConfigError(f"model.safetensors has no tensor {prefix + name}") from None

    g = _Graph(helper, numpy_helper)
    f = np.float32

    def layer_norm(x: str, name: str) -> str:
        return g.op("LayerNormalization", x, g.const(f"{name}.weight", w(f"{name}.weight")),
                    g.const(f"{name}.bias", w(f"{name}.bias")), axis=-1, epsilon=eps)

    def linear(x: str, name: str, scale: float = 1.0) -> str:
        weight = g.const(f"{name}.weight", w(f"{name}.weight").T * f(scale))
        return g.op("Add", g.op("MatMul", x, weight),
                    g.const(f"{name}.bias", w(f"{name}.bias") * f(scale)))

    types = w("embeddings.token_type_embeddings.weight")
    positions = w("embeddings.position_embeddings.weight") + types[0]
    seq = g.op("Slice", g.op("Shape", "input_ids"), g.const("one", np.array([1], np.int64)),
               g.const("two", np.array([2], np.int64)))
    zero = g.const("zero", np.array([0], np.int64))
    pos = g.op("Slice", g.const("position_table", positions), zero, seq, zero)
    words = g.op("Gather", g.const("word_table", w("embeddings.word_embeddings.weight")),
                 "input_ids")
    x = layer_norm(g.op("Add", words, pos), "embeddings.LayerNorm")
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)

    if fused:
        # onnxruntime's contrib ops: one QKV projection + attention, LayerNorm(x + skip + b),
        # Gelu(x + b). onnxruntime does not fuse the plain graph's attention by itself.
        mask_i32 = g.op("Cast", "attention_mask", to=TensorProto.INT32)
        ms = "com.microsoft"
        tok = TokenInt8(g, g.op("Shape", "input_ids")) if int8 else None

        def matmul(x: str, name: str, features: int) -> str:
            weight = w(name).T
            if tok is None:
                return g.op("MatMul", x, g.const(name, weight))
            return tok.project(tok.quantize(x, features), name, weight)

        inner = int(config["intermediate_size"])
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}"
            qkv = [f"{p}.attention.self.{n}" for n in ("query", "key", "value")]
            qkv_bias = g.const(f"{p}.qkv.bias", np.concatenate([w(f"{n}.bias") for n in qkv]))
            if tok is None:
                attn = g.op("Attention", x,
                            g.const(f"{p}.qkv.weight",
                                    np.concatenate([w(f"{n}.weight").T for n in qkv], axis=1)),
                            qkv_bias, mask_i32, domain=ms, num_heads=heads)
            else:  # one quantised input, three projections (Attention projects in float)
                shared = tok.quantize(x, hidden)
                q, k, v = (tok.project(shared, f"{n}.weight", w(f"{n}.weight").T) for n in qkv)
                attn = g.op("MultiHeadAttention", q, k, v, qkv_bias, mask_i32, domain=ms,
                            num_heads=heads)
            x = _skip_ln(g, w, ms, eps, matmul(attn, f"{p}.attention.output.dense.weight",
                                               hidden), x, f"{p}.attention.output")
            inter = g.op("BiasGelu", matmul(x, f"{p}.intermediate.dense.weight", hidden),
                         g.const(f"{p}.intermediate.dense.bias",
                                 w(f"{p}.intermediate.dense.bias")), domain=ms)
            x = _skip_ln(g, w, ms, eps, matmul(inter, f"{p}.output.dense.weight", inner), x,
                         f"{p}.output")
    else:
        bias = g.op("Mul", g.op("Sub", g.const("f_one", np.array(1.0, f)), mask),
                    g.const("neg_big", np.array(-1e4, f)))
        bias = g.op("Unsqueeze", bias, g.const("axes_1_2", np.array([1, 2], np.int64)))
        split = g.const("split_heads", np.array([0, 0, heads, head], np.int64))
        merge = g.const("merge_heads", np.array([0, 0, hidden], np.int64))
        sqrt2 = g.const("sqrt2", np.array(np.sqrt(2.0), f))
        half = g.const("half", np.array(0.5, f))
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}"

            def heads_of(x: str, name: str, perm: list[int], scale: float = 1.0) -> str:
                return g.op("Transpose", g.op("Reshape", linear(x, name, scale), split),
                            perm=perm)

            q = heads_of(x, f"{p}.attention.self.query", [0, 2, 1, 3],
                         1.0 / float(np.sqrt(head)))
            k = heads_of(x, f"{p}.attention.self.key", [0, 2, 3, 1])
            v = heads_of(x, f"{p}.attention.self.value", [0, 2, 1, 3])
            probs = g.op("Softmax", g.op("Add", g.op("MatMul", q, k), bias), axis=-1)
            ctx = g.op("Reshape", g.op("Transpose", g.op("MatMul", probs, v),
                                       perm=[0, 2, 1, 3]), merge)
            x = layer_norm(g.op("Add", linear(ctx, f"{p}.attention.output.dense"), x),
                           f"{p}.attention.output.LayerNorm")
            h = linear(x, f"{p}.intermediate.dense")
            gelu = g.op("Mul", g.op("Mul", h, g.op("Add", g.op("Erf", g.op("Div", h, sqrt2)),
                                                   "f_one")), half)
            x = layer_norm(g.op("Add", linear(gelu, f"{p}.output.dense"), x),
                           f"{p}.output.LayerNorm")

    mask3 = g.op("Unsqueeze", mask, g.const("axis_2", np.array([2], np.int64)))
    axis1 = g.const("axis_1", np.array([1], np.int64))
    summed = g.op("ReduceSum", g.op("Mul", x, mask3), axis1, keepdims=0)
    counts = g.op("Max", g.op("ReduceSum", mask3, axis1, keepdims=0),
                  g.const("tiny_count", np.array(1e-9, f)))
    mean = g.op("Div", summed, counts)
    norm = g.op("Max", g.op("ReduceL2", mean, axes=[1], keepdims=1),
                g.const("tiny_norm", np.array(1e-12, f)))
    g.nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"], name="Normalize"))

    graph = helper.make_graph(
        g.nodes, "sentence_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64,
                                       ["batch", "sequence"])],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT,
                                       ["batch", hidden])],
        initializer=g.inits)
    opsets = [helper.make_opsetid("", _OPSET)]
    if fused:
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="memkit")
    model.ir_version = 8
    if not fused:  # the checker does not know onnxruntime's contrib ops
        onnx.checker.check_model(model)
    return model


def _skip_ln(g: _Graph, w: Callable[[str], np.ndarray], domain: str, eps: float,
             projected: str, skip: str, name: str) -> str:
    """LayerNorm(x @ W + b + skip) from ``projected`` = x @ W: a fused residual LayerNorm."""
    return g.op("SkipLayerNormalization", projected, skip,
                g.const(f"{name}.LayerNorm.weight", w(f"{name}.LayerNorm.weight")),
                g.const(f"{name}.LayerNorm.bias", w(f"{name}.LayerNorm.bias")),
                g.const(f"{name}.dense.bias", w(f"{name}.dense.bias")),
                domain=domain, epsilon=eps)


def build_onnx(model_dir: str | Path, out_path: str | Path, *, fused: bool = True,
               int8: bool = False) -> Path:
    """Write the ONNX encoder of ``model_dir`` to ``out_path``: fp32, or with ``int8`` every
    weight product in int8 with per-token activation scales (:mod:`memkit.embed.onnx_int8`).

    ``fused``: use onnxruntime's contrib ops (Attention, SkipLayerNormalization, BiasGelu);
    otherwise only standard ONNX ops (opset 17), runnable by any ONNX runtime. ``int8``
    needs ``fused``."""
    if int8 and not fused:
        raise ConfigError("the per-token int8 graph needs onnxruntime's contrib ops (fused)")
    model_dir = Path(model_dir)
    config = _check_model_dir(model_dir)
    model = _bert_graph(read_safetensors(model_dir / "model.safetensors"), config, fused,
                        int8)
    onnx = require("onnx", "onnx", "building the ONNX embedder")
    onnx.save_model(model, str(out_path))
    return Path(out_path)


def model_key(model_dir: Path) -> str:
    """What identifies a model's weights in the cache: path, size and mtime of the weights."""
    weights = model_dir / "model.safetensors"
    st = weights.stat()
    raw = f"{model_dir.resolve()}|{st.st_size}|{st.st_mtime_ns}|v{BUILD_VERSION}"
    return f"{model_dir.name}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def ensure_onnx_model(model_dir: str | Path, variant: str = "fp32",
                      cache_dir: str | Path | None = None, *,
                      fused: bool = True) -> tuple[Path, bool]:
    """The cached ONNX file of ``model_dir`` in ``variant``, building it the first time.

    ``fused``: the graph with onnxruntime's contrib ops (see :func:`build_onnx`).
    Returns ``(path, built)``: ``built`` is False when the file was already in the cache.
    Files are written to a temporary name and renamed into place, so a crash or a
    concurrent builder never leaves a half-written model.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"ONNX variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "int8" and not fused:
        raise ConfigError("the int8 file uses onnxruntime's contrib ops: there is no int8 "
                          "variant of the plain graph (fused=False)")
    model_dir = Path(model_dir)
    folder = cache_root(cache_dir) / "onnx" / model_key(model_dir)
    graph = "" if fused else "-plain"
    target = folder / f"model-{VARIANT_TAGS[variant].lstrip('-') or variant}{graph}.onnx"
    with _LOCK:
        if target.exists():
            return target, False
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, lambda tmp: build_onnx(model_dir, tmp, fused=fused,
                                                         int8=variant == "int8"))
    return target, True


def _write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".onnx",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp makes it private; the cache is an ordinary file
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
