"""The inspector's pure parts: docstring examples, the graph SVG, the report markdown."""

from __future__ import annotations

import doctest
import importlib
import re

import pytest

pytest.importorskip("fastapi")

from memkit.server.ui.evals import markdown_html  # noqa: E402
from memkit.server.ui.graph import neighbourhood_svg  # noqa: E402


@pytest.mark.parametrize("name", ["memkit.server.ui.graph", "memkit.server.ui.evals",
                                  "memkit.server.ui.session", "memkit.server.ui.queries"])
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_graph_draws_phrases_seeds_and_fact_arrows() -> None:
    svg = neighbourhood_svg(
        3, ["Alice", "Paris", "2021"],
        [("Alice", "moved to", "Paris"), ("Alice", "moved in", "2021"),
         ("Bob", "knows", "Alice")],  # Bob is not a node: that fact is not drawn
        seeds={"alice", "france"})  # seeds match phrases case-insensitively
    assert svg.count('<g class="node seed">') == 2  # Alice, and the unmatched seed france
    assert svg.count('<g class="node">') == 2  # Paris, 2021
    assert svg.count('<g class="fact">') == 2 and "knows" not in svg
    assert 'href="/ui/browse?q=Alice"' in svg
    assert re.search(r'<g class="node passage"><title>item 3</title>', svg)


def test_graph_escapes_phrase_text() -> None:
    svg = neighbourhood_svg(1, ['<script>alert("x")</script>'], [], set())
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_markdown_renders_the_report_subset_escaped() -> None:
    html = markdown_html("# Run\n\nRecall in **%** over `k`.\n\n| a | b |\n|---|---|\n"
                         "| <b>1</b> | 2 |\n\n- one\n- two\n")
    assert "<h1>Run</h1>" in html
    assert "<p>Recall in <strong>%</strong> over <code>k</code>.</p>" in html
    assert "<td>&lt;b&gt;1&lt;/b&gt;</td><td>2</td>" in html and "---" not in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
