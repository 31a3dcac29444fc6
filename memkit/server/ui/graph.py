"""The graph neighbourhood of a HippoRAG hit as a small SVG (no library, no script).

The passage sits in the centre; the phrases it mentions sit on a circle around it (the seed
phrases of the query that reached it are highlighted); each fact the passage supports is an
arrow between its two phrases, labelled with its predicate. Every phrase is a link to the
browse page searching for it.

>>> svg = neighbourhood_svg(7, ["alice", "paris"], [("alice", "moved to", "paris")], {"paris"})
>>> svg.count("<circle"), "moved to" in svg, 'class="node seed"' in svg
(3, True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from urllib.parse import quote

WIDTH = 520
HEIGHT = 360
MAX_PHRASES = 24


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def layout(n: int, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """``n`` points evenly on a circle, the first at the top.

    >>> [(round(x), round(y)) for x, y in layout(2, 0, 0, 10)]
    [(0, -10), (0, 10)]
    """
    return [(cx + r * math.sin(2 * math.pi * i / n), cy - r * math.cos(2 * math.pi * i / n))
            for i in range(n)]


def neighbourhood_svg(item_id: int, phrases: Sequence[str],
                      facts: Sequence[tuple[str, str, str]], seeds: set[str],
                      browse_url: str = "/ui/browse") -> str:
    """SVG markup (escaped) of one passage's one-hop neighbourhood."""
    seed_low = {s.lower() for s in seeds}
    names = list(dict.fromkeys(phrases))
    known = {p.lower() for p in names}
    names += [s for s in sorted(seeds) if s.lower() not in known]
    names = names[:MAX_PHRASES]
    lower = {p.lower(): p for p in names}
    cx, cy = WIDTH / 2, HEIGHT / 2
    pos = dict(zip(names, layout(len(names), cx, cy, min(cx, cy) - 40), strict=True)) \
        if names else {}
    out = [f'<svg class="graph" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
           f'height="{HEIGHT}" role="img" aria-label="graph neighbourhood of item {item_id}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/>'
           '</marker></defs>']
    for name in names:  # passage -> phrase (the mention edges)
        x, y = pos[name]
        out.append(f'<line class="mention" x1="{cx:.1f}" y1="{cy:.1f}" x2="{x:.1f}" '
                   f'y2="{y:.1f}"/>')
    for subj, pred, obj in facts:
        a, b = pos.get(lower.get(subj.lower(), "")), pos.get(lower.get(obj.lower(), ""))
        if a is None or b is None:
            continue
        dx, dy = b[0] - a[0], b[1] - a[1]
        d = math.hypot(dx, dy) or 1.0
        x1, y1 = a[0] + dx / d * 14, a[1] + dy / d * 14
        x2, y2 = b[0] - dx / d * 14, b[1] - dy / d * 14
        out.append(f'<g class="fact"><title>{escape(f"{subj} {pred} {obj}")}</title>'
                   f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                   f'marker-end="url(#arrow)"/><text x="{(x1 + x2) / 2:.1f}" '
                   f'y="{(y1 + y2) / 2 - 4:.1f}">{escape(_short(pred, 18))}</text></g>')
    out.append(f'<g class="node passage"><title>item {item_id}</title><circle cx="{cx:.1f}" '
               f'cy="{cy:.1f}" r="18"/><text x="{cx:.1f}" y="{cy + 4:.1f}">#{item_id}</text></g>')
    for name in names:
        x, y = pos[name]
        seed = name.lower() in seed_low
        cls = "node seed" if seed else "node"
        href = f"{browse_url}?q={quote(name)}"
        out.append(f'<a href="{escape(href)}"><g class="{cls}"><title>{escape(name)}'
                   f'{" (seed of this query)" if seed else ""}</title>'
                   f'<circle cx="{x:.1f}" cy="{y:.1f}" r="11"/><text x="{x:.1f}" '
                   f'y="{y + 24 if y >= cy else y - 16:.1f}">{escape(_short(name))}</text>'
                   '</g></a>')
    out.append("</svg>")
    return "".join(out)
