"""What each studio job does: the engine call the matching command makes, on the request it would build, with the
job's callbacks in place of the terminal's progress bar. Nothing here trains, samples or scores by itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from conceptlab.engine.evaluation.request import EvaluateRequest, EvaluateResult, evaluate
from conceptlab.engine.imagine.pick import PickRequest, pick
from conceptlab.engine.imagine.request import ImagineRequest, ImagineResult
from conceptlab.engine.imagine.run import imagine
from conceptlab.engine.rendering.sample import SampleRequest, SampleResult, sample
from conceptlab.engine.studio.jobs import Job, Work
from conceptlab.engine.training.create import CreateResult, RunCallbacks
from conceptlab.engine.training.loop import StepRecord
from conceptlab.engine.training.request import EvolveRequest, ResumeRequest, TrainRequest, train
from conceptlab.engine.training.run_folder import RunFolder, read_log, step_lines


def callbacks(job: Job) -> RunCallbacks:
    """The job's ears on a training run, and its Stop: the same `should_stop` flag Ctrl-C sets."""
    return RunCallbacks(job.on_step, job.on_negative, job.stop, job.on_parent_image)


def training(request: TrainRequest) -> Work:
    """`create`, `mix`, `evolve` or `--resume`: `train(request)`; a resumed run's chart starts with the steps it
    made before it was stopped."""

    def work(job: Job) -> CreateResult:
        heard = callbacks(job)
        if isinstance(request, ResumeRequest):
            heard = dataclasses.replace(heard, on_step=_with_earlier_steps(job, request.run_dir))
        return train(request, heard)

    return work


def _with_earlier_steps(job: Job, run_dir: Path) -> Callable[[StepRecord], None]:
    """`job.on_step`, first filling in the steps before the resumed one from the run's log, which `resume` has by
    then checked against its saved state and cut back to what the state covers."""

    def on_step(record: StepRecord) -> None:
        if not job.losses:
            earlier = step_lines(read_log(RunFolder(run_dir, "").log_path))
            job.losses = [line for line in earlier if line.get("step", record.step) < record.step]
        job.on_step(record)

    return on_step


def imagining(request: ImagineRequest) -> Work:
    """`imagine`: each image written as it is done, each negative heard as the oracle names it."""

    def work(job: Job) -> ImagineResult:
        return imagine(request, job.on_imagine)

    return work


def picking_then_evolving(chosen: PickRequest, request: EvolveRequest) -> Work:
    """`pick` then `evolve` of the picked folder: a concept from the images one selected."""

    def work(job: Job) -> CreateResult:
        picked = pick(chosen)
        job.notes.append(f"picked {len(picked)} image(s) into {chosen.out.name}")
        return train(request, callbacks(job))

    return work


def evaluating(request: EvaluateRequest) -> Work:
    """`evaluate` (its table, and its chart and CSV where the request names them)."""

    def work(job: Job) -> EvaluateResult:
        return evaluate(request, on_task=job.on_task)

    return work


def sampling(request: SampleRequest) -> Work:
    """`sample`."""

    def work(job: Job) -> SampleResult:
        def on_image(index: int) -> None:
            job.step = index + 1

        return sample(request, on_image=on_image)

    return work
