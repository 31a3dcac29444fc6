"""Benchmark loaders: a known name, or a file whose format is detected from its content.

>>> sorted(KNOWN)[:3]
['locomo', 'locomo-sample', 'musique']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memkit.errors import InvalidInput, NotFound
from memkit.eval.datasets.base import (
    CorpusBuilder,
    CorpusItem,
    Dataset,
    Question,
    doc_key,
    first_record,
    read_records,
)
from memkit.eval.datasets.conversation import load_locomo, load_longmemeval
from memkit.eval.datasets.qa import load_distractor, load_musique, load_qa_jsonl
from memkit.eval.datasets.ruler import VARIANTS, RulerConfig, generate_ruler

__all__ = ["DATA_ENV", "FORMATS", "KNOWN", "CorpusBuilder", "CorpusItem", "Dataset", "Question",
           "RulerConfig", "data_dirs", "detect_format", "doc_key", "find_data_file",
           "generate_ruler", "load_dataset", "read_records", "repo_root", "samples_dir"]

FORMATS = ("musique", "hotpotqa", "2wikimultihopqa", "locomo", "longmemeval", "qa-jsonl",
           "ruler")

#: known data set names -> (file name or generator, where to look, description)
KNOWN: dict[str, tuple[str, str, str]] = {
    "musique": ("musique_dev200.jsonl", "shared", "MuSiQue dev, 200 answerable questions, "
                "3,141 passages (../shared/data)"),
    "musique-sample": ("musique_sample.jsonl", "samples",
                       "30 MuSiQue dev questions (committed sample)"),
    "locomo": ("locomo10.json", "shared", "LoCoMo, 10 conversations, 1,986 QA (../shared/data)"),
    "locomo-sample": ("locomo_sample.json", "samples", "LoCoMo conv-26, sessions 1-6 (108 turns), "
                      "38 QA (committed sample)"),
    **{f"ruler-{v}": (v, "ruler", f"synthetic RULER-style {v} needles (generated)")
       for v in VARIANTS},
}


DATA_ENV = "MEMKIT_DATA_DIR"


def repo_root() -> Path:
    """The checkout this package lives in (where ``evals/`` and ``indexes/`` are)."""
    return Path(__file__).resolve().parents[3]


def samples_dir() -> Path:
    """The committed samples (``evals/samples`` of a source checkout)."""
    return repo_root() / "evals" / "samples"


def data_dirs(data_dir: str | Path | None = None) -> list[tuple[Path, str]]:
    """Where data set files are looked for, in order, each with why it is on the list:
    ``data_dir`` (``--data-dir``), the folders in ``MEMKIT_DATA_DIR`` (``os.pathsep``-
    separated), ``../shared/data`` beside the working directory and beside the checkout, and
    the committed samples."""
    found: list[tuple[Path, str]] = []
    if data_dir:
        found.append((Path(data_dir).expanduser(), "--data-dir"))
    for part in os.environ.get(DATA_ENV, "").split(os.pathsep):
        if part.strip():
            found.append((Path(part.strip()).expanduser(), DATA_ENV))
    found.append((Path.cwd().parent / "shared" / "data", "../shared/data of the working directory"))
    found.append((repo_root().parent / "shared" / "data", "../shared/data of the checkout"))
    found.append((samples_dir(), "committed samples"))
    out: list[tuple[Path, str]] = []
    for path, why in found:
        if all(path.resolve() != p.resolve() for p, _ in out):
            out.append((path, why))
    return out


def find_data_file(name: str, data_dir: str | Path | None = None) -> Path:
    """The file behind a known data set name. Raises NotFound listing the known names, or
    every folder it looked in."""
    if name not in KNOWN:
        raise NotFound(f"unknown data set {name!r}; known: {', '.join(sorted(KNOWN))} "
                       "(or give a file path, or a recipe from indexes/)")
    filename, where, _ = KNOWN[name]
    dirs = data_dirs(data_dir)
    if where == "samples":  # the samples folder first: a data dir's copy is the same file
        dirs = sorted(dirs, key=lambda d: d[1] != "committed samples")
    for folder, _ in dirs:
        if (folder / filename).is_file():
            return folder / filename
    looked = "; ".join(f"{folder} ({why})" for folder, why in dirs)
    sample = f"{name.split('-')[0]}-sample"
    alt = f", or use the committed sample '{sample}'" if sample in KNOWN and sample != name \
        else ""
    raise NotFound(f"data set {name!r} needs {filename}, not found in: {looked}. Put it in one "
                   f"of them or point --data-dir / {DATA_ENV} at its folder{alt}")


def detect_format(path: Path) -> str:
    """The format of a data file, from its content (not its name)."""
    rec = first_record(path)
    if rec is None:
        raise InvalidInput(f"{path}: no records")
    keys = set(rec)
    if {"conversation", "qa"} <= keys:
        return "locomo"
    if "haystack_sessions" in keys:
        return "longmemeval"
    if {"paragraphs", "question"} <= keys:
        return "musique"
    if {"context", "supporting_facts", "question"} <= keys:
        return "2wikimultihopqa" if "evidences" in keys or "entity_ids" in keys else "hotpotqa"
    if "question" in keys:
        return "qa-jsonl"
    raise InvalidInput(
        f"{path}:1: cannot tell the format from the first record's fields {sorted(keys)}; "
        f"known formats: {', '.join(FORMATS)} (force one with --format)")


def load_dataset(spec: str | Path, *, format: str | None = None, corpus: str | Path | None = None,
                 options: dict[str, Any] | None = None,
                 data_dir: str | Path | None = None) -> Dataset:
    """Load a known data set name or a data file (format detected unless ``format`` is given).

    ``options`` go to the loader (e.g. ``granularity`` for LongMemEval, RULER's ``length``,
    ``samples``, ``depths``, ``seed``...); ``data_dir`` is searched first for a known name's
    file (see :func:`data_dirs`)."""
    opts = dict(options or {})
    name = str(spec)
    if name in KNOWN and KNOWN[name][1] == "ruler":
        return generate_ruler(RulerConfig(variant=KNOWN[name][0]), **_ruler_opts(opts))
    if format == "ruler":
        return generate_ruler(RulerConfig(variant=name.removeprefix("ruler-")),
                              **_ruler_opts(opts))
    path = Path(spec).expanduser()
    label = None
    if name in KNOWN:
        path, label = find_data_file(name, data_dir), name
    elif not path.exists():
        if os.sep in name or name.endswith((".json", ".jsonl", ".toml")):
            raise NotFound(f"data file {path} does not exist")
        find_data_file(name, data_dir)  # raises NotFound listing the known names
    fmt = format or detect_format(path)
    loaders: dict[str, Callable[..., Dataset]] = {
        "musique": load_musique,
        "hotpotqa": lambda p, **o: load_distractor(p, fmt="hotpotqa", **o),
        "2wikimultihopqa": lambda p, **o: load_distractor(p, fmt="2wikimultihopqa", **o),
        "locomo": load_locomo,
        "longmemeval": load_longmemeval,
        "qa-jsonl": lambda p, **o: load_qa_jsonl(p, Path(corpus) if corpus else None, **o),
    }
    if fmt not in loaders:
        raise InvalidInput(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    try:
        ds = loaders[fmt](path, **opts)
    except TypeError as exc:
        raise InvalidInput(f"bad loader option(s) {sorted(opts)} for format {fmt}: {exc}") from exc
    if label:
        ds.name = label
    elif fmt not in ("qa-jsonl",):
        ds.name = path.stem
    return ds


def _ruler_opts(opts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in opts.items():
        if key not in RulerConfig.__dataclass_fields__ or key == "variant":
            raise InvalidInput(f"unknown RULER option {key!r}; known: "
                               f"{sorted(set(RulerConfig.__dataclass_fields__) - {'variant'})}")
        if key == "depths":
            if isinstance(value, str):
                value = tuple(float(x) for x in value.split(",") if x.strip())
            elif isinstance(value, (int, float)):
                value = (float(value),)
            else:
                value = tuple(float(x) for x in value)
        elif not isinstance(value, int):
            try:
                value = int(value)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"RULER option {key} must be an integer, got {value!r}") \
                    from exc
        out[key] = value
    return out
