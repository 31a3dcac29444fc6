"""Parametric consolidation: fold memory items into LoRA adapters without forgetting.

Needs the ``[train]`` extra (peft, transformers). See ALGORITHMS.md §5.

    from memkit.consolidate import Consolidator
    cons = Consolidator(memory_dir, base_model="path/to/model", method="replay")
    manifest = cons.consolidate(items)     # items: objects with id, text, created_at, metadata
    model = cons.load_latest(base_model)   # base model + newest adapter
"""

from memkit._deps import require

require("torch", "train", "consolidation")  # before the modules that import torch

from memkit.consolidate.consolidator import ConsolidationManifest, Consolidator
from memkit.consolidate.examples import ItemLike, TrainExample, items_to_examples
from memkit.consolidate.methods import (
    EWC,
    HFT,
    METHODS,
    GeRe,
    ILoRA,
    Method,
    Replay,
    RewarmReplay,
    make_method,
)
from memkit.consolidate.model import LoraSettings, TinyLMConfig, build_tiny_lm, load_base
from memkit.consolidate.trainer import TrainConfig

__all__ = [
    "EWC",
    "HFT",
    "METHODS",
    "ConsolidationManifest",
    "Consolidator",
    "GeRe",
    "ILoRA",
    "ItemLike",
    "LoraSettings",
    "Method",
    "Replay",
    "RewarmReplay",
    "TinyLMConfig",
    "TrainConfig",
    "TrainExample",
    "build_tiny_lm",
    "items_to_examples",
    "load_base",
    "make_method",
]
