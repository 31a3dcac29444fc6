"""``memkit eval``: run a benchmark, compare runs, list data sets.

    memkit eval musique --backend dense --k 1,2,5,10
    memkit eval indexes/musique-200-dense.toml
    memkit eval my_questions.jsonl --corpus docs.jsonl --backend dense,hipporag
    memkit eval compare RUN RUN...
    memkit eval list

The first argument, when it is not a subcommand, is the data set (a known name, a recipe
``.toml`` from ``indexes/``, or a data file whose format is detected from its content).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from memkit.errors import MemkitError

DEFAULTS: dict[str, Any] = {"backends": ["dense"], "embedder": "minilm", "ks": [1, 2, 5, 10],
                            "reader_k": 5}


class _EvalGroup(click.Group):
    """A group whose first argument is the data set unless it names a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_EvalGroup, invoke_without_command=False)
def eval_group() -> None:
    """Run memory benchmarks: `memkit eval DATASET_OR_PATH [options]`, `memkit eval compare
    RUN...`, `memkit eval list`."""


def _ints(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        ks = [int(x) for x in value.split(",") if x.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from exc
    if not ks or any(k <= 0 for k in ks):
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return ks


def _loader_opts(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _nested(base: dict[str, dict[str, Any]], pairs: tuple[str, ...]
            ) -> dict[str, dict[str, Any]]:
    """``NAME.KEY=VALUE`` pairs over a recipe's ``{name: {key: value}}`` tables."""
    out = {b: dict(o) for b, o in base.items()}
    for key, value in _loader_opts(pairs).items():
        if "." not in key:
            raise click.BadParameter(f"expected NAME.KEY=VALUE, got {key!r}")
        b, k = key.split(".", 1)
        out.setdefault(b, {})[k] = value
    return out


@eval_group.command("run")
@click.argument("dataset")
@click.option("--format", "fmt", default=None,
              help="Force the data format (musique, hotpotqa, 2wikimultihopqa, locomo, "
                   "longmemeval, qa-jsonl, ruler).")
@click.option("--corpus", default=None, help="Corpus file for a {question, answer, evidence} "
              "JSONL (JSONL of {id, text} or one document a line).")
@click.option("--backend", "backend", default=None,
              help="Comma-separated backends, each evaluated separately; 'a+b' fuses a and b. "
                   "[default: dense]")
@click.option("--embedder", default=None, help="Embedder spec (minilm, onnx, e5, hash:DIM, "
              "st:/dir; 'a+b' fuses two, e.g. onnx+e5). [default: minilm]")
@click.option("--limit", type=int, default=None, help="Only the first N questions.")
@click.option("--k", "ks", default=None, help="Recall/NDCG cut-offs. [default: 1,2,5,10]")
@click.option("--llm", default=None, help="Reader LLM spec (memkit.llm.load_llm); EM/F1 are "
              "scored only when given.")
@click.option("--reader-k", type=int, default=None, help="Hits given to the reader. [default: 5]")
@click.option("--max-context-tokens", type=int, default=None,
              help="Cap on the reader's context size.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="Loader option, e.g. -o granularity=turn (LongMemEval), -o length=8000 "
                   "(RULER). Repeatable.")
@click.option("--backend-option", "backend_options", multiple=True, metavar="NAME.KEY=VALUE",
              help="Backend option, e.g. --backend-option dense.ef_search=256. Repeatable.")
@click.option("--read-option", "read_options", multiple=True, metavar="NAME.KEY=VALUE",
              help="Per-read option (Memory.read read_options), e.g. --read-option "
                   "hipporag.damping=0.7: a retrieval variant of the same built memory; "
                   "hipporag.decompose=true / hipporag.filter=false switch hipporag's LLM "
                   "query decomposition and recognition filter. Repeatable.")
@click.option("--fusion", default=None, type=click.Choice(["rrf", "minmax"]),
              help="How an 'a+b' backend fuses: reciprocal rank or min-max scores. "
                   "[default: rrf]")
@click.option("--weight", "weights", multiple=True, metavar="NAME=W",
              help="Fusion weight of one backend of an 'a+b' spec. Repeatable.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Folder holding the data set files, searched first (also: MEMKIT_DATA_DIR, "
                   "../shared/data, the committed samples; `memkit eval list` shows them).")
@click.option("--name", default=None, help="Run folder name. [default: derived from config]")
@click.option("--out", default=None, help="Results folder. [default: evals/results in a "
              "source checkout, else the user data folder]")
@click.option("--cache", default=None, help="Folder of built memories, reused across runs. "
              "[default: evals/cache in a source checkout, else the user cache folder]")
@click.option("--store", default=None, metavar="DSN",
              help="Build the memories on this Postgres (postgresql://...; one schema per "
                   "built memory) instead of SQLite files.")
@click.option("--overwrite", is_flag=True, help="Restart the run instead of resuming it.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--no-embed-cache", is_flag=True,
              help="Do not reuse document vectors from <cache>/embeddings.sqlite.")
@click.option("--time-aware", is_flag=True,
              help="Time-aware reads: time expressions in questions, resolved against the "
                   "question's date, move hits of that time up (needs [temporal]).")
def run_cmd(dataset: str, fmt: str | None, corpus: str | None, backend: str | None,
            embedder: str | None, limit: int | None, ks: str | None, llm: str | None,
            reader_k: int | None, max_context_tokens: int | None, options: tuple[str, ...],
            backend_options: tuple[str, ...], read_options: tuple[str, ...],
            fusion: str | None, weights: tuple[str, ...], data_dir: str | None,
            name: str | None, out: str | None, cache: str | None, store: str | None,
            overwrite: bool, no_progress: bool, no_plots: bool, no_embed_cache: bool,
            time_aware: bool) -> None:
    """Evaluate DATASET (a known name, an indexes/*.toml recipe, or a data file)."""
    from memkit.eval.datasets import load_dataset
    from memkit.eval.report import metrics_table
    from memkit.eval.runner import EvalConfig, load_recipe, run_eval

    # bars only on a terminal: in logs they leave cursor codes (and transformers draws its
    # own "Loading weights" bar unless told not to)
    progress = not no_progress and sys.stderr.isatty()
    if not progress:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        recipe: dict[str, Any] = {}
        if dataset.endswith(".toml"):
            recipe = load_recipe(Path(dataset))
        bopts = _nested(recipe.get("backend_options", {}), backend_options)
        ropts = _nested(recipe.get("read_options", {}), read_options)
        wts = {**recipe.get("weights", {}), **_loader_opts(weights)}
        chosen: dict[str, Any] = {
            "backends": [b.strip() for b in backend.split(",") if b.strip()] if backend
            else recipe.get("backends"),
            "embedder": embedder or recipe.get("embedder"),
            "ks": _ints(ks) or recipe.get("k"),
            "reader_k": reader_k or recipe.get("reader_k"),
        }
        config = EvalConfig(
            dataset=recipe.get("dataset", dataset), format=fmt or recipe.get("format"),
            corpus=corpus or recipe.get("corpus"),
            loader_options={**recipe.get("loader", {}), **_loader_opts(options)},
            backend_options=bopts, limit=limit if limit is not None else recipe.get("limit"),
            llm=llm or recipe.get("llm"),
            max_context_tokens=max_context_tokens or recipe.get("max_context_tokens"),
            name=name or recipe.get("name"), out=out or default_folder("results"),
            cache=cache or default_folder("cache"), store=store, overwrite=overwrite,
            progress=progress, plots=not no_plots, embed_cache=not no_embed_cache,
            recipe=dataset if recipe else None, read_options=ropts,
            fusion=fusion or recipe.get("fusion", "rrf"), weights=wts,
            time_aware=time_aware or bool(recipe.get("time_aware", False)),
            **{k: v if v is not None else DEFAULTS[k] for k, v in chosen.items()})
        ds = load_dataset(config.dataset, format=config.format, corpus=config.corpus,
                          options=config.loader_options, data_dir=data_dir)
        result = run_eval(config, dataset=ds)
    except MemkitError as exc:
        raise click.ClickException(str(exc)) from exc
    m = result.metrics
    header = ["backend", "n"] + [f"R@{k}" for k in m["ks"]] + \
        [f"NDCG@{m['ks'][-1]}", "EM", "F1", "p50 ms", "p95 ms"]
    from memkit._cli import print_table

    print_table(metrics_table(m), header, right=set(range(1, len(header))))
    click.echo(f"results: {result.path}")


def default_folder(kind: str) -> str:
    """``evals/<kind>`` of the source checkout when running from one; otherwise (an installed
    wheel) the user data (results) or cache folder, never inside site-packages."""
    from memkit.eval.datasets import repo_root

    checkout = repo_root()
    if (checkout / "evals").is_dir() and (checkout / "memkit").is_dir():
        rel = Path("evals") / kind
        # keep the historical relative path when run from the checkout's root
        return str(rel) if Path.cwd().resolve() == checkout else str(checkout / rel)
    from platformdirs import user_cache_dir, user_data_dir

    base = user_data_dir("memkit") if kind == "results" else user_cache_dir("memkit")
    return str(Path(base) / "eval" / kind)


@eval_group.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", default=None,
              help="Where run names are looked up. [default: as for `memkit eval` runs]")
def compare_cmd(runs: tuple[str, ...], out: str | None) -> None:
    """Print a side-by-side table of several runs (folders or names under --out)."""
    from memkit.eval.report import compare_runs

    try:
        click.echo(compare_runs(list(runs), out or default_folder("results")))
    except MemkitError as exc:
        raise click.ClickException(str(exc)) from exc


@eval_group.command("list")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Also look in this folder first.")
def list_cmd(data_dir: str | None) -> None:
    """List the known data sets (and whether their files are found), where files are looked
    for, and the recipes in indexes/."""
    from memkit._cli import print_table
    from memkit.errors import NotFound
    from memkit.eval.datasets import DATA_ENV, KNOWN, data_dirs, find_data_file, repo_root

    rows = []
    for name, (_, where, desc) in sorted(KNOWN.items()):
        if where == "ruler":
            found = "generated"
        else:
            try:
                found = str(find_data_file(name, data_dir))
            except NotFound:
                found = "NOT FOUND"
        rows.append([name, desc, found])
    print_table(rows, ["data set", "what", "file"])
    click.echo("\ndata files are looked for in (first match wins):")
    for folder, why in data_dirs(data_dir):
        click.echo(f"  {folder}  ({why}{'' if folder.is_dir() else ', missing'})")
    click.echo(f"  point --data-dir or {DATA_ENV} at a folder holding the files; any data file "
               "also works by path: `memkit eval path/to/file.jsonl`")
    recipes = sorted((repo_root() / "indexes").glob("*.toml"))
    if recipes:
        click.echo("\nrecipes:")
        for recipe in recipes:
            click.echo(f"  indexes/{recipe.name}")


def _knowledge_update() -> None:
    from memkit.eval.knowledge_update import knowledge_update_cmd

    eval_group.add_command(knowledge_update_cmd)


_knowledge_update()
