"""OpenVINO as the runtime of the ONNX embedder's fp32 file (extra ``[openvino]``).

OpenVINO's CPU plugin reads the same ONNX file onnxruntime runs (onnxruntime's contrib ops
included) and compiles it for the machine. On a CPU with bfloat16 dot products (AVX512_BF16 or
AMX: Zen 4, Sapphire Rapids and later) it runs the matrix products in bfloat16 with float32
accumulation by default; elsewhere in float32. Measured on MuSiQue passages (2-core Zen 4,
``benchmarks/ingest_speed.py``): 1.6-2.2x onnxruntime's fp32 speed, passage cosine >= 0.9999
against the torch model, so the vectors are the fp32 embedder's (same name; a memory built on
one runtime is read with the other).

:class:`OpenVinoSession` answers the two calls the embedder makes of an onnxruntime session
(``run`` and ``get_outputs``), so the tokenising and batching code is the same for both.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from memkit._deps import require
from memkit.errors import ConfigError

PRECISIONS = ("auto", "f32", "bf16")


def openvino_installed() -> bool:
    """Whether the ``openvino`` package can be imported (without importing it)."""
    return importlib.util.find_spec("openvino") is not None


class _Output:
    def __init__(self, shape: list[Any]) -> None:
        self.shape = shape


class OpenVinoSession:
    """An ONNX file compiled by OpenVINO for the CPU, called like an onnxruntime session.

    ``precision``: ``"auto"`` (OpenVINO's choice: bfloat16 where the CPU has it), ``"f32"`` or
    ``"bf16"``. ``cache_dir``: where OpenVINO keeps the compiled model (keyed by the file,
    the settings and the CPU), so later processes start faster. Not thread-safe by itself:
    the embedder runs one batch at a time under its lock, on one infer request whose threads
    are ``threads``.
    """

    def __init__(self, path: str | Path, threads: int, precision: str = "auto",
                 cache_dir: str | Path | None = None) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"OpenVINO precision must be one of {PRECISIONS}, got "
                              f"{precision!r}")
        ov = require("openvino", "openvino", "the OpenVINO runtime of the ONNX embedder")
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": int(threads),
                                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = precision
        try:  # with a cache folder, a later process loads the compiled blob: 0.1 s, not 0.3
            self.compiled = core.compile_model(str(path), "CPU", {
                **config, **({"CACHE_DIR": str(cache_dir)} if cache_dir else {})})
        except RuntimeError:  # an unreadable cache entry: compile without the cache
            if not cache_dir:
                raise
            self.compiled = core.compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        #: the precision the matrix products run in ("bf16" or "f32")
        kind = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = kind.to_string() if hasattr(kind, "to_string") else str(kind)
        out = self.compiled.outputs[0]
        self._name = out.get_any_name()
        self._outputs = [_Output([None, int(out.get_partial_shape()[1].get_length())])]

    def get_outputs(self) -> list[_Output]:
        return self._outputs

    def run(self, names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self.request.infer(feeds)
        return [np.array(result[self._name], dtype=np.float32, copy=True)]
