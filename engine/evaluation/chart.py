"""The results figure, drawn with matplotlib: a grouped-bar panel per metric (categories × methods, error bars from
the std), and a novelty-vs-validity scatter with one point per method when a judge answered.

Bars show the same numbers as the CSV: a row's mean and std, or, where several rows share a category and method,
their pooled values (`pool_metric`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from conceptlab.engine.evaluation.evaluate import EvaluationRow
from conceptlab.engine.evaluation.metrics import LOWER_IS_BETTER, METRIC_NAMES, Summary, pool_metric
from conceptlab.engine.io.figures import write_figure

METHOD_COLORS = ("#1a7f37", "#0969da", "#cf222e", "#bf8700", "#8250df", "#57606a", "#bf3989", "#e16f24")
SCATTER_AXES = ("novelty", "validity")
"""Where methods trade off: how new their images are (x) against how often they still show the category (y)."""
PANEL_COLUMNS = 3


def bar_values(rows: Sequence[EvaluationRow], metric: str) -> dict[str, dict[str, Summary]]:
    """category -> method -> the metric over that method's rows in the category (rows without it are left out)."""
    grouped: dict[str, dict[str, list[Summary]]] = {}
    for row in rows:
        summary = row.metrics.metrics.get(metric)
        if summary and summary.n:
            grouped.setdefault(row.metrics.category, {}).setdefault(row.method, []).append(summary)
    return {
        category: {method: pool_metric(metric, summaries) for method, summaries in methods.items()}
        for category, methods in grouped.items()
    }


def method_values(rows: Sequence[EvaluationRow], metric: str) -> dict[str, Summary]:
    """method -> the metric over all its rows, every category pooled (a point of the scatter)."""
    grouped: dict[str, list[Summary]] = {}
    for row in rows:
        summary = row.metrics.metrics.get(metric)
        if summary and summary.n:
            grouped.setdefault(row.method, []).append(summary)
    return {method: pool_metric(metric, summaries) for method, summaries in grouped.items()}


def _spread(summary: Summary) -> float:
    return 0.0 if math.isnan(summary.std) else summary.std


def _bar_panel(axes: Axes, metric: str, values: dict[str, dict[str, Summary]], methods: list[str]) -> None:
    """One group of bars per category, one bar per method, labelled by method (the legend)."""
    categories = list(values)
    width = 0.8 / max(1, len(methods))
    for index, method in enumerate(methods):
        present = [(i, values[c][method]) for i, c in enumerate(categories) if method in values[c]]
        if not present:
            continue
        x = [i - 0.4 + width * (index + 0.5) for i, _ in present]
        heights = [summary.mean for _, summary in present]
        errors = [_spread(summary) for _, summary in present]
        color = METHOD_COLORS[index % len(METHOD_COLORS)]
        axes.bar(x, heights, width * 0.92, yerr=errors, capsize=3, color=color, label=method, gid=method)
    axes.set_xticks(range(len(categories)), categories)
    axes.set_xlim(-0.5, len(categories) - 0.5)  # the groups stay in place when a method has no bar
    arrow = "↓ lower is better" if metric in LOWER_IS_BETTER else "↑ higher is better"
    axes.set_title(f"{metric} ({arrow})", fontsize="medium")
    axes.grid(axis="y", alpha=0.3)
    axes.axhline(0, color="#444444", linewidth=0.6)


def _scatter_panel(axes: Axes, rows: Sequence[EvaluationRow], methods: list[str]) -> None:
    x_metric, y_metric = SCATTER_AXES
    xs, ys = method_values(rows, x_metric), method_values(rows, y_metric)
    for index, method in enumerate(m for m in methods if m in xs and m in ys):
        x, y = xs[method], ys[method]
        color = METHOD_COLORS[methods.index(method) % len(METHOD_COLORS)]
        axes.errorbar(x.mean, y.mean, xerr=_spread(x), yerr=_spread(y), fmt="none", ecolor=color, alpha=0.5)
        axes.scatter([x.mean], [y.mean], s=60, color=color, label=method, gid=method, zorder=3)
        axes.annotate(method, (x.mean, y.mean), textcoords="offset points", xytext=(6, 4 + 8 * (index % 2)))
    axes.set(xlabel=f"{x_metric} →", ylabel=f"{y_metric} →")
    axes.set_title("trade-off (up and right is better)", fontsize="medium")
    axes.grid(alpha=0.3)


def has_scatter(rows: Sequence[EvaluationRow]) -> bool:
    return all(any(metric in row.metrics.metrics for row in rows) for metric in SCATTER_AXES)


def metrics_figure(rows: Sequence[EvaluationRow], title: str) -> Figure:
    """Every metric the rows have as a panel of grouped bars, then the scatter; the size follows the counts."""
    methods = list(dict.fromkeys(row.method for row in rows))
    metrics = [metric for metric in METRIC_NAMES if bar_values(rows, metric)]
    categories = len({row.metrics.category for row in rows})
    panels = len(metrics) + has_scatter(rows)
    columns = min(PANEL_COLUMNS, max(1, panels))
    lines = math.ceil(panels / columns)
    panel_width = max(3.2, 1.0 + 0.32 * categories * max(1, len(methods)))
    figure = Figure(figsize=(panel_width * columns + 1.5, 2.9 * lines + 0.8), layout="constrained")
    grid = figure.subplots(lines, columns, squeeze=False)
    for axes, metric in zip(grid.flat, metrics, strict=False):
        _bar_panel(axes, metric, bar_values(rows, metric), methods)
    if has_scatter(rows):
        _scatter_panel(grid.flat[len(metrics)], rows, methods)
    for axes in list(grid.flat)[panels:]:
        axes.set_visible(False)
    handles, labels = grid.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(methods), 6), frameon=False)
    figure.suptitle(title)
    return figure


def save_metrics_chart(rows: Sequence[EvaluationRow], path: Path, title: str) -> None:
    """The figure as PNG, SVG or PDF (by `path`'s extension), written atomically."""
    write_figure(path, metrics_figure(rows, title))
