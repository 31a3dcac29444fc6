"""`memkit eval` read settings: --read-option / --fusion / --weight reach Memory.read, are
part of a run's identity, and reuse one built memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memkit import Memory
from memkit.embed import HashEmbedder
from memkit.eval.datasets import load_dataset
from memkit.eval.runner import EvalConfig, run_eval

pytest.importorskip("bm25s", reason="the [lexical] extra (bm25s) is not installed")


def _config(tmp_path: Path, **over: object) -> EvalConfig:
    fields: dict = {"dataset": "musique-sample", "embedder": "hash:64", "limit": 6,
                    "out": str(tmp_path / "results"), "cache": str(tmp_path / "cache"),
                    "progress": False, "plots": False, "backends": ["dense+bm25"]}
    fields.update(over)
    return EvalConfig(**fields)


def test_fused_eval_equals_direct_reads(tmp_path: Path) -> None:
    cfg = _config(tmp_path, fusion="minmax", weights={"bm25": 0.5}, name="mm")
    result = run_eval(cfg)
    rows = [json.loads(x) for x in (result.path / "predictions.jsonl").read_text().splitlines()]
    ds = load_dataset("musique-sample").limit(6)
    mem = Memory.open(None, backends=["dense", "bm25"], embedder=HashEmbedder(64))
    mem.write_many([c.record() for c in ds.corpus])
    for q, r in zip(ds.questions, rows, strict=True):
        hits = mem.read(q.question, k=10, scope=q.scope, backend=["dense", "bm25"],
                        fusion="minmax", weights={"bm25": 0.5}).hits
        assert [h.item.metadata["keys"] for h in hits] == [x["keys"] for x in r["retrieved"]]
    identity = json.loads((result.path / "config.json").read_text())["identity"]
    assert identity["fusion"] == "minmax" and identity["weights"] == {"bm25": 0.5}
    rrf = run_eval(_config(tmp_path, name="rrf"))
    assert "fusion" not in json.loads((rrf.path / "config.json").read_text())["identity"]
    assert rrf.metrics["backends"]["dense+bm25"]["cost"]["index_reused"]  # one build
    mem.close()


def test_read_options_are_a_variant_of_one_build(tmp_path: Path) -> None:
    base = run_eval(_config(tmp_path, backends=["hipporag"], name="plain",
                            backend_options={"hipporag": {"extractor": "rules"}}))
    bridged = run_eval(_config(tmp_path, backends=["hipporag"], name="bridge",
                               backend_options={"hipporag": {"extractor": "rules"}},
                               read_options={"hipporag": {"bridge_passages": 2}}))
    assert bridged.metrics["backends"]["hipporag"]["cost"]["index_reused"]
    assert not base.metrics["backends"]["hipporag"]["cost"]["index_reused"]
    identity = json.loads((bridged.path / "config.json").read_text())["identity"]
    assert identity["read_options"] == {"hipporag": {"bridge_passages": 2}}
    with pytest.raises(Exception, match="bridge_passage"):
        run_eval(_config(tmp_path, backends=["hipporag"], name="typo",
                         backend_options={"hipporag": {"extractor": "rules"}},
                         read_options={"hipporag": {"bridge_passage": 2}}))


def test_cli_flags_reach_the_run(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "memkit.cli", "eval", "musique-sample", "--embedder", "hash:64",
         "--limit", "4", "--backend", "dense+bm25", "--fusion", "minmax", "--weight",
         "bm25=0.25", "--name", "cli", "--out", str(tmp_path / "r"), "--cache",
         str(tmp_path / "c"), "--no-plots", "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    identity = json.loads((tmp_path / "r" / "cli" / "config.json").read_text())["identity"]
    assert identity["fusion"] == "minmax" and identity["weights"] == {"bm25": 0.25}
    bad = subprocess.run(
        [sys.executable, "-m", "memkit.cli", "eval", "musique-sample", "--embedder", "hash:64",
         "--read-option", "damping=0.5", "--out", str(tmp_path / "r"), "--cache",
         str(tmp_path / "c"), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "NAME.KEY=VALUE" in bad.stderr
