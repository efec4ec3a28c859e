"""The similarity plot draws each constraint where its values are."""

from PIL import ImageColor

from conceptlab.engine.training.similarity_plot import (
    MARGIN_RIGHT,
    NEGATIVE_COLORS,
    POSITIVE_COLORS,
    WIDTH,
    moving_average,
    render_similarity_plot,
)


def _records(positive: float, negative: float, steps: int = 50) -> list[dict]:
    return [
        {"step": i + 1, "positive": {"pet": positive}, "negative": {"cat": negative + 0.001 * i}} for i in range(steps)
    ]


def _rows_with_color(image, color: str) -> list[int]:
    """Rows of the plot area (left of the legend) holding pixels of `color`."""
    rgb = ImageColor.getrgb(color)
    height = image.height
    pixels = image.load()
    return [y for y in range(height) for x in range(WIDTH - MARGIN_RIGHT) if pixels[x, y] == rgb]


def test_moving_average_is_a_trailing_mean():
    assert moving_average([1.0, 2.0, 3.0, 4.0], 2) == [1.0, 1.5, 2.5, 3.5]
    assert moving_average([2.0], 5) == [2.0]


def test_each_constraint_is_drawn_at_its_height():
    image = render_similarity_plot(_records(positive=0.4, negative=0.1), "t", clamps=[("+ clamp", 0.28)])
    positive_rows = _rows_with_color(image, POSITIVE_COLORS[0])
    negative_rows = _rows_with_color(image, NEGATIVE_COLORS[0])
    assert positive_rows and negative_rows
    assert max(positive_rows) < min(negative_rows), "the higher similarity must be drawn higher"


def test_only_constraints_of_the_run_are_drawn():
    records = [{"step": 1, "positive": {"a": 0.3}, "negative": {}}, {"step": 2, "positive": {"a": 0.2}, "negative": {}}]
    image = render_similarity_plot(records, "mix")
    assert _rows_with_color(image, POSITIVE_COLORS[0])
    assert not _rows_with_color(image, NEGATIVE_COLORS[0])


def _columns_with_color(image, color: str) -> list[int]:
    rgb = ImageColor.getrgb(color)
    pixels = image.load()
    return [x for x in range(WIDTH - MARGIN_RIGHT) for y in range(image.height) if pixels[x, y] == rgb]


def test_a_negative_added_late_starts_where_it_was_added():
    records = [
        {"step": i + 1, "positive": {"pet": 0.3}, "negative": {"cat": 0.2, **({"hamster": 0.25} if i >= 30 else {})}}
        for i in range(60)
    ]
    image = render_similarity_plot(records, "adaptive")
    early, late = _columns_with_color(image, NEGATIVE_COLORS[0]), _columns_with_color(image, NEGATIVE_COLORS[1])
    plot_left, plot_right = min(early), max(early)
    assert min(late) > plot_left + 0.45 * (plot_right - plot_left)
