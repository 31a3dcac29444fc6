"""A tiny random BERT sentence-transformers model, written from numpy (no torch, no hub).

It has the layout of the packaged MiniLM (config.json, model.safetensors, tokenizer.json,
modules.json, 1_Pooling) at a size that builds and runs in well under a second, so the ONNX
builder and embedder can be tested in the default run.
"""

from __future__ import annotations

import importlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


HAS_ONNX = all(_importable(m) for m in ("onnxruntime", "onnx", "tokenizers"))
#: for the test modules: ``pytestmark = needs_onnx``
needs_onnx = pytest.mark.skipif(
    not HAS_ONNX, reason="the [onnx] extra (onnxruntime, onnx, tokenizers) is not installed")

WORDS = ["alice", "bob", "lives", "in", "paris", "rome", "the", "cat", "sat", "on", "mat",
         "a", "dog", "river", "##s", "##ing", "run", "city", "north", "south", ".", ",", "!"]
HIDDEN, HEADS, LAYERS, INTER, POSITIONS = 32, 4, 2, 64, 64


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """The safetensors layout: u64 header length, JSON header, then the raw tensors."""
    header: dict[str, object] = {}
    offset, blobs = 0, []
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def bert_weights(vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def rand(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.2, size=shape).astype(np.float32)

    t = {"embeddings.word_embeddings.weight": rand(vocab, HIDDEN),
         "embeddings.position_embeddings.weight": rand(POSITIONS, HIDDEN),
         "embeddings.token_type_embeddings.weight": rand(2, HIDDEN),
         "embeddings.LayerNorm.weight": 1 + rand(HIDDEN),
         "embeddings.LayerNorm.bias": rand(HIDDEN)}
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for name in ("query", "key", "value"):
            t[f"{p}.attention.self.{name}.weight"] = rand(HIDDEN, HIDDEN)
            t[f"{p}.attention.self.{name}.bias"] = rand(HIDDEN)
        t[f"{p}.attention.output.dense.weight"] = rand(HIDDEN, HIDDEN)
        t[f"{p}.attention.output.dense.bias"] = rand(HIDDEN)
        t[f"{p}.attention.output.LayerNorm.weight"] = 1 + rand(HIDDEN)
        t[f"{p}.attention.output.LayerNorm.bias"] = rand(HIDDEN)
        t[f"{p}.intermediate.dense.weight"] = rand(INTER, HIDDEN)
        t[f"{p}.intermediate.dense.bias"] = rand(INTER)
        t[f"{p}.output.dense.weight"] = rand(HIDDEN, INTER)
        t[f"{p}.output.dense.bias"] = rand(HIDDEN)
        t[f"{p}.output.LayerNorm.weight"] = 1 + rand(HIDDEN)
        t[f"{p}.output.LayerNorm.bias"] = rand(HIDDEN)
    return t


def write_tokenizer(path: Path) -> int:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                             *WORDS])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.save(str(path))
    return len(vocab)


def make_tiny_model(directory: Path, seed: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(directory / "tokenizer.json")
    write_safetensors(directory / "model.safetensors", bert_weights(vocab, seed))
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": HIDDEN,
              "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
              "intermediate_size": INTER, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
              "max_position_embeddings": POSITIONS, "type_vocab_size": 2, "vocab_size": vocab,
              "pad_token_id": 0, "position_embedding_type": "absolute",
              "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizerFast", "do_lower_case": True,
         "model_max_length": POSITIONS, "unk_token": "[UNK]", "sep_token": "[SEP]",
         "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}))
    (directory / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"}]))
    (directory / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 32, "do_lower_case": False}))
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": False,
         "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
         "pooling_mode_mean_sqrt_len_tokens": False}))
    return directory


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-bert") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session: the tiny model's ONNX files are built once."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(autouse=True)
def _onnxruntime_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the graph against the torch model to 1e-5, which is onnxruntime's
    fp32: ``runtime="auto"`` would pick OpenVINO (bfloat16 products) where it is installed.
    OpenVINO has its own tests (test_openvino.py), which name the runtime."""
    monkeypatch.setenv("MEMKIT_ONNX_RUNTIME", "onnxruntime")
