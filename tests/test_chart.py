"""The results figure shows the CSV's numbers: bar heights are the means, error bars the std, one scatter point
per method; its size follows the counts; its format follows the file's extension."""

import csv
import io

import pytest
from matplotlib.container import BarContainer

from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.chart import metrics_figure, save_metrics_chart
from conceptlab.engine.evaluation.evaluate import EvaluationRow, results_csv
from conceptlab.engine.evaluation.metrics import ConceptMetrics, Summary


def _row(method: str, category: str, offset: float, validity: bool = True) -> EvaluationRow:
    metrics = {
        "positive": Summary(0.30 + offset, 0.02 + offset / 10, 8),
        "novelty": Summary(0.50 - offset, 0.04, 8),
        "vendi": Summary.of_set(3.0 + 10 * offset, 8),
    }
    if validity:
        metrics["validity"] = Summary(0.9 - offset, 0.3, 8)
    return EvaluationRow(method, ConceptMetrics(f"{method} {category}", category, ("cat",), metrics, {}))


ROWS = [
    _row(method, category, 0.01 * m + 0.05 * c)
    for c, category in enumerate(["pet", "plant", "garment"])
    for m, method in enumerate(["concept", "plain", "sd-neg"])
]


def _panels(figure) -> dict[str, object]:
    return {axes.get_title().split(" (")[0]: axes for axes in figure.axes if axes.get_visible()}


def test_bars_and_error_bars_are_the_csv_means_and_stds():
    table = list(csv.DictReader(io.StringIO(results_csv(ROWS))))
    panels = _panels(metrics_figure(ROWS, "t"))
    assert set(panels) == {"positive", "novelty", "vendi", "validity", "trade-off"}
    for metric in ("positive", "novelty", "vendi", "validity"):
        axes = panels[metric]
        categories = [label.get_text() for label in axes.get_xticklabels()]
        assert categories == ["pet", "plant", "garment"]
        bars = [container for container in axes.containers if isinstance(container, BarContainer)]
        for container in bars:
            method = container.get_label()
            lines = {line["category"]: line for line in table if line["method"] == method}
            heights = [bar.get_height() for bar in container.patches]
            assert heights == pytest.approx([float(lines[c][f"{metric}_mean"]) for c in categories], abs=1e-6)
            segments = container.errorbar.lines[2][0].get_segments()
            spreads = [(segment[1][1] - segment[0][1]) / 2 for segment in segments]
            stds = [float(lines[c][f"{metric}_std"] or 0) for c in categories]
            assert spreads == pytest.approx(stds, abs=1e-6)
        assert [c.get_label() for c in bars] == ["concept", "plain", "sd-neg"]


def test_the_scatter_has_one_point_per_method_at_its_pooled_novelty_and_validity():
    axes = _panels(metrics_figure(ROWS, "t"))["trade-off"]
    points = {
        c.get_label(): tuple(c.get_offsets()[0])
        for c in axes.collections
        if c.get_label() in ("concept", "plain", "sd-neg")
    }
    assert set(points) == {"concept", "plain", "sd-neg"}
    for method, (x, y) in points.items():
        mine = [row.metrics.metrics for row in ROWS if row.method == method]
        assert x == pytest.approx(sum(m["novelty"].mean for m in mine) / 3)
        assert y == pytest.approx(sum(m["validity"].mean for m in mine) / 3)
    assert "trade-off" not in _panels(metrics_figure([_row("plain", "pet", 0, validity=False)], "t"))


def test_the_layout_fits_the_number_of_categories_and_methods():
    one = metrics_figure([_row("plain", "pet", 0)], "t")
    many = metrics_figure(ROWS, "t")
    assert many.get_size_inches()[0] > one.get_size_inches()[0]
    assert len(_panels(one)) == len(_panels(many)) == 5


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_the_format_follows_the_extension(tmp_path, suffix, magic):
    path = tmp_path / f"summary{suffix}"
    save_metrics_chart(ROWS, path, "t")
    assert path.read_bytes().startswith(magic)


def test_an_unknown_extension_is_refused_in_one_line(tmp_path, run_cli):
    with pytest.raises(UsageError, match=r"\.png, \.svg or \.pdf"):
        save_metrics_chart(ROWS, tmp_path / "summary.jpg", "t")
    assert not (tmp_path / "summary.jpg").exists()
    code, _, err = run_cli("eval", "--images", tmp_path, "--category", "pet", "--plot", tmp_path / "x.gif")
    assert code == 2 and ".png, .svg or .pdf" in err and len(err.strip().splitlines()) == 1
