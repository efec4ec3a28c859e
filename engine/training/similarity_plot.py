"""The similarity plot of a run (the paper's figure of similarities over training), drawn with Pillow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from conceptlab.engine.io.images import write_png

WIDTH, HEIGHT = 1040, 560
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 280, 64, 60
POSITIVE_COLORS = ("#1a7f37", "#2da44e", "#4ac26b", "#6fdd8b")
NEGATIVE_COLORS = ("#cf222e", "#e16f24", "#bf8700", "#8250df", "#bf3989", "#0969da", "#57606a", "#a40e26")


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over `window` steps: each step samples one template and one noise, so raw curves jitter."""
    averaged, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        averaged.append(total / min(index + 1, window))
    return averaged


def _series(records: Sequence[dict]) -> list[tuple[str, str, int, list[float]]]:
    """(label, color, first step index, smoothed values) per constraint; adaptive negatives start late."""
    window = max(1, len(records) // 25)
    series = []
    for group, colors, prefix in (("positive", POSITIVE_COLORS, "+"), ("negative", NEGATIVE_COLORS, "-")):
        words = list(dict.fromkeys(word for record in records for word in record[group]))
        for index, word in enumerate(words):
            start = next(i for i, record in enumerate(records) if word in record[group])
            values = [record[group].get(word, float("nan")) for record in records[start:]]
            label = f"{prefix} {word}" + (f" (from step {records[start]['step']})" if start else "")
            series.append((label, colors[index % len(colors)], start, moving_average(values, window)))
    return series


def _dashed_line(draw: ImageDraw.ImageDraw, x0: float, x1: float, y: float, color: str) -> None:
    for start in range(int(x0), int(x1), 12):
        draw.line([start, y, min(start + 6, x1), y], fill=color, width=1)


def render_similarity_plot(
    records: Sequence[dict], title: str, clamps: Sequence[tuple[str, float]] = ()
) -> Image.Image:
    """Similarity of the concept's prior output to each positive and negative word, per step.

    `clamps` are drawn as dashed lines: past them a constraint stops pulling (the objective's thresholds).
    """
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font, title_font = ImageFont.load_default(size=13), ImageFont.load_default(size=16)
    series = _series(records)
    values = [v for *_, line in series for v in line] or [0.0, 1.0]
    values += [value for _, value in clamps]
    low, high = min(values) - 0.02, max(values) + 0.02
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    steps = max(1, len(records))

    def point(step_index: int, value: float) -> tuple[float, float]:
        x = MARGIN_LEFT + plot_w * step_index / max(1, steps - 1)
        y = MARGIN_TOP + plot_h * (1 - (value - low) / (high - low))
        return x, y

    draw.rectangle([MARGIN_LEFT, MARGIN_TOP, MARGIN_LEFT + plot_w, MARGIN_TOP + plot_h], outline="#888888")
    for tick in range(6):
        value = low + (high - low) * tick / 5
        _, y = point(0, value)
        draw.line([MARGIN_LEFT - 4, y, MARGIN_LEFT + plot_w, y], fill="#eeeeee")
        draw.text((8, y - 6), f"{value:.2f}", fill="black", font=font)
    for tick in range(6):
        index = round((steps - 1) * tick / 5)
        x, _ = point(index, low)
        draw.text((x - 10, HEIGHT - MARGIN_BOTTOM + 8), str(records[index]["step"] if records else 0), fill="black")
    for label, value in clamps:
        _, y = point(0, value)
        _dashed_line(draw, MARGIN_LEFT, MARGIN_LEFT + plot_w, y, "#888888")
        draw.text((MARGIN_LEFT + plot_w + 6, y - 7), label, fill="#666666", font=font)
    draw.text((MARGIN_LEFT, 10), title, fill="black", font=title_font)
    draw.text((MARGIN_LEFT + plot_w // 2 - 20, HEIGHT - 24), "step", fill="black", font=font)
    draw.text((8, MARGIN_TOP - 22), "cosine similarity (moving average)", fill="black", font=font)
    for row, (label, color, start, line) in enumerate(series):
        if len(line) > 1:
            draw.line([point(start + i, v) for i, v in enumerate(line)], fill=color, width=2)
        legend_x, legend_y = WIDTH - MARGIN_RIGHT + 70, MARGIN_TOP + 18 * row
        draw.line([legend_x, legend_y + 7, legend_x + 25, legend_y + 7], fill=color, width=3)
        draw.text((legend_x + 31, legend_y), label, fill="black", font=font)
    return image


def save_similarity_plot(
    records: Sequence[dict], path: Path, title: str, clamps: Sequence[tuple[str, float]] = ()
) -> None:
    write_png(path, render_similarity_plot(records, title, clamps))
