"""``memkit consolidate``: fold memories into a LoRA adapter, or rebuild stale adapters.

    memkit consolidate --memory m --base-model ./tiny-lm --method replay --epochs 30
    memkit consolidate --memory m --base-model ./tiny-lm --retrain-stale

``--base-model`` is a local model directory or ``.gguf`` file (``gemma3-270m``: the packaged
Gemma-3-270M GGUF). With ``--retrain-stale`` the rounds trained on deleted or updated item
versions are retired and rebuilt from the record without them (nothing stale: nothing done).
"""

from __future__ import annotations

from typing import Any

import click

from memkit._cli import emit, json_option, memory_option, open_memory


@click.command("consolidate")
@memory_option
@click.option("--base-model", required=True, help="Local model dir or .gguf ('gemma3-270m').")
@click.option("--method", default=None, help="Method name (default: the stored rounds').")
@click.option("--retrain-stale", is_flag=True, help="Rebuild adapters that went stale.")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1),
              help="Epochs per round.")
@click.option("--lr", default=2e-4, show_default=True, type=click.FloatRange(min=0.0),
              help="LoRA learning rate.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Examples per optimiser step.")
@click.option("--max-len", default=128, show_default=True, type=click.IntRange(min=4),
              help="Tokens per example (truncated).")
@click.option("--lora-r", default=8, show_default=True, type=click.IntRange(min=1),
              help="LoRA rank (alpha = 2r).")
@click.option("--seed", default=0, show_default=True, type=int, help="LoRA init / order seed.")
@json_option
def consolidate_cmd(memory_dir: str, base_model: str, method: str | None, retrain_stale: bool,
                    epochs: int, lr: float, batch_size: int, max_len: int, lora_r: int,
                    seed: int, as_json: bool) -> None:
    """Fold new memories into a LoRA adapter (or --retrain-stale after deletes/updates)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from memkit.consolidate import LoraSettings, TrainConfig

    options: dict[str, Any] = {
        "lora": LoraSettings(r=lora_r, alpha=2 * lora_r),
        "train": TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, max_len=max_len),
        "seed": seed, "progress": False,
    }
    from memkit.llm.local_lm import resolve_model_spec

    path = str(resolve_model_spec(base_model))
    with open_memory(memory_dir) as mem:
        if retrain_stale:
            manifest = mem.retrain_stale(path, method, **options)
        else:
            manifest = mem.consolidate(path, method, **options)
        adapters = mem.stats()["adapters"]
    data = {"retrained": retrain_stale,
            "round": manifest.round if manifest is not None else None,
            "method": manifest.method if manifest is not None else None,
            "item_ids": manifest.item_ids if manifest is not None else [],
            "metrics": manifest.metrics if manifest is not None else {},
            "adapters": adapters}

    def text() -> None:
        if manifest is None:
            click.echo("nothing stale: no adapter retrained" if retrain_stale
                       else "nothing to consolidate")
            return
        verb = "retrained" if retrain_stale else "consolidated"
        click.echo(f"{verb} round {manifest.round} ({manifest.method}): "
                   f"{len(manifest.item_ids)} items, {manifest.n_items_covered} covered")
        if adapters and adapters["stale_rounds"]:
            click.echo(f"stale rounds: {adapters['stale_rounds']}")

    emit(data, as_json, text)
