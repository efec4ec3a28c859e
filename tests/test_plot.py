"""The similarity plot draws each constraint's moving average where its values are, from the step it was added."""

import pytest

from conceptlab.engine.training.similarity_plot import moving_average, save_similarity_plot, similarity_figure


def _records(positive: float, negative: float, steps: int = 50) -> list[dict]:
    return [
        {"step": i + 1, "positive": {"pet": positive}, "negative": {"cat": negative + 0.001 * i}} for i in range(steps)
    ]


def _lines(figure) -> dict[str, tuple[list[float], list[float]]]:
    axes = figure.axes[0]
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes.get_lines()}


def test_moving_average_is_a_trailing_mean():
    assert moving_average([1.0, 2.0, 3.0, 4.0], 2) == [1.0, 1.5, 2.5, 3.5]
    assert moving_average([2.0], 5) == [2.0]


def test_each_constraint_is_drawn_at_its_values_with_the_clamp():
    records = _records(positive=0.4, negative=0.1)
    lines = _lines(similarity_figure(records, "t", clamps=[("+ clamp", 0.28)]))
    assert set(lines) == {"+ pet", "- cat", "+ clamp"}
    steps, values = lines["- cat"]
    assert steps == list(range(1, 51))
    assert values == pytest.approx(moving_average([0.1 + 0.001 * i for i in range(50)], 2))
    assert lines["+ pet"][1] == pytest.approx([0.4] * 50)
    assert lines["+ clamp"][1] == pytest.approx([0.28, 0.28])


def test_only_constraints_of_the_run_are_drawn():
    records = [{"step": 1, "positive": {"a": 0.3}, "negative": {}}, {"step": 2, "positive": {"a": 0.2}, "negative": {}}]
    assert set(_lines(similarity_figure(records, "mix"))) == {"+ a"}


def test_a_negative_added_late_starts_where_it_was_added():
    records = [
        {"step": i + 1, "positive": {"pet": 0.3}, "negative": {"cat": 0.2, **({"hamster": 0.25} if i >= 30 else {})}}
        for i in range(60)
    ]
    lines = _lines(similarity_figure(records, "adaptive"))
    steps, values = lines["- hamster (from step 31)"]
    assert steps[0] == 31 and steps[-1] == 60 and values == pytest.approx([0.25] * 30)


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_the_file_format_follows_the_extension(tmp_path, suffix, magic):
    path = tmp_path / f"similarities{suffix}"
    save_similarity_plot(_records(0.3, 0.2), path, "t")
    assert path.read_bytes().startswith(magic)
