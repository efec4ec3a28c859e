"""The paper's chart: grouped bars per category for positive and negative similarity, drawn with Pillow."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from conceptlab.engine.evaluation.evaluate import EvaluationRow
from conceptlab.engine.io.images import write_png

WIDTH, PANEL_HEIGHT = 960, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 190, 50, 50
METHOD_COLORS = ("#1a7f37", "#0969da", "#cf222e", "#bf8700", "#8250df", "#57606a")
PANELS = (("positive", "positive similarity (higher is better)"), ("negative", "negative similarity (lower is better)"))


def bar_values(rows: Sequence[EvaluationRow], metric: str) -> dict[str, dict[str, float]]:
    """category -> method -> mean over that method's rows of the metric's mean (rows without it are left out)."""
    grouped: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        summary = row.metrics.metrics.get(metric)
        if summary and summary.n:
            grouped.setdefault(row.metrics.category, {}).setdefault(row.method, []).append(summary.mean)
    return {
        category: {method: statistics.fmean(values) for method, values in methods.items()}
        for category, methods in grouped.items()
    }


def _draw_panel(draw, top: int, values: dict[str, dict[str, float]], methods: list[str], title: str, font) -> None:
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, PANEL_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    numbers = [v for methods_ in values.values() for v in methods_.values()] or [0.0]
    low, high = min(0.0, *numbers), max(*numbers, 0.0) + 0.05
    bottom = top + MARGIN_TOP + plot_h

    def y_of(value: float) -> float:
        return bottom - plot_h * (value - low) / (high - low)

    draw.text((MARGIN_LEFT, top + 14), title, fill="black", font=font)
    draw.rectangle([MARGIN_LEFT, top + MARGIN_TOP, MARGIN_LEFT + plot_w, bottom], outline="#888888")
    for tick in range(5):
        value = low + (high - low) * tick / 4
        draw.line([MARGIN_LEFT - 4, y_of(value), MARGIN_LEFT + plot_w, y_of(value)], fill="#eeeeee")
        draw.text((8, y_of(value) - 6), f"{value:.2f}", fill="black", font=font)
    group_w = plot_w / max(1, len(values))
    bar_w = min(60.0, group_w * 0.8 / max(1, len(methods)))
    for group, (category, by_method) in enumerate(values.items()):
        left = MARGIN_LEFT + group * group_w + group_w * 0.1
        for index, method in enumerate(methods):
            if method in by_method:
                x = left + index * bar_w
                value = by_method[method]
                top_of_bar, base = min(y_of(value), y_of(0)), max(y_of(value), y_of(0))
                draw.rectangle([x, top_of_bar, x + bar_w - 2, base], fill=METHOD_COLORS[index % len(METHOD_COLORS)])
                label_y = base + 2 if value < 0 else top_of_bar - 14
                draw.text((x, label_y), f"{value:.2f}", fill="black", font=font)
        draw.text((left, bottom + 8), category, fill="black", font=font)


def render_metrics_chart(rows: Sequence[EvaluationRow], title: str) -> Image.Image:
    methods = list(dict.fromkeys(row.method for row in rows))
    image = Image.new("RGB", (WIDTH, PANEL_HEIGHT * len(PANELS) + 40), "white")
    draw = ImageDraw.Draw(image)
    font, title_font = ImageFont.load_default(size=13), ImageFont.load_default(size=16)
    draw.text((MARGIN_LEFT, 10), title, fill="black", font=title_font)
    for panel, (metric, label) in enumerate(PANELS):
        _draw_panel(draw, 40 + panel * PANEL_HEIGHT, bar_values(rows, metric), methods, label, font)
    for index, method in enumerate(methods):
        x, y = WIDTH - MARGIN_RIGHT + 30, 40 + MARGIN_TOP + 20 * index
        draw.rectangle([x, y, x + 16, y + 12], fill=METHOD_COLORS[index % len(METHOD_COLORS)])
        draw.text((x + 24, y), method, fill="black", font=font)
    return image


def save_metrics_chart(rows: Sequence[EvaluationRow], path: Path, title: str) -> None:
    write_png(path, render_metrics_chart(rows, title))
