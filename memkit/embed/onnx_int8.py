"""Int8 matrix products with one activation scale per token, for the ONNX encoder.

onnxruntime's dynamic quantisation (``quantize_dynamic``) gives a whole activation tensor one
scale and zero point. A batch of 2,048 tokens then shares one range, and the few tokens with
large activations (BERT's [CLS]/[SEP] and outlier channels) leave little precision to all the
others. Quantising every weight product that way costs too much: passage cosine min 0.9835
against the fp32 model on 400 MuSiQue passages (see benchmarks/results/ingest_speed.md, run
5), below the issue's 0.99 gate.

Here each token (row of the ``tokens x features`` activation) gets its own asymmetric uint8
range, computed on the fly, and each weight column its own symmetric 7-bit scale:

    x[i, k] ~ s[i] * (q[i, k] - z[i])          q in [0, 255], z[i] = round(-min_i / s[i])
    W[k, j] ~ t[j] * V[k, j]                   V in [-63, 63], t[j] = max_k |W[k, j]| / 63

    (x @ W)[i, j] ~ s[i] * t[j] * sum_k q[i, k] V[k, j]  -  s[i] z[i] * t[j] sum_k V[k, j]

The integer sum runs in onnxruntime's ``MatMulIntegerToFloat`` (u8 x s8, which is VNNI's
native product), the second term is an outer product with the weights' precomputed column
sums. **7-bit weights** keep the result the same on CPUs without VNNI, where u8 x s8 pairs are
added in a saturating int16 (2 x 255 x 63 fits, 2 x 255 x 127 does not).

Every weight product is quantised, the attention's included (so the fused ``Attention`` op,
which projects its own input, gives way to three projections of one quantised input and
``MultiHeadAttention``); the products of two activations inside attention stay in float.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: largest weight level: 7-bit signed weights
WEIGHT_LEVELS = 63
_TINY = 1e-12


def quantize_weight(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``weight`` (in x out) as int8 levels in [-63, 63] and one float scale per output column.

    >>> q, t = quantize_weight(np.array([[0.5, -0.5], [-2.0, 0.2]], np.float32))
    >>> q.tolist(), [round(float(x), 5) for x in t]      # 0.5 * 63 / 2 = 15.75; 0.2 * 63 / 0.5
    ([[16, -63], [-63, 25]], [0.03175, 0.00794])
    """
    w = np.asarray(weight, dtype=np.float32)
    scale = np.maximum(np.abs(w).max(axis=0), _TINY) / WEIGHT_LEVELS
    levels = np.clip(np.rint(w / scale), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)
    return levels, scale.astype(np.float32)


class TokenInt8:
    """Adds per-token int8 projections to a graph under construction (:class:`_Graph`).

    ``batch_seq``: the graph tensor holding ``[batch, sequence]`` (int64), used to give the
    flat ``tokens x out`` products their 3-D shape back.
    """

    def __init__(self, g: Any, batch_seq: str) -> None:
        self.g = g
        self.batch_seq = batch_seq
        f = np.float32
        self.zero = g.const("q8_zero", np.array(0.0, f))
        self.inv255 = g.const("q8_inv255", np.array(1.0 / 255.0, f))
        self.tiny = g.const("q8_tiny", np.array(_TINY, f))
        self.one = g.const("q8_one", np.array(1.0, f))
        self.col = g.const("q8_axis1", np.array([1], np.int64))
        self._shapes: dict[int, str] = {}

    def quantize(self, x: str, features: int) -> tuple[str, str, str]:
        """``x`` (batch x sequence x features) as per-token uint8: ``(levels, scale, scale*zero)``
        with levels ``tokens x features`` and the two per-token factors as ``tokens x 1``
        columns (computed once, whatever number of projections share them)."""
        g = self.g
        flat = g.op("Reshape", x, g.const(f"q8_flat_{features}",
                                          np.array([-1, features], np.int64)))
        hi = g.op("Max", g.op("ReduceMax", flat, axes=[1], keepdims=0), self.zero)
        lo = g.op("Min", g.op("ReduceMin", flat, axes=[1], keepdims=0), self.zero)
        scale = g.op("Max", g.op("Mul", g.op("Sub", hi, lo), self.inv255), self.tiny)
        zero_point = g.op("Round", g.op("Neg", g.op("Div", lo, scale)))
        levels = g.op("QuantizeLinear", flat, scale,
                      g.op("Cast", zero_point, to=2),  # TensorProto.UINT8
                      axis=0)
        return (levels, g.op("Unsqueeze", scale, self.col),
                g.op("Unsqueeze", g.op("Mul", scale, zero_point), self.col))

    def project(self, quantized: tuple[str, str, str], name: str, weight: np.ndarray) -> str:
        """``x @ weight`` (no bias) from :meth:`quantize`'s output, shaped batch x seq x out."""
        g = self.g
        levels, scale, shift = quantized
        wq, wscale = quantize_weight(weight)
        colsum = (wq.astype(np.float32).sum(axis=0) * wscale).astype(np.float32)
        out = int(weight.shape[1])
        product = g.op("MatMulIntegerToFloat", levels, g.const(f"{name}.q8", wq), self.one,
                       g.const(f"{name}.q8_scale", wscale), domain="com.microsoft")
        correction = g.op("Mul", shift, g.const(f"{name}.q8_colsum", colsum))
        flat = g.op("Sub", g.op("Mul", product, scale), correction)
        return g.op("Reshape", flat, self._shape(out))

    def _shape(self, out: int) -> str:
        """The tensor ``[batch, sequence, out]``, one per width in the graph."""
        if out not in self._shapes:
            self._shapes[out] = self.g.op("Concat", self.batch_seq, self.g.const(
                f"q8_out_{out}", np.array([out], np.int64)), axis=0)
        return self._shapes[out]
