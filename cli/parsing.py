"""Turn comma-separated option values into tuples, with one-line errors."""

from __future__ import annotations

from conceptlab.engine.errors import UsageError


def word_list(value: str | None) -> tuple[str, ...]:
    """`"cat, dog"` -> `("cat", "dog")`; empty items are kept so validation can name them."""
    if value is None or not value.strip():
        return ()
    return tuple(item.strip() for item in value.split(","))


def number_list(option: str, value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(item) for item in value.split(","))
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a comma-separated list of numbers, e.g. 0.6,0.4.") from None


def integer_list(option: str, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(item) for item in value.split(","))
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a comma-separated list of integers, e.g. 42,500.") from None
