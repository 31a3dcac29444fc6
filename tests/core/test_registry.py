"""One registry style: memkit's own components load through the same entry-point groups as a
third-party plugin's, and both resolve the same way."""

from __future__ import annotations

import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from memkit import Memory
from memkit.backends.base import BACKENDS, backend_names
from memkit.consolidate.methods import CONSOLIDATION_METHODS
from memkit.embed import EMBEDDERS, HashEmbedder
from memkit.errors import ConfigError
from memkit.llm import LLM_KINDS
from memkit.registry import builtin_entry_points
from memkit.rerank import RERANKERS

REPO = Path(__file__).resolve().parents[2]


def test_pyproject_declares_exactly_the_builtins() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    builtins = builtin_entry_points()
    for reg in (BACKENDS, RERANKERS, CONSOLIDATION_METHODS, EMBEDDERS, LLM_KINDS):
        assert declared[reg.group] == builtins[reg.group], reg.group


def test_builtins_resolve_through_installed_entry_points() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="memkit.backends")}
    assert {"dense", "hipporag", "panini"} <= names  # memkit's own metadata declares them
    assert BACKENDS.resolve("dense").__name__ == "DenseBackend"
    assert RERANKERS.resolve("sifter").__name__ == "SifterReranker"
    assert CONSOLIDATION_METHODS.resolve("ewc").__name__ == "EWC"


def test_a_third_party_package_plugs_in_a_backend_without_editing_memkit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a real (if tiny) installed distribution: a module plus its .dist-info on sys.path
    (tmp_path / "acme_plugin.py").write_text(textwrap.dedent("""
        from memkit.backends.base import Backend, Retrieval
        from memkit.options import Options
        from memkit.types import Scored

        class FirstOptions(Options):
            bonus: float = 1.0

        class FirstBackend(Backend):
            name = "acme-first"
            options_model = FirstOptions

            def add(self, items, prepared=None):
                self.__dict__.setdefault("seen", []).extend(it.id for it in items)

            def remove(self, ids):
                pass

            def retrieve(self, query, k, *, allowed, options=None):
                ids = allowed.ids[:k].tolist()
                return Retrieval([Scored(i, self.options.bonus) for i in ids],
                                 trace={"plugin": True})
    """))
    info = tmp_path / "acme_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[memkit.backends]\nacme-first = acme_plugin:FirstBackend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "acme-first" in backend_names()
    with Memory.open(None, backends=["acme-first"], embedder=HashEmbedder(16),
                     backend_options={"acme-first": {"bonus": 2.5}}) as mem:
        a = mem.write("first")
        res = mem.read("anything", k=1, trace=True)
        assert res.ids == [a] and res.hits[0].score == 2.5
        assert res.traces["acme-first"] == {"plugin": True}
        with pytest.raises(ConfigError, match="bonnus"):
            Memory.open(None, backends=["acme-first"], embedder=HashEmbedder(16),
                        backend_options={"acme-first": {"bonnus": 1}})
    sys.modules.pop("acme_plugin", None)


def test_embedder_and_llm_kinds_plug_in_at_run_time() -> None:
    from memkit.embed import load_embedder
    from memkit.llm import ScriptedLLM, load_llm

    EMBEDDERS.register("test-hash", lambda arg: HashEmbedder(int(arg or 8)))
    LLM_KINDS.register("test-scripted", lambda rest, **kw: ScriptedLLM({".": rest}))
    assert load_embedder("test-hash:12").dim == 12
    assert load_llm("test-scripted:hello").complete("hi").text == "hello"
    with Memory.open(None, embedder="test-hash:16") as mem:
        assert mem.embedder.dim == 16


def test_unknown_names_list_what_is_known() -> None:
    with pytest.raises(ConfigError, match="known: .*dense"):
        BACKENDS.resolve("nope")
    with pytest.raises(ConfigError, match="unknown reranker 'nope'"):
        RERANKERS.resolve("nope")
