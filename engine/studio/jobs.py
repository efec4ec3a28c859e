"""The studio's jobs: one at a time, on a thread of the server's own, so a browser that closes does not end one.

A job is an engine call on a frozen request (see `work.py`); what the page shows comes from the engine's callbacks,
kept on the `Job` for any page (a reopened one too) to read. Stop asks the run to stop between steps exactly as
Ctrl-C does (`StopRequest`): the state is saved and the job ends `stopped`, with the folder to resume.
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conceptlab.engine.errors import ConceptLabError
from conceptlab.engine.imagine.request import ImagineProgress
from conceptlab.engine.training.interrupt import StopRequest, TrainingInterrupted
from conceptlab.engine.training.loop import StepRecord
from conceptlab.engine.training.negatives import Negative

QUEUED, RUNNING, DONE, STOPPED, FAILED, CANCELLED = "queued", "running", "done", "stopped", "failed", "cancelled"
FINISHED = (DONE, STOPPED, FAILED, CANCELLED)


@dataclass
class Job:
    """One job and everything the engine has told of it so far (appended by the worker, read by the pages)."""

    kind: str
    """The page that started it: create, resume, imagine, concept (pick then evolve), evolve, compare, sample."""
    request: Any
    """The frozen engine request (for pick then evolve: the evolve's)."""
    out: Path | None
    """Where its files appear (run folder, imagine folder, compare folder)."""
    total: int = 0
    command: str = ""
    """The command line that builds the same request."""
    number: int = 0
    status: str = QUEUED
    step: int = 0
    losses: list[dict[str, Any]] = field(default_factory=list)
    """Each step's record (`StepRecord.as_json`): loss and similarity to each word."""
    negatives: list[dict[str, Any]] = field(default_factory=list)
    """Each negative as it joined: word, step, source."""
    imagined: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    """imagine: each seed's negatives so far, in order (`word`, the `step` the oracle named it at, `source`)."""
    image_seed: int | None = None
    """imagine: the seed being denoised now."""
    notes: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    resume_dir: Path | None = None
    """After a stop: the run folder to resume."""
    started: float | None = None
    finished: float | None = None
    stop: StopRequest = field(default_factory=StopRequest)

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    def on_step(self, record: StepRecord) -> None:
        self.step = record.step
        self.losses.append(record.as_json())

    def on_negative(self, negative: Negative) -> None:
        self.negatives.append(dataclasses.asdict(negative))

    def on_parent_image(self, parent: str, done: int, total: int) -> None:
        self.notes.append(f"rendered {done} of {total} images of {parent}")

    def on_imagine(self, event: ImagineProgress) -> None:
        self.image_seed = event.seed
        self.step = event.image * event.steps + event.step
        self.total = event.images * event.steps
        named = [{"word": word, "step": event.step, "source": "oracle"} for word in event.added]
        self.imagined.setdefault(event.seed, []).extend(named)

    def on_task(self, description: str, total: int) -> Callable[[int], None]:
        self.notes.append(f"{description}: 0 of {total}")

        def on_item(index: int) -> None:
            self.notes[-1] = f"{description}: {index + 1} of {total}"

        return on_item


Work = Callable[[Job], Any]
"""What a job does: one engine call (or two, for pick then evolve), feeding the job's callbacks."""


class JobRunner:
    """Runs submitted jobs in turn on one worker thread; keeps every job of this server's life for the pages."""

    def __init__(self, before_first: Callable[[], list[str]] | None = None) -> None:
        self._queue: queue.Queue[tuple[Job, Work]] = queue.Queue()
        self._jobs: list[Job] = []
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._before_first = before_first
        self._worker = threading.Thread(target=self._work, name="conceptlab-studio-jobs", daemon=True)
        self._worker.start()

    def submit(self, job: Job, work: Work) -> Job:
        with self._lock:
            job.number = next(self._numbers)
            self._jobs.append(job)
        self._queue.put((job, work))
        return job

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs)

    def latest(self, *kinds: str) -> Job | None:
        """The newest job started from one of the pages `kinds`."""
        return next((job for job in reversed(self.jobs()) if job.kind in kinds), None)

    def ahead_of(self, job: Job) -> int:
        """How many jobs run or wait before `job` starts."""
        return sum(1 for other in self.jobs() if other.number < job.number and not other.done)

    def stop(self, job: Job) -> None:
        """Ask `job` to stop: between steps when running (its state saved), before it starts when queued."""
        job.stop.request()

    def stop_all(self, timeout: float) -> None:
        """Ask every unfinished job to stop (the server is going away) and wait for the running one to save."""
        for job in self.jobs():
            if not job.done:
                job.stop.request()
        running = next((job for job in self.jobs() if job.status == RUNNING), None)
        if running is not None:
            self.wait(running, timeout)

    def wait(self, job: Job, timeout: float) -> bool:
        """Wait until `job` is finished or `timeout` seconds pass; whether it finished."""
        deadline = time.monotonic() + timeout
        while not job.done and time.monotonic() < deadline:
            time.sleep(0.05)
        return job.done

    def _work(self) -> None:
        while True:
            job, work = self._queue.get()
            self._run(job, work)

    def _run(self, job: Job, work: Work) -> None:
        if job.stop():
            job.status = CANCELLED
            return
        job.status, job.started = RUNNING, time.time()
        try:
            if self._before_first is not None:
                job.notes += self._before_first()
                self._before_first = None
            job.result = work(job)
            job.status = DONE
        except TrainingInterrupted as stopped:
            job.resume_dir, job.status = stopped.run_dir, STOPPED
            job.error = str(stopped)
        except ConceptLabError as problem:
            job.error, job.status = str(problem), FAILED
        except Exception as problem:  # a bug must not end the worker: the page shows it in one line
            job.error, job.status = f"internal error: {type(problem).__name__}: {problem}", FAILED
        finally:
            job.finished = time.time()
