"""Per-token int8 projections (memkit.embed.onnx_int8): the graph computes the quantised
product that the formulas in the module's docstring give, computed here in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from memkit.embed.onnx_int8 import WEIGHT_LEVELS, TokenInt8, quantize_weight
from tests.embed.conftest import needs_onnx

pytestmark = needs_onnx


def reference(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The quantised product, written out: per-token uint8 (asymmetric), 7-bit weight columns."""
    rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
    lo, hi = np.minimum(rows.min(axis=1), 0), np.maximum(rows.max(axis=1), 0)
    s = np.maximum((hi - lo) / 255, 1e-12)
    z = np.rint(-lo / s)
    q = np.clip(np.rint(rows / s[:, None]) + z[:, None], 0, 255)
    v, t = quantize_weight(w)
    out = s[:, None] * ((q - z[:, None]) @ v.astype(np.float64)) * t[None, :]
    return out.reshape(*x.shape[:-1], w.shape[1])


def run_projection(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from memkit.embed.onnx_build import _Graph

    g = _Graph(helper, numpy_helper)
    tok = TokenInt8(g, g.op("Slice", g.op("Shape", "x"), g.const("s0", np.array([0])),
                            g.const("s2", np.array([2]))))
    out = tok.project(tok.quantize("x", x.shape[-1]), "w", w)
    g.nodes.append(helper.make_node("Identity", [out], ["y"]))
    graph = helper.make_graph(
        g.nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None,
                                                                               x.shape[-1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    del onnx
    return session.run(None, {"x": x.astype(np.float32)})[0]


def test_weight_levels_and_scales() -> None:
    w = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)
    v, t = quantize_weight(w)
    assert v.dtype == np.int8 and np.abs(v).max() == WEIGHT_LEVELS == 63
    assert (np.abs(v).max(axis=0) == 63).all()  # every column uses its full range
    assert np.abs(v * t - w).max() <= t.max() / 2 + 1e-7


def test_graph_computes_the_reference_product() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 8)).astype(np.float32)
    x[0, 1] += 2.5  # a token all positive: its zero point is 0
    x[1, 2] = 0.0  # an all-zero token: no division by zero, a zero row out
    w = rng.normal(size=(8, 5)).astype(np.float32)
    got = run_projection(x, w)
    assert got.shape == (2, 3, 5)
    np.testing.assert_allclose(got, reference(x, w), rtol=1e-4, atol=1e-5)
    assert np.abs(got[1, 2]).max() == 0.0
    # and it is close to the float product: each token's error follows its own range
    err = np.abs(got - x @ w).max(axis=-1)
    bound = (np.ptp(x, axis=-1) / 255 * np.abs(w).sum(axis=0).max()
             + np.abs(x).sum(axis=-1) * (np.abs(w).max() / 63) / 2)
    assert (err <= bound + 1e-5).all()


def test_one_large_token_does_not_cost_the_others_precision() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 6, 32)).astype(np.float32)
    w = rng.normal(size=(32, 8)).astype(np.float32)
    before = run_projection(x, w)[0, 1:]
    x[0, 0] *= 1000.0  # one token with huge activations
    after = run_projection(x, w)[0, 1:]
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)  # the others: unchanged
