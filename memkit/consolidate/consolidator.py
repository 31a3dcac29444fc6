"""Fold memory items into LoRA adapter weights, round by round, crash-safely.

Layout under ``directory / "consolidation"``::

    round-0001/                 one complete round, written to .tmp-<uuid>/ then renamed
      manifest.json             method, base model, items covered, metrics
      adapter/                  the PEFT adapter to answer with (load_latest attaches it)
      state/lora.safetensors    the trained LoRA weights (I-LoRA: the fast adapter)
      state/method.safetensors  method tensors (EWC Fisher + anchors, I-LoRA slow, GeRe bands)
      state/method.json         method data (replay buffer)
      state/covered_ids.json    every item id consolidated so far
    round-0002/ ...

The newest ``round-NNNN`` is the state; a crash before the rename leaves only a ``.tmp-*``
folder that the next run deletes, so the previous adapter stays intact.

Example (the call ``Memory.consolidate`` makes)::

    cons = Consolidator(memory_dir, base_model="path/to/model", method="replay")
    manifest = cons.consolidate(store_items)        # incremental: only items not yet covered
    model = cons.load_latest(base_model)            # base model + the latest adapter
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from memkit import lineage
from memkit.consolidate.examples import ItemLike, items_to_examples
from memkit.consolidate.methods import Method, make_method
from memkit.consolidate.model import (
    LoraSettings,
    attach_lora,
    load_adapter,
    load_base,
    lora_params,
    save_adapter,
    snapshot,
    swapped_weights,
)
from memkit.consolidate.tokenizer import TokenizerLike
from memkit.consolidate.trainer import TrainConfig, answer_matches, train_round
from memkit.errors import ConfigError, InvalidInput, NotFound, StoreCorrupt

BaseModelSpec = str | Path | Callable[[], tuple[Any, TokenizerLike]]
_ROUND = re.compile(r"^round-(\d{4,})$")
SUBDIR = "consolidation"


@dataclass
class ConsolidationManifest:
    """What one consolidation round did. ``path`` is the round folder (not serialised)."""

    round: int
    method: str
    method_options: dict[str, Any]
    base_model: str
    lora: dict[str, Any]
    train: dict[str, Any]
    seed: int
    created_at: float
    since: float | None
    until: float | None
    item_ids: list[int]
    n_items_covered: int
    n_examples: int
    stats: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    #: lineage: [item id, version, content hash] of every item this round trained on
    item_versions: list[list[Any]] = field(default_factory=list)
    path: Path | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("path")
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def read(cls, round_dir: Path) -> ConsolidationManifest:
        try:
            data = json.loads((round_dir / "manifest.json").read_text("utf-8"))
            return cls(**data, path=round_dir)
        except (OSError, ValueError, TypeError) as exc:
            raise StoreCorrupt(f"cannot read consolidation manifest in {round_dir}") from exc


@dataclass
class _Session:
    model: Any  # PeftModel
    tokenizer: TokenizerLike
    method: Method
    covered: set[int]
    round: int


class Consolidator:
    """Turns memory items into an adapter trained with a continual-learning ``method``.

    ``base_model`` is a local model path (directory or ``.gguf`` file) or a zero-argument
    factory returning ``(model, tokenizer)``; it must give the same weights every call.
    """

    def __init__(
        self,
        directory: str | Path,
        base_model: BaseModelSpec,
        method: str | Method = "replay",
        *,
        method_options: dict[str, Any] | None = None,
        lora: LoraSettings | None = None,
        train: TrainConfig | None = None,
        seed: int = 0,
        progress: bool = True,
        base_model_name: str | None = None,
        record: Any = None,
    ) -> None:
        self.directory = Path(directory)
        self.root = self.directory / SUBDIR
        self.record = record  # a memkit Store: lineage recorded there, stale adapters refused
        self.base_model = base_model
        self.method = make_method(method, **(method_options or {}))
        self._pristine_method = copy.deepcopy(self.method)
        self.lora = lora or LoraSettings()
        self.train = train or TrainConfig()
        self.seed = seed
        self.progress = progress
        if base_model_name is not None:
            self.base_model_name = base_model_name
        elif isinstance(base_model, str | Path):
            self.base_model_name = str(base_model)
        else:
            self.base_model_name = getattr(base_model, "__name__", type(base_model).__name__)
        self._session: _Session | None = None
        latest = self.latest_manifest()
        if latest is not None and latest.method != self.method.name:
            raise ConfigError(
                f"{self.root} holds {latest.method!r} rounds; cannot continue with "
                f"{self.method.name!r} (use another directory)"
            )

    # ------------------------------------------------------------ reading state
    def rounds(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir()
                 if p.is_dir() and (m := _ROUND.match(p.name))]
        return [p for _, p in sorted(found)]

    def history(self) -> list[ConsolidationManifest]:
        return [ConsolidationManifest.read(p) for p in self.rounds()]

    def latest_manifest(self) -> ConsolidationManifest | None:
        rounds = self.rounds()
        return ConsolidationManifest.read(rounds[-1]) if rounds else None

    def load_latest(self, model: Any, *, allow_stale: bool = False) -> Any:
        """Attach the newest adapter to ``model`` (a fresh base model) and return it.

        With a ``record``, an adapter trained on a since deleted or updated item version
        raises :class:`memkit.lineage.StaleAdapter` unless ``allow_stale``.
        """
        latest = self.latest_manifest()
        if latest is None or latest.path is None:
            raise NotFound(f"no consolidated adapter under {self.root}")
        if not allow_stale:
            self.check_fresh(latest.round)
        return load_adapter(model, latest.path / "adapter")

    def check_fresh(self, round_no: int | None = None) -> None:
        """Raise ``StaleAdapter`` if round ``round_no`` (default: the latest) is stale."""
        if self.record is None:
            return
        if round_no is None:
            latest = self.latest_manifest()
            if latest is None:
                return
            round_no = latest.round
        lineage.check_fresh(self.record, self.directory, round_no)

    # ------------------------------------------------------------ live session
    def _load_base(self) -> tuple[Any, TokenizerLike]:
        if isinstance(self.base_model, str | Path):
            return load_base(self.base_model)
        return self.base_model()

    def _session_or_restore(self) -> _Session:
        if self._session is not None:
            return self._session
        # never continue from a method whose state a failed round may have touched
        self.method = copy.deepcopy(self._pristine_method)
        model, tok = self._load_base()
        peft_model = attach_lora(model, self.lora, seed=self.seed)
        latest = self.latest_manifest()
        covered: set[int] = set()
        rnd = 0
        if latest is not None and latest.path is not None:
            state = latest.path / "state"
            safetensors = _safetensors()
            lora = safetensors.load_file(str(state / "lora.safetensors"))
            params = lora_params(peft_model)
            missing = set(params) - set(lora)
            if missing:
                raise StoreCorrupt(f"{state} lacks LoRA weights for {sorted(missing)[:3]}...")
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(lora[n])
            tensors = safetensors.load_file(str(state / "method.safetensors"))
            data = json.loads((state / "method.json").read_text("utf-8"))
            self.method.load_state(tensors, data)
            covered = set(json.loads((state / "covered_ids.json").read_text("utf-8")))
            rnd = latest.round
        peft_model.eval()
        self._session = _Session(peft_model, tok, self.method, covered, rnd)
        return self._session

    @contextmanager
    def inference(self, *, allow_stale: bool = False) -> Iterator[tuple[Any, TokenizerLike]]:
        """The live model with the serving weights in place, and its tokenizer (a stale
        adapter is refused as in :meth:`load_latest`)."""
        if not allow_stale:
            self.check_fresh()
        s = self._session_or_restore()
        serving = s.method.serving_weights()
        if serving is None:
            yield s.model, s.tokenizer
            return
        with swapped_weights(s.model, serving):
            yield s.model, s.tokenizer

    # ------------------------------------------------------------ consolidation
    def consolidate(self, items: Iterable[ItemLike], since: float | None = None,
                    on_step: Callable[[int], None] | None = None) -> ConsolidationManifest:
        """Train one round on the items not yet covered (and created at/after ``since``).

        Returns the new round's manifest; with nothing new, the latest manifest unchanged.
        Raises :class:`InvalidInput` when there is nothing new and no earlier round.
        """
        self._clean_tmp()
        s = self._session_or_restore()
        fresh = [it for it in items
                 if int(it.id) not in s.covered and (since is None or it.created_at >= since)]
        fresh.sort(key=lambda it: (it.created_at, int(it.id)))
        if not fresh:
            latest = self.latest_manifest()
            if latest is None:
                raise InvalidInput("no items to consolidate")
            return latest
        examples = items_to_examples(fresh)
        rnd = s.round + 1
        try:
            stats = train_round(s.model, s.tokenizer, s.method, examples, self.train,
                                seed=self.seed * 100_003 + rnd, progress=self.progress,
                                desc=f"consolidate r{rnd} {s.method.name}", on_step=on_step)
            qa = [(ex.prompt, ex.target) for ex in examples if ex.prompt]
            with self.inference(allow_stale=True) as (model, tok):
                hits = answer_matches(model, tok, qa, max_len=self.train.max_len) if qa else []
            manifest = ConsolidationManifest(
                round=rnd, method=s.method.name, method_options=s.method.options(),
                base_model=self.base_model_name, lora=self.lora.as_dict(),
                train=self.train.as_dict(), seed=self.seed, created_at=time.time(),
                since=since, until=max(it.created_at for it in fresh),
                item_ids=[int(it.id) for it in fresh],
                n_items_covered=len(s.covered) + len(fresh), n_examples=len(examples),
                stats=stats.as_dict(),
                metrics={"new_item_accuracy": sum(hits) / len(hits)} if hits else {},
                item_versions=[list(lineage.item_version(it)) for it in fresh],
            )
            covered = s.covered | {int(it.id) for it in fresh}
            manifest.path = self._write_round(s, manifest, covered)
        except BaseException:
            self._session = None  # the in-memory weights are half-trained: reload from disk
            raise
        s.covered = covered
        s.round = rnd
        if self.record is not None:
            lineage.record_round(self.record, rnd, s.method.name, self.base_model_name,
                                 manifest.created_at, manifest.path.name,
                                 manifest.item_versions)
        return manifest

    def retrain_stale(self, items: Iterable[ItemLike]) -> ConsolidationManifest | None:
        """Rebuild the adapter without deleted or replaced item versions.

        Rounds from the earliest stale one on are retired; one round then trains, from the
        last fresh round's state (or from scratch), on the current ``items`` those rounds do
        not cover. Returns the new manifest, or None when nothing was stale. Needs ``record``.
        """
        if self.record is None:
            raise ConfigError("retrain_stale needs the record (Consolidator(..., record=store))")
        first = lineage.earliest_stale_round(self.record, self.directory)
        if first is None:
            return None
        self._clean_tmp()
        retired = []
        for path in self.rounds():
            m = _ROUND.match(path.name)
            if m and int(m.group(1)) >= first:
                target = self.root / f".retired-{uuid.uuid4().hex}-{path.name}"
                os.rename(path, target)
                retired.append(target)
        lineage.forget_rounds(self.record, first)
        self._session = None
        try:
            manifest = self.consolidate(items)
        except InvalidInput:  # everything was deleted: no adapter at all now
            manifest = None
        for path in retired:
            shutil.rmtree(path, ignore_errors=True)
        return manifest

    def _write_round(self, s: _Session, manifest: ConsolidationManifest,
                     covered: set[int]) -> Path:
        safetensors = _safetensors()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        final = self.root / f"round-{manifest.round:04d}"
        try:
            state = tmp / "state"
            state.mkdir(parents=True)
            with self.inference(allow_stale=True) as (model, _tok):
                save_adapter(model, tmp / "adapter")
            lora = {n: t.contiguous() for n, t in snapshot(lora_params(s.model)).items()}
            safetensors.save_file(lora, str(state / "lora.safetensors"))
            tensors = {k: v.detach().contiguous() for k, v in s.method.state_tensors().items()}
            safetensors.save_file(tensors, str(state / "method.safetensors"))
            (state / "method.json").write_text(json.dumps(s.method.state_json()), "utf-8")
            (state / "covered_ids.json").write_text(json.dumps(sorted(covered)), "utf-8")
            (tmp / "manifest.json").write_text(manifest.to_json(), "utf-8")
            _fsync_tree(tmp)
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _clean_tmp(self) -> None:
        if self.root.is_dir():
            for pattern in (".tmp-*", ".retired-*"):
                for p in self.root.glob(pattern):
                    shutil.rmtree(p, ignore_errors=True)


def _safetensors() -> Any:
    from memkit._deps import require

    return require("safetensors.torch", "train", "consolidation state")


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
