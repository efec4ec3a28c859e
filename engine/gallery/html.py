"""The gallery page: one self-contained HTML file (inline CSS and SVG, no script, nothing fetched).

Every text that comes from a file (a concept's metadata, an evaluation JSON found under the folder) is written
through `_text`, the one HTML escape: tokens look like `<pet>`, and a shared file may hold `<script>`. Every number
from a file goes through `_number` or `_count`, which write only finite numbers (anything else shows as a dash).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from conceptlab.engine.evaluation.metrics import METRIC_NAMES
from conceptlab.engine.gallery.layout import COLUMN_GAP, FamilyGraph, GraphEdge, GraphNode
from conceptlab.engine.gallery.model import GalleryConcept, concept_anchor
from conceptlab.engine.gallery.pictures import PictureLink

TOKEN_CHARACTERS_IN_NODE = 22
METRIC_LABELS = {
    "positive": ("positive similarity", "to the category; higher is better"),
    "negative": ("negative similarity", "to the closest negative; lower is better"),
    "novelty": ("novelty", "1 − similarity to the closest known member"),
    "diversity": ("diversity", "mean distance between its images"),
    "parent": ("parent similarity", "weighted similarity to its parents' images"),
    "typicality": ("typicality", "category similarity ÷ closest member's"),
    "vendi": ("Vendi score", "effective number of distinct images"),
    "variance": ("total variance", "spread of its image embeddings"),
    "validity": ("validity", "judged still a member of the category"),
    "vqa-novelty": ("VQA novelty", "judged not a known member"),
    "render-seconds": ("render seconds", "per image"),
    "train-seconds": ("train seconds", "per concept"),
}
SOURCE_LABELS = {"oracle": "adaptive", "given": "given", "gradual": "gradual"}

STYLE = """
:root { --ink: #1f2430; --muted: #667085; --line: #e4e7ec; --paper: #f7f5f0; --card: #ffffff;
  --create: #2f6fde; --mix: #8a4fd8; --evolve: #1f9d6b; --other: #7a7f8c; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  background: var(--paper); }
header { padding: 28px 40px 8px; }
header h1 { margin: 0; font-size: 28px; letter-spacing: -0.02em; }
header p { margin: 4px 0 0; color: var(--muted); }
section { padding: 12px 40px; }
h2 { font-size: 18px; margin: 12px 0; }
.graph { background: var(--card); border: 1px solid var(--line); border-radius: 14px; padding: 8px; overflow-x: auto; }
.graph svg { display: block; }
.node rect { fill: #fff; stroke-width: 2; }
.node.create rect { stroke: var(--create); } .node.mix rect { stroke: var(--mix); }
.node.evolve rect { stroke: var(--evolve); } .node.other rect { stroke: var(--other); }
.node.missing rect { stroke: #b0b5c0; stroke-dasharray: 6 4; fill: #fafafa; }
.node .token { font: 600 14px ui-monospace, SFMono-Regular, Menlo, monospace; fill: var(--ink); }
.node .what { font-size: 12px; fill: var(--muted); }
.node.missing .token { fill: var(--muted); }
a:hover .node rect { fill: #f0f5ff; }
.edge { fill: none; stroke: #98a2b3; stroke-width: 1.6; }
.weight { font-size: 12px; fill: var(--ink); paint-order: stroke; stroke: #fff; stroke-width: 4px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 22px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 14px; overflow: hidden;
  box-shadow: 0 1px 2px rgba(16,24,40,.05); }
.card:target { outline: 3px solid var(--create); }
.pictures { background: #111318; padding: 10px; display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; }
.pictures figure { margin: 0; }
.pictures img { display: block; border-radius: 6px; image-rendering: pixelated; background: #222; }
.pictures .strip img { max-width: 100%; height: auto; }
.pictures .grid img { width: 100%; max-width: 360px; height: auto; }
.pictures .similarities img { width: 100%; height: auto; image-rendering: auto; }
.pictures .strip, .pictures .similarities, .pictures .grid { flex-basis: 100%; }
.pictures .render img { width: 96px; height: 96px; object-fit: cover; }
.pictures figcaption { color: #aab; font-size: 11px; margin-top: 2px; }
.body { padding: 14px 18px 18px; }
.title { display: flex; align-items: baseline; gap: 10px; flex-wrap: wrap; }
.title h3 { margin: 0; font: 600 20px ui-monospace, SFMono-Regular, Menlo, monospace; }
.badge { font-size: 12px; padding: 1px 8px; border-radius: 999px; color: #fff; background: var(--other); }
.badge.create { background: var(--create); } .badge.mix { background: var(--mix); }
.badge.evolve { background: var(--evolve); }
.category { color: var(--muted); }
.chips { display: flex; flex-wrap: wrap; gap: 6px; margin: 10px 0; padding: 0; list-style: none; }
.chip { border: 1px solid var(--line); border-radius: 999px; padding: 2px 10px; font-size: 13px; background: #fbfbfd; }
.chip .meta { color: var(--muted); font-size: 11px; margin-left: 4px; }
.chip.oracle { border-color: #f2b8a0; background: #fff4ee; }
.chip.gradual { border-color: #c8b8f0; background: #f6f2ff; }
h4 { margin: 14px 0 4px; font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); }
td.num { font-variant-numeric: tabular-nums; text-align: right; white-space: nowrap; }
.hint { color: var(--muted); font-size: 11px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; font-size: 13px; margin: 0; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.parents { margin: 0; padding-left: 18px; font-size: 14px; }
.none { color: var(--muted); font-size: 13px; }
footer { padding: 20px 40px 40px; color: var(--muted); font-size: 12px; }
"""


def _text(value: Any) -> str:
    return escape(str(value), quote=True)


def _url(path: str) -> str:
    return _text(quote(path))


def _kind_class(kind: str | None) -> str:
    return kind if kind in ("create", "mix", "evolve") else "other"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any, spec: str = ".3f") -> str:
    return format(value, spec) if _is_number(value) else "&ndash;"


def _count(value: Any) -> int | None:
    """A number of images from a file: a positive whole number, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _node_svg(node: GraphNode, anchors: set[str]) -> str:
    what = _shorten(" · ".join(part for part in (node.kind, node.category) if part), TOKEN_CHARACTERS_IN_NODE + 8)
    status = "" if node.in_gallery else " · not in DIR"
    classes = f"node {_kind_class(node.kind)}" + ("" if node.in_gallery else " missing")
    body = (
        f'<g class="{classes}" data-sha256="{_text(node.sha256)}" transform="translate({node.x:g},{node.y:g})">'
        f"<title>{_text(node.token)} {_text(node.sha256)}</title>"
        f'<rect width="{node.width:g}" height="{node.height:g}" rx="10"/>'
        f'<text class="token" x="12" y="24">{_text(_shorten(node.token, TOKEN_CHARACTERS_IN_NODE))}</text>'
        f'<text class="what" x="12" y="44">{_text(what)}</text>'
        f'<text class="what" x="12" y="62">{_text(node.sha256[:8] + status)}</text></g>'
    )
    anchor = concept_anchor(node.sha256)
    return f'<a href="#{_text(anchor)}">{body}</a>' if anchor in anchors else body


def _curve(start: tuple[float, float], end: tuple[float, float]) -> tuple[tuple[float, float], ...]:
    """The Bézier control points of a smooth horizontal S from `start` to `end`."""
    bend = (end[0] - start[0]) / 2
    return start, (start[0] + bend, start[1]), (end[0] - bend, end[1]), end


def _edge_svg(edge: GraphEdge) -> str:
    """Curves between columns and straight runs along the lanes it takes; the weight in the gap before the child."""
    *route, (end_x, end_y) = edge.route
    route.append((end_x - 4, end_y))  # room for the arrowhead
    path = f"M{route[0][0]:g},{route[0][1]:g}"
    for index in range(0, len(route) - 1, 2):
        _, first, second, end = _curve(route[index], route[index + 1])
        path += f" C{first[0]:g},{first[1]:g} {second[0]:g},{second[1]:g} {end[0]:g},{end[1]:g}"
        if index + 2 < len(route):
            path += f" L{route[index + 2][0]:g},{route[index + 2][1]:g}"
    label = "" if edge.weight is None else _number(edge.weight, "g")
    label_x = end_x - COLUMN_GAP / 2  # in the gap before the child, where no node is
    label_y = _curve_y_at(label_x, *_curve(route[-2], route[-1]))
    return (
        f'<path class="edge" data-parent="{_text(edge.parent)}" data-child="{_text(edge.child)}" d="{path}" '
        f'marker-end="url(#arrow)"/>'
        f'<text class="weight" x="{label_x:g}" y="{label_y - 5:g}" text-anchor="middle">{label}</text>'
    )


def _curve_y_at(x: float, *points: tuple[float, float]) -> float:
    """The y of a cubic Bézier whose x grows monotonically, where its x is `x` (found by bisection)."""

    def at(t: float, index: int) -> float:
        p0, p1, p2, p3 = (point[index] for point in points)
        return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3

    low, high = 0.0, 1.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if at(middle, 0) < x else (low, middle)
    return at(low, 1)


def graph_svg(graph: FamilyGraph, anchors: set[str]) -> str:
    """The family graph as inline SVG; nodes whose concept has a card link to it."""
    marker = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#98a2b3"/></marker></defs>'
    )
    edges = "".join(_edge_svg(edge) for edge in graph.edges)
    nodes = "".join(_node_svg(node, anchors) for node in graph.nodes)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="family" width="{graph.width:g}" height="{graph.height:g}" '
        f'viewBox="0 0 {graph.width:g} {graph.height:g}" role="img" aria-label="family graph">'
        f"{marker}{edges}{nodes}</svg>"
    )


def _pictures_html(links: Sequence[PictureLink]) -> str:
    if not links:
        return '<div class="pictures"><span class="hint">no pictures in its run folder</span></div>'
    figures = []
    for link in links:
        image = f'<img src="{_url(link.shown)}" alt="{_text(link.role)}: {_text(link.caption)}" loading="eager">'
        figures.append(
            f'<figure class="{_text(link.role)}"><a href="{_url(link.full)}">{image}</a>'
            f"<figcaption>{_text(link.caption)}</figcaption></figure>"
        )
    return f'<div class="pictures">{"".join(figures)}</div>'


def _negatives_html(metadata: dict[str, Any]) -> str:
    entries = [entry for entry in metadata.get("negatives") or [] if isinstance(entry, dict)]
    if not entries:
        return '<p class="none">no negatives</p>'
    chips = []
    for entry in entries:
        source = str(entry.get("source", "given"))
        meta = f"step {entry.get('step', 0)} · {SOURCE_LABELS.get(source, source)}"
        chips.append(
            f'<li class="chip {_text(source)}">{_text(entry.get("word"))}<span class="meta">{_text(meta)}</span></li>'
        )
    return f'<ul class="chips">{"".join(chips)}</ul>'


def _summary_cell(summary: Any) -> str:
    count = _count(summary.get("n")) if isinstance(summary, dict) else None
    if count is None:
        return '<td class="num">&ndash;</td>'
    return f'<td class="num">{_number(summary.get("mean"))} ± {_number(summary.get("std"))} (n {count})</td>'


def _metrics_html(row: dict[str, Any] | None) -> str:
    if row is None:
        return '<p class="none">not evaluated (run <code>conceptlab evaluate CONCEPT --json</code>)</p>'
    metrics = row.get("metrics") or {}
    lines = []
    for name in METRIC_NAMES:
        if name in metrics:
            label, hint = METRIC_LABELS[name]
            lines.append(
                f'<tr data-metric="{name}"><th>{label} <span class="hint">{hint}</span></th>'
                f"{_summary_cell(metrics[name])}</tr>"
            )
    for parent, entry in (row.get("parents") or {}).items():
        weight = entry.get("weight") if isinstance(entry, dict) else None
        lines.append(
            f'<tr><th>↳ parent {_text(parent)} <span class="hint">weight {_number(weight)}</span></th>'
            f"{_summary_cell(entry.get('similarity') if isinstance(entry, dict) else None)}</tr>"
        )
    return f"<table>{''.join(lines)}</table>"


def _parents_html(metadata: dict[str, Any], anchors: set[str]) -> str:
    parents = [parent for parent in metadata.get("parents") or [] if isinstance(parent, dict)]
    if not parents:
        return ""
    items = []
    for parent in parents:
        sha = str(parent.get("sha256", ""))
        name = f'<code>{_text(parent.get("token"))}</code> <span class="hint">{_text(sha[:8])}</span>'
        anchor = concept_anchor(sha)
        linked = f'<a href="#{_text(anchor)}">{name}</a>' if anchor in anchors else f"{name} (not in DIR)"
        items.append(f"<li>{linked} — weight {_number(parent.get('weight'))}</li>")
    return f'<h4>Parents</h4><ul class="parents">{"".join(items)}</ul>'


def _positives(metadata: dict[str, Any]) -> str | None:
    """The words it was pulled toward with their weights, when they say more than its category (a mix)."""
    words = [str(word) for word in metadata.get("positives") or []]
    if not words or words == [metadata.get("category")]:
        return None
    weights = metadata.get("weights") or []
    if len(weights) != len(words):
        return ", ".join(words)
    return ", ".join(f"{word} {_number(weight)}" for word, weight in zip(words, weights, strict=True))


def _details_html(concept: GalleryConcept) -> str:
    meta = concept.metadata
    model = " / ".join(str(part) for part in (meta.get("backend"), meta.get("model")) if part)
    rows = [
        ("positives", _positives(meta)),
        ("initializer", meta.get("initializer")),
        ("model", model or None),
        ("steps · seed", f"{meta.get('steps', '?')} · {meta.get('seed', '?')}"),
        ("created", meta.get("created")),
        ("sha256", concept.sha256[:16]),
        ("files", ", ".join(str(path) for path in concept.paths)),
    ]
    cells = "".join(f"<dt>{label}</dt><dd>{_text(value)}</dd>" for label, value in rows if value is not None)
    return f"<h4>Record</h4><dl>{cells}</dl>"


def card_html(concept: GalleryConcept, links: Sequence[PictureLink], anchors: set[str]) -> str:
    """One concept's card: pictures first, then negatives, metrics, parents and its record."""
    meta = concept.metadata
    kind = meta.get("kind")
    category = f'<span class="category">{_text(meta["category"])}</span>' if meta.get("category") else ""
    return (
        f'<article class="card" id="{_text(concept.anchor)}" data-sha256="{_text(concept.sha256)}">'
        f"{_pictures_html(links)}"
        f'<div class="body"><div class="title"><h3 class="token">{_text(concept.token)}</h3>'
        f'<span class="badge {_kind_class(kind)}">{_text(kind or "concept")}</span>{category}</div>'
        f"<h4>Negatives</h4>{_negatives_html(meta)}"
        f"<h4>Metrics</h4>{_metrics_html(concept.metrics)}"
        f"{_parents_html(meta, anchors)}{_details_html(concept)}</div></article>"
    )


def gallery_html(
    concepts: Sequence[GalleryConcept],
    graph: FamilyGraph,
    links: dict[str, Sequence[PictureLink]],
    extra_sections: str = "",
) -> str:
    """The whole page; `links`: each concept's copied pictures, by sha256."""
    anchors = {concept.anchor for concept in concepts}
    absent = sum(not node.in_gallery for node in graph.nodes)
    summary = f"{len(concepts)} concept{'s' if len(concepts) != 1 else ''}"
    summary += f", {absent} ancestor{'s' if absent != 1 else ''} known only from their children" if absent else ""
    position = {node.sha256: (node.generation, node.y) for node in graph.nodes}
    ordered = sorted(concepts, key=lambda concept: position[concept.sha256])  # ancestors first, as in the graph
    cards = "".join(card_html(concept, links.get(concept.sha256, ()), anchors) for concept in ordered)
    evaluated = sum(concept.metrics is not None for concept in concepts)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>conceptlab gallery</title><style>{STYLE}</style></head><body>"
        f"<header><h1>Concept gallery</h1><p>{_text(summary)} · {evaluated} with metrics</p></header>"
        f'<section><h2>Family</h2><div class="graph">{graph_svg(graph, anchors)}</div></section>'
        f'<section><h2>Concepts</h2><div class="cards">{cards}</div></section>{extra_sections}'
        "<footer>Made by <code>conceptlab gallery</code>. Dashed nodes: ancestors recorded in a child's lineage "
        "whose own file is not in the folder.</footer></body></html>\n"
    )


def escaped(value: Any) -> str:
    """Text from a file made safe in HTML: the one escape of the gallery's page and the studio's."""
    return _text(value)


def negative_chips(negatives: Any) -> str:
    """Negatives (`word`, `step`, `source` each) as the cards' chips, escaped."""
    return _negatives_html({"negatives": negatives})
