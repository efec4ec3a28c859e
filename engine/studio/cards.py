"""The studio's HTML pieces, made of the gallery's: its concept cards, chips and family graph, escaped by its one
escape. Pictures are shown through `file_url`, the web server's address of a file under `--root`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from conceptlab.engine.errors import ConceptLabError
from conceptlab.engine.gallery.html import STYLE, card_html, escaped, graph_svg, negative_chips
from conceptlab.engine.gallery.model import GalleryConcept
from conceptlab.engine.gallery.pictures import PictureLink, roles
from conceptlab.engine.gallery.scan import gallery_graph
from conceptlab.engine.models.plugins import resolve_model

FileUrl = Callable[[Path], str]

CSS = (
    STYLE.replace(":root", ".conceptlab").replace("body {", ".conceptlab-body {").replace("\n* {", "\n.conceptlab * {")
)
"""The gallery's style, scoped to the studio's HTML blocks so it leaves the rest of the page alone."""


def _wrapped(html: str) -> str:
    return f'<div class="conceptlab">{html}</div>'


def concept_card(concept: GalleryConcept, file_url: FileUrl) -> str:
    """The gallery's card of `concept` (pictures, negatives, metrics, parents, record), pictures served live."""
    links = [PictureLink(role, path.name, file_url(path), file_url(path)) for role, path in roles(concept)]
    return _wrapped(card_html(concept, links, set()))


def family_html(concepts: Sequence[GalleryConcept]) -> str:
    """The gallery's family graph of every concept in the library."""
    if not concepts:
        return _wrapped('<p class="none">no concepts yet</p>')
    return _wrapped(f'<div class="graph">{graph_svg(gallery_graph(concepts), set())}</div>')


def chips(negatives: Sequence[dict[str, Any]]) -> str:
    """Negatives as they joined a run (`word`, `step`, `source`), as the gallery's chips."""
    return _wrapped(negative_chips(list(negatives)))


def imagined_html(images: Sequence[tuple[int, Path | None, Sequence[dict[str, Any]]]], file_url: FileUrl) -> str:
    """Imagine's images as they come: each seed with its picture once written, and its negatives so far."""
    figures = []
    for seed, path, entries in images:
        picture = (
            f'<img src="{escaped(file_url(path))}" alt="seed {seed}" width="128" height="128">'
            if path is not None
            else '<span class="hint">denoising…</span>'
        )
        figures.append(
            f'<figure class="imagined" data-seed="{seed}">{picture}<figcaption>seed {seed}</figcaption>'
            f"{negative_chips(entries)}</figure>"
        )
    return _wrapped(f'<div class="pictures imagined-images">{"".join(figures)}</div>')


def metrics_table(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> str:
    """Evaluation rows (`EvaluationRow.as_json`) as an HTML table: mean ± std (n) per metric, names escaped."""
    head = "".join(f"<th>{escaped(metric)}</th>" for metric in metrics)
    lines = []
    for row in rows:
        cells = []
        for metric in metrics:
            summary = (row.get("metrics") or {}).get(metric) or {}
            mean, std = summary.get("mean"), summary.get("std")
            shown = f"{mean:.3f}" if _finite(mean) else "—"
            shown += f" ± {std:.3f}" if _finite(mean) and _finite(std) else ""
            cells.append(f'<td class="num" data-metric="{escaped(metric)}">{escaped(shown)}</td>')
        lines.append(f'<tr><th class="row">{escaped(row.get("name"))}</th>{"".join(cells)}</tr>')
    return _wrapped(f'<table class="metrics"><tr><th>row</th>{head}</tr>{"".join(lines)}</table>')


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _prior_reference(metadata: dict[str, Any]) -> str:
    """The hub id or folder of the prior the concept records (a backend name stands for its default weights)."""
    recorded = str(metadata.get("model") or "")
    try:
        return resolve_model(recorded, metadata.get("backend"))[1]
    except (ConceptLabError, TypeError):
        return recorded or "MODEL"


def loading_snippet(concept_path: Path, metadata: dict[str, Any]) -> str:
    """The lines that load the concept into a stock diffusers prior pipeline (docs/portability.md's snippet), with
    the model it records."""
    model = json.dumps(_prior_reference(metadata))
    return "\n".join(
        (
            "import torch",
            "from diffusers import DiffusionPipeline",
            "from conceptlab.engine import load_into",
            "",
            f"prior = DiffusionPipeline.from_pretrained({model})",
            f"token = load_into(prior, {json.dumps(str(concept_path))})",
            'out = prior(f"a photo of a {token}", generator=torch.Generator().manual_seed(42))  # out.image_embeds',
        )
    )
