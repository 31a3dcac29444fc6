"""The runner end to end on the committed samples (hash embedder: fast and deterministic)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from memkit.embed import HashEmbedder
from memkit.errors import ConfigError
from memkit.eval import runner as runner_mod
from memkit.eval.cli import eval_group
from memkit.eval.datasets import load_dataset
from memkit.eval.metrics import recall_at_k
from memkit.eval.runner import EvalConfig, load_predictions, run_eval
from memkit.llm.fake import ScriptedLLM

FIX = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built memories are keyed by content, so the tests of this module can share them."""
    return tmp_path_factory.mktemp("eval-cache")


@pytest.fixture(autouse=True)
def _cache(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CACHE", shared_cache)


CACHE = Path("unset")


def _config(tmp_path: Path, dataset: str = "musique-sample", **over: object) -> EvalConfig:
    fields: dict = {"dataset": dataset, "embedder": "hash:64", "out": str(tmp_path / "results"),
                    "cache": str(CACHE), "progress": False, "plots": False}
    fields.update(over)
    return EvalConfig(**fields)


def _stable(metrics: dict) -> dict:
    """Metrics without wall-clock figures."""
    out = json.loads(json.dumps(metrics))
    for m in out["backends"].values():
        m.pop("timing")
        for key in list(m["cost"]):
            if key.startswith(("read_ms", "index_build", "index_reused")):
                m["cost"].pop(key)
    return out


def test_musique_sample_matches_brute_force_reference(tmp_path: Path) -> None:
    result = run_eval(_config(tmp_path, plots=True))
    ds = load_dataset("musique-sample")
    # reference: exact cosine over the same embedder, no memkit in the loop
    emb = HashEmbedder(dim=64)
    vecs = emb.embed([c.text for c in ds.corpus])
    expected = {k: [] for k in (1, 2, 5, 10)}
    top10 = {}
    for q in ds.questions:
        scores = vecs @ emb.embed_query(q.question)
        order = np.argsort(-scores, kind="stable")[:10]
        ranked = [list(ds.corpus[i].keys) for i in order]
        top10[q.id] = [k for keys in ranked for k in keys]
        for k in expected:
            expected[k].append(recall_at_k(ranked, q.evidence, k))
    m = result.metrics["backends"]["dense"]
    for k, values in expected.items():
        assert m["recall"][str(k)] == pytest.approx(sum(values) / len(values))
    rows = load_predictions(result.path / "predictions.jsonl")
    assert len(rows) == 30
    for row in rows:
        assert [k for r in row["retrieved"] for k in r["keys"]] == top10[row["qid"]]
    assert m["questions"] == 30 and m["complete"]
    assert set(m["categories"]) == {"2hop", "3hop"}
    assert m["cost"]["index_items"] == len(ds.corpus) and m["cost"]["index_bytes"] > 0
    assert m["cost"]["llm_calls_per_q"] == 0 and m["cost"]["context_tokens_per_q"] > 0
    assert "em" not in m  # no reader configured: no answer metrics
    for name in ("config.json", "environment.json", "metrics.json", "report.md",
                 "recall_at_k.png", "categories.png"):
        assert (result.path / name).stat().st_size > 0
    report = (result.path / "report.md").read_text()
    r5 = 100 * m["recall"]["5"]
    assert re.search(rf"\| dense \| 30 \| .* \| {r5:.1f} \|", report)
    env = json.loads((result.path / "environment.json").read_text())
    assert "numpy" in env["packages"] and env["cpu_count"]


def test_locomo_sample_with_reader_scores_em_f1_and_abstention(tmp_path: Path) -> None:
    ds = load_dataset("locomo-sample")
    gold = {q.question: q for q in ds.questions}

    def reply(prompt: str) -> str:
        question = prompt.rsplit("Question: ", 1)[1].split("\nThought:")[0]
        q = gold[question]
        return "Answer: No Answer" if q.abstain else f"Thought: found it.\nAnswer: {q.answers[0]}"

    llm = ScriptedLLM({r"Question: ": reply})
    result = run_eval(_config(tmp_path, "locomo-sample", ks=[1, 5, 10]), llm=llm)
    m = result.metrics["backends"]["dense"]
    assert m["em"] == 1.0 and m["f1"] == 1.0
    assert m["abstention"]["precision"] == 1.0 and m["abstention"]["recall"] == 1.0
    assert list(m["categories"]) == ["multi-hop", "temporal", "open-domain", "single-hop",
                                     "adversarial"]  # LoCoMo's own order (categories 1-5)
    assert m["categories"]["adversarial"]["em"] is None  # abstention questions: no EM
    assert m["cost"]["llm_calls_per_q"] == 1.0 and m["cost"]["prompt_tokens_per_q"] > 0
    rows = load_predictions(result.path / "predictions.jsonl")
    assert all(r["retrieved"] and all(k.startswith("conv-26/") for x in r["retrieved"]
                                      for k in x["keys"]) for r in rows)
    # five reader hits, each a turn: the context given to the reader is their blocks
    assert all(r["context_tokens"] > 0 for r in rows)


def test_scoped_reads_never_cross_scopes(tmp_path: Path) -> None:
    cfg = _config(tmp_path, str(FIX / "custom_questions.jsonl"),
                  corpus=str(FIX / "custom_corpus.jsonl"), ks=[1, 3])
    result = run_eval(cfg)
    rows = {r["qid"]: r for r in load_predictions(result.path / "predictions.jsonl")}
    assert {k for x in rows["q1"]["retrieved"] for k in x["keys"]} <= {"d1", "d2"}
    assert {k for x in rows["q2"]["retrieved"] for k in x["keys"]} <= {"d3", "d4", "d5"}
    assert result.metrics["backends"]["dense"]["recall"]["3"] == 1.0


def test_resume_after_interruption_gives_the_same_metrics(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    reference = run_eval(_config(tmp_path, name="whole", limit=16))
    calls = {"n": 0}
    real = runner_mod._read_one

    def flaky(*args: object, **kwargs: object) -> dict:
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner_mod, "_read_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_eval(_config(tmp_path, name="cut", limit=16))
    pred = tmp_path / "results" / "cut" / "predictions.jsonl"
    assert len(load_predictions(pred)) == 11
    with pred.open("a") as fh:  # a torn line, as if killed mid-write
        fh.write('{"qid": "half')
    monkeypatch.setattr(runner_mod, "_read_one", real)
    resumed = run_eval(_config(tmp_path, name="cut", limit=16))
    rows = load_predictions(pred)
    assert len(rows) == 16 and len({r["qid"] for r in rows}) == 16
    timing = resumed.metrics["backends"]["dense"]["timing"]
    assert timing["sessions"] == 2 and timing["questions"] == 16
    assert [json.loads(ln)["questions"] for ln in
            (pred.parent / "timings.jsonl").read_text().splitlines()] == [11, 5]
    assert _stable(resumed.metrics) == _stable(reference.metrics)
    # the build was cached: the second and third runs reused it
    assert resumed.metrics["backends"]["dense"]["cost"]["index_reused"] is True
    assert len([d for d in CACHE.iterdir() if d.name.startswith("musique-sample-dense-")]) == 1


def test_changed_config_in_same_run_folder_is_refused(tmp_path: Path) -> None:
    run_eval(_config(tmp_path, name="r", limit=5))
    with pytest.raises(ConfigError, match=r"different config.*limit.*--overwrite"):
        run_eval(_config(tmp_path, name="r", limit=6))
    again = run_eval(_config(tmp_path, name="r", limit=6, overwrite=True))
    assert again.metrics["backends"]["dense"]["questions"] == 6


def test_fused_and_multiple_backends(tmp_path: Path) -> None:
    cfg = _config(tmp_path, limit=4, backends=["dense", "dense+dense"])
    m = run_eval(cfg).metrics["backends"]
    assert set(m) == {"dense", "dense+dense"}
    assert m["dense"]["recall"] == m["dense+dense"]["recall"]


# ---- CLI ----------------------------------------------------------------------------------------
def _invoke(args: list[str]) -> object:
    return CliRunner().invoke(eval_group, args, catch_exceptions=False)


def test_cli_run_recipe_and_compare(tmp_path: Path) -> None:
    out, cache = str(tmp_path / "res"), str(CACHE)
    res = _invoke(["musique-sample", "--embedder", "hash:64", "--limit", "6", "--k", "2,5",
                   "--name", "a", "--out", out, "--cache", cache, "--no-progress", "--no-plots"])
    assert res.exit_code == 0, res.output
    assert re.search(r"R@2 +R@5", res.output) and "results:" in res.output
    recipe = REPO / "indexes" / "musique-sample-hash.toml"
    res = _invoke([str(recipe), "--limit", "6", "--name", "b", "--out", out, "--cache", cache,
                   "--no-progress", "--no-plots"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "res" / "b" / "config.json").read_text())
    assert cfg["config"]["embedder"] == "hash:256" and cfg["config"]["recipe"] == str(recipe)
    res = _invoke(["compare", "a", "b", "--out", out])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("| run / backend | n | R@2 | R@5 |")
    assert any(ln.startswith("| a / dense | 6 |") for ln in lines)
    assert any(ln.startswith("| b / dense | 6 |") for ln in lines)


def test_cli_errors(tmp_path: Path) -> None:
    res = CliRunner().invoke(eval_group, ["musqiue", "--out", str(tmp_path)])
    assert res.exit_code != 0
    assert "unknown data set 'musqiue'" in res.output and "musique-sample" in res.output
    res = CliRunner().invoke(eval_group, ["compare", "nope", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "no run 'nope'" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "q", "answer": "a", "paragraphs": [{"title": 3}]}\n')
    res = CliRunner().invoke(eval_group, [str(bad), "--embedder", "hash:64", "--out",
                                          str(tmp_path), "--cache", str(tmp_path / "c")])
    assert res.exit_code != 0
    assert f"{bad}:1: field 'paragraphs[0].title': expected str, got int" in res.output
    res = CliRunner().invoke(eval_group, ["list"])
    assert "musique" in res.output and "indexes/musique-200-dense.toml" in res.output


def test_mounted_under_the_main_cli(tmp_path: Path) -> None:
    import click

    @click.group()
    def main() -> None:
        """Stand-in for memkit.cli:main."""

    main.add_command(eval_group, "eval")
    res = CliRunner().invoke(main, ["eval", "musique-sample", "--embedder", "hash:64",
                                    "--limit", "2", "--out", str(tmp_path), "--cache",
                                    str(CACHE), "--no-progress", "--no-plots"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "musique-sample-dense-hash64-n2" / "metrics.json").exists()
    res = CliRunner().invoke(main, ["eval", "--help"])
    assert res.exit_code == 0 and "compare" in res.output


def test_interrupted_build_is_completed_not_restarted(tmp_path: Path) -> None:
    from memkit import Memory
    from memkit.eval.runner import build_key

    ds = load_dataset("locomo-sample")
    emb = HashEmbedder(dim=64)
    cache = tmp_path / "cache"
    directory = cache / f"locomo-sample-dense-{build_key(ds, emb.name, ['dense'], {})}"
    with Memory.open(directory, backends=["dense"], embedder=emb) as mem:  # a build cut short
        mem.write_many([c.record() for c in ds.corpus[:40]])
    result = run_eval(_config(tmp_path, "locomo-sample", cache=str(cache), ks=[1, 5]))
    cost = result.metrics["backends"]["dense"]["cost"]
    assert cost["index_items"] == 108 and cost["index_reused"] is False
    build = json.loads((directory / "build.json").read_text())
    assert build["written"] == 68 and build["already_there"] == 40
    fresh = run_eval(_config(tmp_path, "locomo-sample", ks=[1, 5], name="fresh"))
    assert _stable(fresh.metrics)["backends"]["dense"]["recall"] == \
        _stable(result.metrics)["backends"]["dense"]["recall"]


def test_cli_llm_spec_goes_to_load_llm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import memkit.llm

    specs = []

    def fake_load(spec: str) -> ScriptedLLM:
        specs.append(spec)
        return ScriptedLLM({r"Question: ": "Answer: No Answer"})

    monkeypatch.setattr(memkit.llm, "load_llm", fake_load)
    res = _invoke(["locomo-sample", "--embedder", "hash:64", "--limit", "3", "--llm",
                   "gguf:/models/x.gguf", "--reader-k", "2", "--out", str(tmp_path),
                   "--cache", str(CACHE), "--no-progress", "--no-plots"])
    assert res.exit_code == 0, res.output
    assert specs == ["gguf:/models/x.gguf"]
    run = tmp_path / "locomo-sample-dense-hash64-n3-x.gguf"
    rows = load_predictions(run / "predictions.jsonl")
    assert [r["prediction"] for r in rows] == ["No Answer"] * 3
    assert all(r["abstained"] and len(r["retrieved"]) == 10 for r in rows)
    m = json.loads((run / "metrics.json").read_text())["backends"]["dense"]
    assert m["em"] == 0.0 and m["abstention"]["precision"] == 0.0  # none of the 3 is adversarial


def test_embedding_cache_serves_a_second_build_identically(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_eval(_config(tmp_path, "locomo-sample", cache=str(cache), name="one"))
    # other backend options: another build key, so another build -- from cached vectors
    second = run_eval(_config(tmp_path, "locomo-sample", cache=str(cache), name="two",
                              backend_options={"dense": {"ef_search": 64}}))
    builds = sorted((json.loads(p.read_text()) for p in cache.glob("*/build.json")),
                    key=lambda b: b["embed_cache_hits"])
    assert [(b["embed_cache_hits"], b["embed_cache_misses"]) for b in builds] == \
        [(0, 108), (108, 0)]
    m1, m2 = first.metrics["backends"]["dense"], second.metrics["backends"]["dense"]
    assert (m1["recall"], m1["ndcg"], m1["categories"]) == \
        (m2["recall"], m2["ndcg"], m2["categories"])
    rows1 = load_predictions(first.path / "predictions.jsonl")
    rows2 = load_predictions(second.path / "predictions.jsonl")
    assert [r["retrieved"] for r in rows1] == [r["retrieved"] for r in rows2]


def test_caching_embedder_returns_identical_vectors(tmp_path: Path) -> None:
    from memkit.eval.embcache import CachingEmbedder

    inner = HashEmbedder(dim=32)
    cached = CachingEmbedder(inner, tmp_path / "e.sqlite")
    texts = ["alpha beta", "gamma", "alpha beta", "delta"]
    a = cached.embed(texts, batch_size=3)
    assert (cached.hits, cached.misses) == (0, 4)  # the duplicate is embedded once, counted twice
    b = cached.embed(texts)
    assert (cached.hits, cached.misses) == (4, 4)
    assert np.array_equal(a, inner.embed(texts)) and np.array_equal(a, b)
    assert np.array_equal(cached.embed_query("alpha"), inner.embed_query("alpha"))
    cached.close()
