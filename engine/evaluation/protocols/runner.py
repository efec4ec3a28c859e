"""The one protocol runner: train a protocol's concepts as a batch plan, render (or reuse) its image sets, score
them, summarize, write `rows.csv`, `summary.csv`, `metrics.json` and `summary.png`.

A protocol (paper, creative) says only what differs: its checks, its training jobs, its image sets, its summary,
the head of its `metrics.json` and its chart's title. Every finished piece is kept on disk, so a rerun skips it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from conceptlab.engine.batch.plan import Job, Plan
from conceptlab.engine.batch.runner import BatchEvent, JobRecord, run_plan
from conceptlab.engine.concept.file import Concept, load_concept
from conceptlab.engine.errors import ConceptLabError, UsageError
from conceptlab.engine.evaluation.chart import save_metrics_chart
from conceptlab.engine.evaluation.evaluate import (
    EvaluationRow,
    ImageSet,
    RenderClock,
    evaluate_image_sets,
    record_costs,
    recorded_costs,
    results_csv,
    results_json,
)
from conceptlab.engine.evaluation.evaluators import evaluating_clip
from conceptlab.engine.evaluation.judge import Judge, load_judge
from conceptlab.engine.evaluation.metrics import ClipEmbedder
from conceptlab.engine.evaluation.request import TaskProgress, no_progress
from conceptlab.engine.io.atomic import write_json, write_text
from conceptlab.engine.io.images import RENDERED_FILES, load_images, render_source, rendered_files, save_renders
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.models.model_cache import ModelCache
from conceptlab.engine.models.plugins import resolve_model
from conceptlab.engine.rendering.render import RenderSettings, render_settings

RESULT_FILES = ("rows.csv", "summary.csv", "metrics.json", "summary.png")


class ProtocolConfigLike(Protocol):
    """What the runner reads of a protocol's config (both have these fields)."""

    size: int | None
    render_steps: int | None
    prior_steps: int | None
    image_seed: int


class EvaluationProtocol(Protocol):
    """What differs between the paper's protocol and the creative one."""

    name: str
    title: str
    """The `--plot` chart's title, before the evaluating CLIP's name: "CLIP metrics (clip)"."""

    def build(self, quick: bool = False, **changes: Any) -> Any:
        """The protocol's config; `quick`: a smoke run."""
        ...

    def check(self, config: Any, model: ModelChoice) -> str | None:
        """Refuse what would fail late, before anything loads; return the judge's name (None: no judge)."""
        ...

    def jobs(self, config: Any, model: ModelChoice) -> tuple[Job, ...]:
        """One `create` job per concept to train."""
        ...

    def image_sets(self, run: ProtocolRun) -> list[ImageSet]:
        """Every row's images, rendered now or kept from an earlier run."""
        ...

    def summarize(self, rows: list[EvaluationRow], sets: list[ImageSet], clip: ClipEmbedder) -> list[EvaluationRow]:
        """One row per (category, method)."""
        ...

    def recorded(self, config: Any, clip_name: str, judge: Judge | None) -> dict[str, Any]:
        """The head of `metrics.json` (its summary and rows follow)."""
        ...

    def chart_title(self, clip_name: str, judge: Judge | None) -> str: ...


@dataclass(frozen=True)
class ProtocolResult:
    rows: list[EvaluationRow]
    summary: list[EvaluationRow]
    trained: int
    reused: int
    files: dict[str, Path]
    clip: str
    """The evaluating CLIP's name."""
    judge: dict[str, Any] | None = None
    """The judge and its questions, where the protocol has one."""
    written: tuple[Path, ...] = ()
    """The `--csv` and `--plot` files written besides `files`."""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def already_rendered(folder: Path, source: dict[str, Any], force: bool) -> bool:
    """Whether `folder` already holds the renders that `source` describes.

    A folder without its record was interrupted before the last image and is rendered again. Renders of
    something else (a retrained concept, other settings), or whose images are not those the record lists with
    their sha256 (one deleted, changed or swapped for another's), are kept and refused, unless `force`, which clears
    them.
    """
    recorded = render_source(folder)
    if recorded is None:
        return False
    if {key: value for key, value in recorded.items() if key != RENDERED_FILES} == source:
        problem = rendered_files(folder, recorded)[1]
        if problem is None:
            return True
        if not force:
            raise UsageError(f"{folder}: {problem}; add --force to render them again.")
    elif not force:
        raise UsageError(
            f"{folder} holds renders of another concept or other settings; add --force to render them again."
        )
    shutil.rmtree(folder)
    return False


def training_events(on_task: TaskProgress) -> Callable[[BatchEvent], None]:
    """The batch runner's events as the protocol's task bars: one bar per concept in training."""
    bars: dict[str, Callable[[int], None]] = {}

    def on_event(event: BatchEvent) -> None:
        if event.what == "progress":
            if event.job not in bars:
                bars[event.job] = on_task(f"train {event.job}", event.total)
            bars[event.job](event.done - 1)

    return on_event


class ProtocolRun:
    """One protocol run in `out`: models loaded once, every step skipped when its output is already there."""

    def __init__(self, config: Any, model: ModelChoice, out: Path, on_task: TaskProgress, force: bool):
        self.config, self.model, self.out, self.force, self.on_task = config, model, out, force, on_task
        self.backend, _ = resolve_model(model.model, model.backend)
        self.models = ModelCache()
        self.training: dict[str, JobRecord] = {}

    def train(self, jobs: tuple[Job, ...], batch_options: dict[str, Any]) -> tuple[int, int]:
        """Train (or reuse) every concept through the batch runner; (trained now, reused)."""
        plan = Plan(jobs, self.out, self.out, {job.name: () for job in jobs})
        events = training_events(self.on_task)
        result = run_plan(plan, self.model.model, on_event=events, force=self.force, **batch_options)
        if result.failed:
            first = result.records[result.failed[0]]
            raise ConceptLabError(
                f"{len(result.failed)} concept(s) did not train ({first.name}: {first.error}); "
                "the concepts that trained are kept."
            )
        self.training = result.records
        trained = sum(record.status == "done" for record in result.records.values())
        return trained, len(result.records) - trained

    def concept(self, name: str) -> tuple[Concept, float]:
        """The trained concept `name` and the seconds its training took."""
        record = self.training[name]
        return load_concept(self.out / (record.concept or "")), record.seconds

    def settings(self) -> RenderSettings:
        config = self.config
        return render_settings(
            self.backend, size=config.size, steps=config.render_steps, prior_steps=config.prior_steps
        )

    def model_source(self) -> dict[str, Any]:
        """The model a render record names (a rerun with another model renders again)."""
        source = {"model": self.model.model, "backend": self.backend.name, "revision": self.model.revision}
        named = {"decoder": self.model.decoder, "decoder_revision": self.model.decoder_revision}
        return source | {key: value for key, value in named.items() if value}

    def loaded(self) -> tuple[Any, Any]:
        """The backend's prior and decoder (loaded once, before any clock starts: loading is not rendering)."""
        loaded = self.models.prior(self.model)
        return loaded, self.models.decoder(loaded, self.model.decoder, self.model.decoder_revision)

    def images(
        self,
        folder: Path,
        source: dict[str, Any],
        count: int,
        label: str,
        make: Callable[[RenderClock], list],
        preload: bool = True,
    ) -> tuple[list, dict[str, list[float]]]:
        """The images `source` describes in `folder` and their recorded costs: kept ones, or rendered by `make`
        under a task bar `label` (`preload`: the backend's models load first, outside the clock)."""
        if not already_rendered(folder, source, self.force):
            if preload:
                self.loaded()
            clock = RenderClock(self.on_task(label, count))
            images = make(clock)
            record_costs(folder, {"render-seconds": clock.seconds_per_image})
            save_renders(images, folder, source)
        return load_images(folder, rendered_files(folder, render_source(folder) or {})[0]), recorded_costs(folder)


def run_protocol(
    protocol: EvaluationProtocol,
    config: Any,
    model: ModelChoice,
    out: Path,
    *,
    clip: str | None = None,
    clip_revision: str | None = None,
    on_task: TaskProgress | None = None,
    batch_options: dict[str, Any] | None = None,
    force: bool = False,
) -> ProtocolResult:
    """Run (or resume) `protocol` in `out`: check, load the evaluating CLIP, train, render, score, write
    `rows.csv`, `summary.csv`, `metrics.json` and `summary.png`.

    The concepts train as a batch plan (`batch_options` go to `run_plan`: `ray`, `address`, `max_parallel`).
    What is already there is reused; what was made with other settings is refused unless `force` (then redone).
    """
    judge_name = protocol.check(config, model)
    evaluator = evaluating_clip(clip, model, revision=clip_revision)
    run = ProtocolRun(config, model, Path(out), on_task or no_progress, force)
    trained, reused = run.train(protocol.jobs(config, model), batch_options or {})
    sets = protocol.image_sets(run)
    judge = load_judge(judge_name, run.models.prior(model), None) if judge_name else None
    rows = evaluate_image_sets(evaluator, sets, judge=judge)
    summary = protocol.summarize(rows, sets, evaluator)
    files = _write_results(protocol, config, run.out, rows, summary, evaluator.name, judge)
    return ProtocolResult(rows, summary, trained, reused, files, evaluator.name, judge.record() if judge else None)


def _write_results(
    protocol: EvaluationProtocol,
    config: Any,
    out: Path,
    rows: list[EvaluationRow],
    summary: list[EvaluationRow],
    clip_name: str,
    judge: Judge | None,
) -> dict[str, Path]:
    files = {name: out / name for name in RESULT_FILES}
    write_text(files["rows.csv"], results_csv(rows))
    write_text(files["summary.csv"], results_csv(summary))
    recorded = protocol.recorded(config, clip_name, judge)
    recorded |= {"summary": results_json(summary, clip_name)["rows"], "rows": results_json(rows, clip_name)["rows"]}
    write_json(files["metrics.json"], recorded)
    save_metrics_chart(summary, files["summary.png"], protocol.chart_title(clip_name, judge))
    return files
