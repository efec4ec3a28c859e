"""The similarity plot of a run (the paper's figure of similarities over training), drawn with matplotlib."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from conceptlab.engine.io.figures import write_figure

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


def similarity_series(records: Sequence[dict]) -> list[tuple[str, str, list[int], list[float]]]:
    """(label, color, steps, smoothed values) per constraint; an adaptive negative starts at the step it was added."""
    window = max(1, len(records) // 25)
    series = []
    for group, colors, prefix in (("positive", POSITIVE_COLORS, "+"), ("negative", NEGATIVE_COLORS, "-")):
        words = list(dict.fromkeys(word for record in records for word in record[group]))
        for index, word in enumerate(words):
            start = next(i for i, record in enumerate(records) if word in record[group])
            values = [record[group].get(word, float("nan")) for record in records[start:]]
            steps = [record["step"] for record in records[start:]]
            label = f"{prefix} {word}" + (f" (from step {records[start]['step']})" if start else "")
            series.append((label, colors[index % len(colors)], steps, moving_average(values, window)))
    return series


def similarity_figure(records: Sequence[dict], title: str, clamps: Sequence[tuple[str, float]] = ()) -> Figure:
    """Similarity of the concept's prior output to each positive and negative word, per step.

    `clamps` are dashed lines: past them a constraint stops pulling (the objective's thresholds).
    """
    figure = Figure(figsize=(9, 4.8), layout="constrained")
    axes = figure.add_subplot()
    for label, color, steps, values in similarity_series(records):
        axes.plot(steps, values, color=color, linewidth=1.8, label=label)
    for label, value in clamps:
        axes.axhline(value, color="#888888", linestyle="--", linewidth=1, label=label)
    axes.set(title=title, xlabel="step", ylabel="cosine similarity (moving average)")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize="small")
    return figure


def save_similarity_plot(
    records: Sequence[dict], path: Path, title: str, clamps: Sequence[tuple[str, float]] = ()
) -> None:
    write_figure(path, similarity_figure(records, title, clamps))
