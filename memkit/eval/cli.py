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
@click.option("--embedder", default=None, help="Embedder spec (minilm, hash:DIM, st:/dir). "
              "[default: minilm]")
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
@click.option("--name", default=None, help="Run folder name. [default: derived from config]")
@click.option("--out", default="evals/results", show_default=True, help="Results folder.")
@click.option("--cache", default="evals/cache", show_default=True,
              help="Folder of built memories, reused across runs.")
@click.option("--overwrite", is_flag=True, help="Restart the run instead of resuming it.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--no-embed-cache", is_flag=True,
              help="Do not reuse document vectors from <cache>/embeddings.sqlite.")
def run_cmd(dataset: str, fmt: str | None, corpus: str | None, backend: str | None,
            embedder: str | None, limit: int | None, ks: str | None, llm: str | None,
            reader_k: int | None, max_context_tokens: int | None, options: tuple[str, ...],
            backend_options: tuple[str, ...], name: str | None, out: str, cache: str,
            overwrite: bool, no_progress: bool, no_plots: bool, no_embed_cache: bool) -> None:
    """Evaluate DATASET (a known name, an indexes/*.toml recipe, or a data file)."""
    from memkit.eval.report import metrics_table
    from memkit.eval.runner import EvalConfig, load_recipe, run_eval

    try:
        recipe: dict[str, Any] = {}
        if dataset.endswith(".toml"):
            recipe = load_recipe(Path(dataset))
        bopts: dict[str, dict[str, Any]] = dict(recipe.get("backend_options", {}))
        for key, value in _loader_opts(backend_options).items():
            if "." not in key:
                raise click.BadParameter(f"expected NAME.KEY=VALUE, got {key!r}")
            b, k = key.split(".", 1)
            bopts.setdefault(b, {})[k] = value
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
            name=name or recipe.get("name"), out=out, cache=cache, overwrite=overwrite,
            progress=not no_progress, plots=not no_plots, embed_cache=not no_embed_cache,
            recipe=dataset if recipe else None,
            **{k: v if v is not None else DEFAULTS[k] for k, v in chosen.items()})
        result = run_eval(config)
    except MemkitError as exc:
        raise click.ClickException(str(exc)) from exc
    m = result.metrics
    header = ["backend", "n"] + [f"R@{k}" for k in m["ks"]] + \
        [f"NDCG@{m['ks'][-1]}", "EM", "F1", "p50 ms", "p95 ms"]
    click.echo("  ".join(header))
    for row in metrics_table(m):
        click.echo("  ".join(row))
    click.echo(f"results: {result.path}")


@eval_group.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", default="evals/results", show_default=True,
              help="Where run names are looked up.")
def compare_cmd(runs: tuple[str, ...], out: str) -> None:
    """Print a side-by-side table of several runs (folders or names under --out)."""
    from memkit.eval.report import compare_runs

    try:
        click.echo(compare_runs(list(runs), out))
    except MemkitError as exc:
        raise click.ClickException(str(exc)) from exc


@eval_group.command("list")
def list_cmd() -> None:
    """List the known data set names and the recipes in indexes/."""
    from memkit.eval.datasets import KNOWN, repo_root

    for name, (_, _, desc) in sorted(KNOWN.items()):
        click.echo(f"{name:20s} {desc}")
    for recipe in sorted((repo_root() / "indexes").glob("*.toml")):
        click.echo(f"{'indexes/' + recipe.name:20s} recipe")
