"""The committed eval reports (``evals/results/<run>/``) for the inspector: list, show, compare.

The reports directory is ``$MEMKIT_UI_EVALS`` or ``./evals/results`` (relative to where
``memkit serve`` runs). Only direct sub-directories with a ``metrics.json`` or ``report.md`` are
runs, and only their plain files with a known suffix are served.

>>> html = markdown_html("# T\\n\\n| a | b |\\n|---|---|\\n| 1 | <x> |\\n\\n- one")
>>> "<h1>T</h1>" in html, "<td>&lt;x&gt;</td>" in html, "<li>one</li>" in html
(True, True, True)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from memkit.errors import NotFound

SERVED_SUFFIXES = {".png": "image/png", ".md": "text/plain; charset=utf-8",
                   ".json": "application/json", ".jsonl": "text/plain; charset=utf-8"}
_BULLET = re.compile(r"^\s*[-*]\s+")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def reports_dir() -> Path:
    return Path(os.environ.get("MEMKIT_UI_EVALS") or "evals/results").expanduser().resolve()


@dataclass
class Run:
    name: str
    path: Path
    files: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def plots(self) -> list[str]:
        return [f for f in self.files if f.endswith(".png")]

    @property
    def dataset(self) -> str:
        d = self.metrics.get("dataset") or {}
        return f"{d.get('name', '?')}: {d.get('questions', '?')} questions, " \
               f"{d.get('corpus_items', '?')} items" if d else "-"

    @property
    def backends(self) -> list[str]:
        return list((self.metrics.get("backends") or {}).keys())


def list_runs(root: Path | None = None) -> list[Run]:
    root = reports_dir() if root is None else root
    if not root.is_dir():
        return []
    out = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and _NAME.match(child.name) and (
                (child / "metrics.json").is_file() or (child / "report.md").is_file()):
            out.append(load_run(child.name, root))
    return out


def load_run(name: str, root: Path | None = None) -> Run:
    root = reports_dir() if root is None else root
    if not _NAME.match(name) or not (root / name).is_dir():
        raise NotFound(f"no eval run {name!r}")
    path = root / name
    files = sorted(p.name for p in path.iterdir()
                   if p.is_file() and p.suffix in SERVED_SUFFIXES and _NAME.match(p.name))
    metrics: dict[str, Any] = {}
    if "metrics.json" in files:
        try:
            metrics = json.loads((path / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
    return Run(name, path, files, metrics if isinstance(metrics, dict) else {})


def run_file(run: Run, filename: str) -> tuple[Path, str]:
    """The path and media type of one served file of a run (NotFound for anything else)."""
    if filename not in run.files:
        raise NotFound(f"no file {filename!r} in eval run {run.name!r}")
    return run.path / filename, SERVED_SUFFIXES[Path(filename).suffix]


def metric_rows(run: Run) -> dict[tuple[str, str], float | None]:
    """``{(backend, metric): value}`` with recall/NDCG in %, EM/F1 in %, latency in ms."""
    out: dict[tuple[str, str], float | None] = {}
    for backend, b in (run.metrics.get("backends") or {}).items():
        if not isinstance(b, dict):
            continue
        for fam, label in (("recall", "R@"), ("ndcg", "NDCG@")):
            for k, v in sorted((b.get(fam) or {}).items(), key=lambda kv: int(kv[0])
                               if str(kv[0]).isdigit() else 0):
                out[(backend, f"{label}{k}")] = None if v is None else 100 * float(v)
        for name in ("em", "f1"):
            if isinstance(b.get(name), (int, float)):
                out[(backend, name.upper())] = 100 * float(b[name])
        cost = b.get("cost") or {}
        for key, label in (("read_ms_p50", "read p50 ms"), ("read_ms_p95", "read p95 ms"),
                           ("context_tokens_per_q", "context tokens/q")):
            if isinstance(cost.get(key), (int, float)):
                out[(backend, label)] = float(cost[key])
    return out


def same_data(a: Run, b: Run) -> bool:
    """Whether both runs scored the same corpus and questions (else deltas mislead)."""
    da, db = a.metrics.get("dataset") or {}, b.metrics.get("dataset") or {}
    return bool(da) and all(da.get(k) == db.get(k) for k in ("name", "corpus_hash",
                                                               "questions"))


def compare(a: Run, b: Run) -> list[dict[str, Any]]:
    """Rows ``{backend, metric, a, b, delta, better}`` over the union of both runs' metrics;
    ``better``: whether B improves on A (lower is better for latency and tokens)."""
    ma, mb = metric_rows(a), metric_rows(b)
    keys = list(dict.fromkeys([*ma, *mb]))
    rows = []
    for key in keys:
        va, vb = ma.get(key), mb.get(key)
        delta = None if va is None or vb is None else vb - va
        lower_better = key[1].endswith(("ms", "tokens/q"))
        better = None if not delta else (delta < 0) == lower_better
        rows.append({"backend": key[0], "metric": key[1], "a": va, "b": vb, "delta": delta,
                     "better": better})
    return rows


def _inline(text: str) -> str:
    html = escape(text)
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)


def markdown_html(text: str) -> str:
    """The subset of markdown the eval reports use (headings, tables, lists, paragraphs),
    everything escaped first."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            i += 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            n = len(heading.group(1))
            out.append(f"<h{n}>{_inline(heading.group(2))}</h{n}>")
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            body = [r for r in block[1:] if not all(re.match(r"^:?-+:?$", c) for c in r)]
            head = "".join(f"<th>{_inline(c)}</th>" for c in block[0])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                           for r in body)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif re.match(r"^\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"^\s*[-*]\s+", lines[i]):
                item = _inline(_BULLET.sub("", lines[i]))
                items.append(f"<li>{item}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(
                    r"^(#|\||\s*[-*]\s)", lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)
