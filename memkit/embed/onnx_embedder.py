"""A sentence-transformers model run through onnxruntime: no torch at run time.

The default is the packaged all-MiniLM-L6-v2. Its ONNX file is built once from the packaged
weights into memkit's cache (see :mod:`memkit.embed.onnx_build`); later constructions reuse it.
Texts are tokenised with the model's own ``tokenizer.json`` (``tokenizers``), truncated to
``max_seq_length`` tokens like sentence-transformers does, and mean-pooled + L2-normalised
inside the graph, so the vectors match the torch model's (cosine >= 0.9999 for fp32).

Speed comes from four things:

- **length-sorted batches**: the texts of a call are sorted by token count and cut into
  batches of at most ``batch_tokens`` padded tokens, so a short phrase is never padded to the
  length of the longest passage, and short texts go through in big batches. The budget is
  small (2,048 tokens) so a batch's activations stay in the CPU's caches: on MuSiQue passages
  (2-core EPYC, 2 MiB L2 per core) 2,048-token batches ran 1.27x faster than 8,192 in fp32
  and 1.22x in int8 (1,024: the same within noise; 512: slower);
- **one session, one lock**: every call runs on one ``InferenceSession`` whose intra-op pool
  has one thread per physical core; a lock lets one batch at a time use them, so callers on
  several threads queue instead of oversubscribing the cores. Embedders of the same file in
  one process (several open memories) share that session and lock;
- **OpenVINO** where it is installed (extra ``[openvino]``; ``runtime=``): the same fp32 file
  with bfloat16 matrix products on CPUs that have them, 1.6-2.2x onnxruntime's speed here at
  passage cosine >= 0.9999 (:mod:`memkit.embed.openvino_runtime`);
- optionally **int8** (``variant="int8"``): every weight product in int8, with one
  activation scale per token and 7-bit weights (the same vectors on CPUs with and without
  VNNI); ~1.4x fp32 on onnxruntime, at a measured cost in cosine (min 0.994 on MuSiQue
  passages): see :mod:`memkit.embed.onnx_int8`).

>>> e = OnnxEmbedder()                                                # doctest: +SKIP
>>> e.embed(["Alice lives in Paris", "Bob lives in Rome"]).shape      # doctest: +SKIP
(2, 384)
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from memkit._deps import require
from memkit.embed.base import Embedder, normalise
from memkit.embed.onnx_build import VARIANT_TAGS, VARIANTS, ensure_onnx_model
from memkit.embed.openvino_runtime import OpenVinoSession, openvino_installed
from memkit.embed.packaged import DEFAULT_MODEL, packaged_minilm_path
from memkit.errors import ConfigError, InvalidInput

_LEVELS = ("disable", "basic", "extended", "all")
#: texts longer than this many characters per allowed token are cut (at a space) before
#: tokenising; the cut is checked to still overflow the token limit, so results are unchanged
_CHARS_PER_TOKEN = 16
#: the WordPiece limit past which a word is one [UNK] token (max_input_chars_per_word)
_LONG_WORD = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
_BOUNDARY = re.compile(r"[\s!-/:-@\[-`{-~]")


def physical_cores() -> int:
    """Physical cores available to this process (logical CPUs when that cannot be told)."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or logical
        ratio = max(1, (psutil.cpu_count(logical=True) or logical) // physical)
        return max(1, logical // ratio)
    except ImportError:
        return max(1, logical)


RUNTIMES = ("auto", "onnxruntime", "openvino")
#: one session (and one lock) per (file, threads, runtime, optimisation) in the process, so
#: embedders opened by several memories share the cores instead of each claiming all of them
_SESSIONS: dict[tuple[str, int, str, str], tuple[Any, threading.Lock]] = {}
_SESSIONS_LOCK = threading.Lock()


def _shared_session(ort: Any, path: Path, threads: int, optimization: str,
                    runtime: str = "onnxruntime") -> tuple[Any, threading.Lock]:
    on_ort = runtime == "onnxruntime"  # OpenVINO has no optimisation level of ours
    key = (str(path), threads, runtime, optimization if on_ort else "")
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            session = _ort_session(ort, path, threads, optimization) if on_ort else \
                OpenVinoSession(path, threads, cache_dir=path.parent / "openvino-cache")
            _SESSIONS[key] = (session, threading.Lock())
        return _SESSIONS[key]


def _ort_session(ort: Any, path: Path, threads: int, optimization: str) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[optimization]
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _resolve_runtime(runtime: str, variant: str) -> str:
    """The runtime ``runtime`` names for ``variant`` (see :class:`OnnxEmbedder`)."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime == "auto":
        env = os.environ.get("MEMKIT_ONNX_RUNTIME", "").strip() or "auto"
        if env not in RUNTIMES:
            raise ConfigError(f"MEMKIT_ONNX_RUNTIME must be one of {RUNTIMES}, got {env!r}")
        if variant != "fp32":  # a preference: the int8 files run on onnxruntime only
            return "onnxruntime"
        return env if env != "auto" else (
            "openvino" if openvino_installed() else "onnxruntime")
    if runtime == "openvino" and variant != "fp32":
        raise ConfigError(f"the {variant} file runs on onnxruntime only (its integer products "
                          f"are onnxruntime operators); OpenVINO runs the fp32 file")
    return runtime


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


class OnnxEmbedder(Embedder):
    """A local BERT sentence-transformers model on onnxruntime; default: packaged MiniLM-L6-v2.

    ``variant``: ``"fp32"`` (same vectors as torch) or ``"int8"`` (int8 weight products with
    per-token activation scales; needs ``fused``). ``optimization``: onnxruntime's graph
    optimisation level (``"disable"``, ``"basic"``, ``"extended"``, ``"all"``). ``threads``:
    intra-op threads (default: physical cores). ``batch_tokens``: the most padded tokens in
    one run; ``max_batch``: the most texts.
    ``fused``: the graph with onnxruntime's fused attention/LayerNorm/GELU ops (faster) or
    with standard ONNX ops only.
    ``max_seq_length``: tokens kept per text (default: the model's ``sentence_bert_config``,
    256 for MiniLM). ``cache_dir``: where the ONNX file is built (default ``$MEMKIT_CACHE``
    or the user cache).
    ``runtime``: what runs the file. ``"onnxruntime"``; ``"openvino"`` (extra ``[openvino]``,
    fp32 file only: bfloat16 products where the CPU has them, 1.6-2.2x faster here, see
    :mod:`memkit.embed.openvino_runtime`; ``optimization`` does not apply); ``"auto"`` (the
    default): ``$MEMKIT_ONNX_RUNTIME`` if set, else OpenVINO for fp32 when it is installed,
    else onnxruntime. The runtime is not part of the name: both give the fp32 vectors.
    """

    def __init__(self, model: str | Path | None = None, *, variant: str = "fp32",
                 max_seq_length: int | None = None, optimization: str = "all",
                 threads: int | None = None, batch_tokens: int = 2048, max_batch: int = 256,
                 query_instruction: str | None = None, fused: bool = True,
                 cache_dir: str | Path | None = None, runtime: str = "auto") -> None:
        ort = require("onnxruntime", "onnx", "OnnxEmbedder")
        tokenizers = require("tokenizers", "onnx", "OnnxEmbedder")
        if variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, got {variant!r}")
        runtime = _resolve_runtime(runtime, variant)
        if optimization not in _LEVELS:
            raise ConfigError(f"optimization must be one of {_LEVELS}, got {optimization!r}")
        if model is None or str(model) == DEFAULT_MODEL:
            path = packaged_minilm_path(cache_dir)
            base_name, base_spec = DEFAULT_MODEL, DEFAULT_MODEL
        else:
            path = Path(model).expanduser()
            if not path.is_dir():
                raise ConfigError(f"embedding model path {path} is not a directory (memkit "
                                  f"never downloads models; give a local model directory)")
            base_name, base_spec = path.name, str(path)
        config = _json(path / "config.json")
        limit = int(config.get("max_position_embeddings", 512))
        default_length = int(_json(path / "sentence_bert_config.json").get("max_seq_length")
                             or limit)
        max_seq_length = default_length if max_seq_length is None else max_seq_length
        if not 2 <= max_seq_length <= limit:
            raise ConfigError(f"max_seq_length must be in [2, {limit}] (the model's "
                              f"max_position_embeddings), got {max_seq_length}")
        if batch_tokens < max_seq_length or max_batch < 1:
            raise ConfigError(f"need batch_tokens >= max_seq_length and max_batch >= 1 (got "
                              f"{batch_tokens}, {max_batch})")
        self.model_path, self.exported = ensure_onnx_model(path, variant, cache_dir,
                                                            fused=fused)
        self.variant = variant
        self.max_seq_length = max_seq_length
        self.batch_tokens = batch_tokens
        self.max_batch = max_batch
        self.query_instruction = query_instruction
        self.threads = threads or physical_cores()

        self.tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_seq_length)
        self._pad_id = int(config.get("pad_token_id", 0))

        self.runtime = runtime
        self.session, self._lock = _shared_session(ort, self.model_path, self.threads,
                                                   optimization, runtime)
        self.dim = int(self.session.get_outputs()[0].shape[1])
        self.name = f"{base_name}-onnx{VARIANT_TAGS[variant]}@{max_seq_length}"
        kind = "onnx" if variant == "fp32" else f"onnx-{variant}"
        self.spec = f"{kind}:{base_spec}" if max_seq_length == default_length else None

    # -- tokenising ---------------------------------------------------------------------------

    def _clip(self, text: str) -> str:
        """A prefix of a very long text that tokenises to the same truncated ids.

        BERT pre-tokenisation splits at whitespace and punctuation, so a prefix cut just after
        such a character yields a prefix of the full text's tokens (a word longer than
        ``max_input_chars_per_word`` is one [UNK] cut or not); if that prefix still overflows
        the token limit, the truncated ids are the same as the full text's.
        """
        budget = self.max_seq_length * _CHARS_PER_TOKEN
        while len(text) > budget:
            boundaries = [m.end() for m in _BOUNDARY.finditer(text, budget - 2 * _LONG_WORD,
                                                               budget)]
            cut = boundaries[-1] if boundaries else 0
            if budget - cut > _LONG_WORD:  # inside a long word: cut after it ends
                after = _BOUNDARY.search(text, budget)
                if after is None:  # it runs to the end: one [UNK] however long
                    return text[:budget]
                cut = after.end()
            prefix = text[:cut]
            if len(self.tokenizer.encode(prefix).overflowing) > 0:
                return prefix
            budget *= 4
        return text

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        out = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInput(f"texts[{i}]: expected a string, got {type(text).__name__}")
            try:
                enc = self.tokenizer.encode(self._clip(text))
            except Exception:  # a lone surrogate: not UTF-8, so the tokenizer refuses it
                enc = self.tokenizer.encode(self._clip(_SURROGATE.sub("\ufffd", text)))
            out.append(enc.ids)
        return out

    def count_tokens(self, text: str) -> int:
        clean = _SURROGATE.sub("\ufffd", text)
        return len(self.tokenizer.encode(clean, add_special_tokens=False).ids)

    # -- running ------------------------------------------------------------------------------

    def _batches(self, lengths: Sequence[int]) -> list[np.ndarray]:
        """Index batches over texts sorted by length, each within the padded-token budget."""
        order = np.argsort(np.asarray(lengths), kind="stable")
        batches, start = [], 0
        while start < len(order):
            end = start + 1
            while end < len(order) and end - start < self.max_batch and \
                    (end - start + 1) * lengths[order[end]] <= self.batch_tokens:
                end += 1
            batches.append(order[start:end])
            start = end
        return batches

    def _run(self, ids: Sequence[list[int]]) -> np.ndarray:
        width = max(len(row) for row in ids)
        input_ids = np.full((len(ids), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, tokens in enumerate(ids):
            input_ids[row, :len(tokens)] = tokens
            mask[row, :len(tokens)] = 1
        with self._lock:  # one batch at a time uses the session's threads
            (vectors,) = self.session.run(["sentence_embedding"],
                                          {"input_ids": input_ids, "attention_mask": mask})
        return np.asarray(vectors, dtype=np.float32)

    def _embed_sorted(self, texts: Sequence[str], bar: Any = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        ids = self._token_ids(texts)
        for batch in self._batches([len(row) for row in ids]):
            out[batch] = self._run([ids[i] for i in batch])
            if bar is not None:
                bar.update(len(batch))
        return normalise(out)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._embed_sorted(texts)

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
              desc: str = "embedding") -> np.ndarray:
        """Embed any number of texts; ``batch_size`` is not used (batches are sized by
        ``batch_tokens`` over length-sorted texts); rows come back in input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        bar = tqdm(total=len(texts), desc=desc, disable=not progress, unit="text")
        try:
            chunk = 16384  # sort within large windows: bounded memory for the token ids
            return np.vstack([self._embed_sorted(texts[s:s + chunk], bar)
                              for s in range(0, len(texts), chunk)])
        finally:
            bar.close()

    def embed_queries(self, texts: Sequence[str], instruction: str | None = None) -> np.ndarray:
        prefix = instruction or self.query_instruction
        return self.embed([f"{prefix}{t}" for t in texts] if prefix else list(texts))
