"""A live progress bar for training: step, loss, positive and max-negative similarity."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from conceptlab.cli.output import description_column, progress_bar, shown, spinner
from conceptlab.engine.evaluation.request import TaskProgress
from conceptlab.engine.training.loop import StepRecord
from conceptlab.engine.training.negatives import Negative
from conceptlab.engine.training.similarity_plot import moving_average

SMOOTHING = 20


def _describe(records: list[StepRecord]) -> str:
    """Similarities averaged over the last steps: one step samples one template, so single values jitter."""
    recent = records[-SMOOTHING:]
    loss = moving_average([r.loss for r in recent], SMOOTHING)[-1]
    positive = " ".join(
        f"{word} {moving_average([r.positive[word] for r in recent], SMOOTHING)[-1]:.3f}"
        for word in recent[-1].positive
    )
    text = f"loss {loss:.3f} | + {positive}"
    if recent[-1].negative:
        max_negative = moving_average([r.max_negative for r in recent], SMOOTHING)[-1]
        text += f" | max − {max_negative:.3f}"
    return text


@dataclass
class TrainingDisplay:
    """The callbacks `create` reports to: every step, and every negative that comes into force."""

    on_step: Callable[[StepRecord], None]
    on_negative: Callable[[Negative], None]
    on_parent_image: Callable[[str, int, int], None]
    on_compile: Callable[[float], None]


@contextmanager
def training_progress(total: int, label: str) -> Iterator[TrainingDisplay]:
    """A spinner while models load and the first images are judged, then a progress bar on stderr."""
    records: list[StepRecord] = []
    columns = (
        description_column(),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    progress = progress_bar(*columns)
    task = progress.add_task(label, total=total, stats="")
    status = spinner("Loading the model…")
    status.start()

    def on_step(record: StepRecord) -> None:
        if not records:
            status.stop()
            progress.start()
        records.append(record)
        progress.update(task, completed=record.step, stats=_describe(records))

    def on_negative(negative: Negative) -> None:
        if negative.source != "given":
            word, source = shown(negative.word), shown(negative.source)
            progress.console.print(f"step {negative.step}: new negative [bold]{word}[/] ({source})")

    def on_parent_image(parent: str, done: int, total: int) -> None:
        status.update(f"Rendering parent {parent}: image {done}/{total}…")

    def on_compile(seconds: float) -> None:
        progress.console.print(f"training step compiled in {seconds:.1f} s (first step; one shape for every template)")
        progress.update(task, description=f"{label} (compiled in {seconds:.0f} s)")

    try:
        yield TrainingDisplay(on_step, on_negative, on_parent_image, on_compile)
    finally:
        status.stop()
        progress.stop()


@contextmanager
def image_progress(total: int, label: str) -> Iterator:
    """Yield an `on_image(index)` callback; a spinner while models load and the prior runs, then a bar per image."""
    progress = progress_bar(description_column(), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    task = progress.add_task(label, total=total)
    status = spinner("Loading the models and sampling the prior…")
    status.start()

    def on_image(index: int) -> None:
        if index == 0:
            status.stop()
            progress.start()
        progress.update(task, completed=index + 1)

    try:
        yield on_image
    finally:
        status.stop()
        progress.stop()


@contextmanager
def task_progress() -> Iterator[TaskProgress]:
    """Yield `on_task(description, total)`: one bar per running task on stderr, removed when it completes."""
    progress = progress_bar(description_column(), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())

    def on_task(description: str, total: int) -> Callable[[int], None]:
        task = progress.add_task(description, total=total)

        def on_item(index: int) -> None:
            progress.update(task, completed=index + 1)
            if index + 1 >= total:
                progress.remove_task(task)

        return on_item

    with progress:
        yield on_task
