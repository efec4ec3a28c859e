"""Run a plan's jobs in order of their dependencies: here, one after another with models reused, or on Ray.

Each finished job leaves a record in `<out>/.batch/<job>.json` with a fingerprint of its options and of the inputs
it read; a rerun reuses every job whose record still matches (and whose files are there). A failed job is tried once
more, then reported, and the jobs that wait for it are reported as blocked, never silently dropped.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from conceptlab.engine.batch.jobs import JobResult, run_job
from conceptlab.engine.batch.plan import (
    BATCH_OWN,
    INPUTS_FOLDER,
    RECORDS_FOLDER,
    SUMMARY_FILE,
    Job,
    Plan,
    job_fingerprint,
    read_plan,
    topological_order,
)
from conceptlab.engine.errors import ConceptLabError, UsageError
from conceptlab.engine.io.atomic import refuse_system_folder, write_atomically, write_json
from conceptlab.engine.io.records import read_json
from conceptlab.engine.models.loading import default_model
from conceptlab.engine.models.model_cache import ModelCache

ATTEMPTS = 2
"""A failed job is tried once more before it is reported."""
FORWARDED_ENVIRONMENT = ("SOURCE_DATE_EPOCH",)
"""Set on every Ray worker as on the driver, so that concepts made there are the bytes made here."""


@dataclass
class JobRecord:
    name: str
    status: str
    """done (ran now), reused (finished by an earlier run), failed, or blocked (waits for a failed job)."""
    attempts: int = 0
    seconds: float = 0.0
    concept: str | None = None
    files: tuple[str, ...] = ()
    summary: str = ""
    error: str = ""
    fingerprint: str = ""
    where: str = ""

    @property
    def finished(self) -> bool:
        return self.status in ("done", "reused")


@dataclass(frozen=True)
class BatchEvent:
    job: str
    what: str
    """plan (read: `total` jobs), start, progress, done, reused, retry, failed or blocked."""
    message: str = ""
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class BatchResult:
    out: Path
    records: dict[str, JobRecord]
    seconds: float
    mode: str

    @property
    def failed(self) -> list[str]:
        return [name for name, record in self.records.items() if not record.finished]


@dataclass
class Outcome:
    result: JobResult | None = None
    error: str = ""
    where: str = ""


class Runner(Protocol):
    capacity: int

    def submit(self, job: Job, inputs: dict[str, str]) -> None: ...

    def next_finished(self) -> tuple[str, Outcome]: ...

    def close(self) -> None: ...


def describe_error(error: BaseException) -> str:
    """One line for a failed job: our errors as they read, others with their type."""
    if isinstance(error, ConceptLabError):
        return str(error)
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return f"{type(error).__name__}: {error}"


class LocalRunner:
    """One job at a time in this process; models stay loaded from one job to the next."""

    capacity = 1

    def __init__(self, root: Path, default_model: str, on_event: Callable[[BatchEvent], None]):
        self.root, self.default_model, self.on_event = root, default_model, on_event
        self.pool = ModelCache()
        self.queue: list[tuple[Job, dict[str, str]]] = []

    def submit(self, job: Job, inputs: dict[str, str]) -> None:
        self.queue.append((job, inputs))

    def next_finished(self) -> tuple[str, Outcome]:
        job, inputs = self.queue.pop(0)

        def on_progress(done: int, total: int) -> None:
            self.on_event(BatchEvent(job.name, "progress", done=done, total=total))

        try:
            result = run_job(job, self.root, inputs, self.pool, self.default_model, on_progress)
        except Exception as error:
            self.pool.clear()
            return job.name, Outcome(error=describe_error(error))
        return job.name, Outcome(result, where="local")

    def close(self) -> None:
        self.pool.clear()


_WORKER_POOL = ModelCache()
"""A Ray worker keeps its models between the tasks it runs."""


def remote_job(
    job_json: dict[str, Any],
    inputs: dict[str, str],
    files: dict[str, bytes],
    environment: dict[str, str],
    model: str,
    threads: int,
) -> dict[str, Any]:
    """A job on a Ray worker: inputs written to a scratch folder, the job run there, its files sent back.

    The worker computes with the driver's number of CPU threads (and Ray reserves that many CPUs for it): a CPU
    kernel's sums can be split, and rounded, differently with another count, and a job must give the same bytes
    wherever it runs; sharing cores between jobs would only make each slower.
    """
    os.environ.update(environment)
    torch.set_num_threads(threads)
    job = Job.from_json(job_json)
    with tempfile.TemporaryDirectory(prefix="conceptlab-job-") as scratch:
        root = Path(scratch)
        for relative, data in files.items():
            write_atomically(root / relative, data)
        try:
            result = run_job(job, root, inputs, _WORKER_POOL, model)
        except Exception as error:
            _WORKER_POOL.clear()
            return {"error": describe_error(error)}
        sent = {relative: (root / relative).read_bytes() for relative in result.files}
    return {"result": asdict(result), "files": sent, "host": socket.gethostname()}


def _import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise UsageError("--ray needs Ray, which is not installed; pip install 'conceptlab[ray]'.") from None
    return ray


def _input_files(root: Path, inputs: dict[str, str]) -> dict[str, bytes]:
    files = {}
    for relative in inputs.values():
        path = root / relative
        members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        files |= {str(member.relative_to(root)): member.read_bytes() for member in members}
    return files


class RayRunner:
    """Jobs as Ray tasks (one GPU each where the cluster has GPUs), results written back into the plan's folder."""

    def __init__(
        self, root: Path, default_model: str, address: str | None, max_parallel: int | None, gpus: float | None
    ):
        self.ray = ray = _import_ray()
        self.started = not ray.is_initialized()
        if self.started:
            settings = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            try:
                ray.init(address=address, **settings) if address else ray.init(num_cpus=max_parallel, **settings)
            except (ConnectionError, RuntimeError) as error:
                raise UsageError(f"Cannot reach the Ray cluster at {address}: {error}; check --ray ADDRESS.") from None
        resources = ray.cluster_resources()
        gpus = gpus if gpus is not None else (1 if resources.get("GPU", 0) >= 1 else 0)
        self.threads = max(1, min(torch.get_num_threads(), int(resources.get("CPU", 1))))
        slots = resources.get("GPU", 0) // gpus if gpus else resources.get("CPU", 1) // self.threads
        self.capacity = max(1, min(max_parallel or int(slots), int(slots) or 1))
        self.task = ray.remote(remote_job).options(num_cpus=self.threads, num_gpus=gpus, max_retries=0)
        self.root, self.default_model = root, default_model
        self.environment = {key: os.environ[key] for key in FORWARDED_ENVIRONMENT if key in os.environ}
        self.pending: dict[Any, str] = {}

    def submit(self, job: Job, inputs: dict[str, str]) -> None:
        files = _input_files(self.root, inputs)
        arguments = (job.as_json(), inputs, files, self.environment, self.default_model, self.threads)
        reference = self.task.remote(*arguments)
        self.pending[reference] = job.name

    def next_finished(self) -> tuple[str, Outcome]:
        (ready,), _ = self.ray.wait(list(self.pending), num_returns=1)
        name = self.pending.pop(ready)
        try:
            reply = self.ray.get(ready)
        except self.ray.exceptions.RayError as error:
            return name, Outcome(error=f"Ray lost the job: {str(error).strip().splitlines()[0]}")
        if "error" in reply:
            return name, Outcome(error=reply["error"])
        for relative, data in reply["files"].items():
            write_atomically(self.root / relative, data)
        result = JobResult(reply["result"]["concept"], tuple(reply["result"]["files"]), reply["result"]["summary"])
        return name, Outcome(result, where=reply["host"])

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def _content_sha256(path: Path) -> str:
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for member in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(member.relative_to(path)).encode() + b"\0" + bytes.fromhex(_content_sha256(member)))
    return digest.hexdigest()


def _external_inputs(plan: Plan, job: Job) -> list[str]:
    vocab = [job.options["vocab"]] if "vocab" in job.options else []
    return [item for item in [*job.references, *vocab] if item not in plan.by_name]


def _links_under(path: Path) -> Iterator[Path]:
    """`path` if it is a symbolic link, else every symbolic link in the folder `path`, none of them followed."""
    if path.is_symlink():
        yield path
    elif path.is_dir():
        for folder, folders, files in os.walk(path):
            yield from (Path(folder) / name for name in [*folders, *files] if (Path(folder) / name).is_symlink())


def check_inputs(plan: Plan) -> None:
    """Every path a job reads that is not another job's concept must exist before anything runs, and hold no
    symbolic link: staging copies files, never links (a link may lead outside or round in a loop)."""
    for job in plan.jobs:
        for item in _external_inputs(plan, job):
            source = plan.base / item
            if not source.exists() and not source.is_symlink():
                raise UsageError(f"job {job.name!r}: {item} is neither a job of the plan nor a file or folder.")
            link = next(_links_under(source), None)
            if link is not None:
                raise UsageError(
                    f"job {job.name!r}: {link} is a symbolic link; batch copies inputs without following links, "
                    "so give the file or folder it points to."
                )


def check_outputs(plan: Plan) -> None:
    """Every folder the batch writes (each job's out, and its own files) is where its name says, inside the output
    folder: no symbolic link on the way to it or inside it, so that nothing is written outside and no two jobs share."""
    root = plan.out.resolve()
    owners = {name: "the batch" for name in BATCH_OWN} | {job.out: f"job {job.name!r}" for job in plan.jobs}
    for relative, owner in owners.items():
        path = root / relative
        if path.resolve() != path:
            raise UsageError(
                f"{owner}: {path} leads through a symbolic link to {path.resolve()}; batch writes only into real "
                f"folders inside {root}: remove the link."
            )
        link = next(_links_under(path), None) if path.is_dir() else None
        if link is not None:
            raise UsageError(
                f"{owner}: {link} is a symbolic link inside {path}; batch does not write through links: remove it."
            )
    summary = root / SUMMARY_FILE
    if summary.exists() and not summary.is_file():
        raise UsageError(f"{summary} is not a file; the batch writes its summary there: move it away.")


def _copy_folder(source: Path, target: Path) -> None:
    """`source` into `target` file by file, each keeping its mode; links were refused by `check_inputs`."""
    for folder, _folders, files in os.walk(source):
        here = target / Path(folder).relative_to(source)
        here.mkdir(parents=True, exist_ok=True, mode=stat.S_IMODE(Path(folder).stat().st_mode))
        for name in files:
            _copy_file(Path(folder) / name, here / name)


def _copy_file(source: Path, target: Path) -> None:
    write_atomically(target, source.read_bytes(), mode=stat.S_IMODE(source.stat().st_mode))


def _stage(plan: Plan, item: str) -> str:
    """Copy an input from outside into `<out>/inputs/`, so the plan's folder holds all it read (and Ray can send it);
    each copy keeps its source's mode (a private input stays private)."""
    source = plan.base / item
    target = Path(INPUTS_FOLDER) / source.name
    existing = plan.out / target
    if existing.exists() and _content_sha256(existing) != _content_sha256(source):
        target = target.with_name(f"{source.stem}-{_content_sha256(source)[:8]}{source.suffix}")
    if not (plan.out / target).exists():
        if source.is_dir():
            _copy_folder(source, plan.out / target)
        else:
            _copy_file(source, plan.out / target)
    return str(target)


class Scheduler:
    """Submits each job when what it waits for has finished, retries a failure once, and keeps the records."""

    def __init__(self, plan: Plan, runner: Runner, force: bool, on_event: Callable[[BatchEvent], None]):
        self.plan, self.runner, self.force, self.on_event = plan, runner, force, on_event
        self.records: dict[str, JobRecord] = {}
        self.attempts: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.fingerprints: dict[str, str] = {}
        self.inputs: dict[str, dict[str, str]] = {}

    def record_path(self, name: str) -> Path:
        return self.plan.out / RECORDS_FOLDER / f"{name}.json"

    def previous(self, name: str) -> JobRecord | None:
        path = self.record_path(name)
        if not path.is_file():
            return None
        try:
            data = read_json(path)
            return JobRecord(**{**data, "files": tuple(data.get("files", ()))})
        except (UsageError, ValueError, TypeError, AttributeError):  # not a job record: the job runs again
            return None

    def save(self, record: JobRecord, keep_on_disk: bool = True) -> None:
        self.records[record.name] = record
        if keep_on_disk:
            write_json(self.record_path(record.name), asdict(record))
        detail = record.error or record.summary
        self.on_event(BatchEvent(record.name, record.status, detail))

    def prepare(self, job: Job) -> bool:
        """Stage the job's inputs; True when it must run, False when an earlier run's outputs still hold."""
        inputs = {item: self.records[item].concept or "" for item in job.references if item in self.plan.by_name}
        inputs |= {item: _stage(self.plan, item) for item in _external_inputs(self.plan, job)}
        shas = {item: _content_sha256(self.plan.out / path) for item, path in inputs.items()}
        self.inputs[job.name], self.fingerprints[job.name] = inputs, job_fingerprint(job, shas)
        previous = self.previous(job.name)
        if previous and previous.finished and all((self.plan.out / f).is_file() for f in previous.files):
            if previous.fingerprint == self.fingerprints[job.name]:
                self.save(JobRecord(**{**asdict(previous), "status": "reused"}))
                return False
            if not self.force:
                where = self.plan.out / job.out
                message = f"changed since it ran; its outputs in {where} are kept: add --force to run it again"
                refused = JobRecord(job.name, "failed", error=message, fingerprint=self.fingerprints[job.name])
                self.save(refused, keep_on_disk=False)  # the record of the outputs it keeps stays as it was
                return False
        return True

    def submit(self, name: str) -> None:
        self.attempts[name] = self.attempts.get(name, 0) + 1
        self.started[name] = time.perf_counter()
        self.on_event(BatchEvent(name, "start", f"attempt {self.attempts[name]}"))
        self.runner.submit(self.plan.job(name), self.inputs[name])

    def finish(self, name: str, outcome: Outcome) -> None:
        seconds = round(time.perf_counter() - self.started[name], 3)
        if outcome.result is None:
            if self.attempts[name] < ATTEMPTS:
                self.on_event(BatchEvent(name, "retry", outcome.error))
                self.submit(name)
                return
            self.save(JobRecord(name, "failed", self.attempts[name], seconds, error=outcome.error))
            return
        result = outcome.result
        fingerprint = self.fingerprints[name]
        record = JobRecord(name, "done", self.attempts[name], seconds, result.concept, result.files, result.summary)
        self.save(JobRecord(**{**asdict(record), "fingerprint": fingerprint, "where": outcome.where}))

    def block(self, name: str) -> None:
        failed = [d for d in self.plan.dependencies[name] if not self.records[d].finished]
        self.save(JobRecord(name, "blocked", error=f"waits for {', '.join(failed)}, which did not finish"))

    def run(self) -> dict[str, JobRecord]:
        waiting = topological_order(self.plan)
        running: set[str] = set()
        while waiting or running:
            for name in list(waiting):
                dependencies = self.plan.dependencies[name]
                if not all(d in self.records for d in dependencies) or len(running) >= self.runner.capacity:
                    continue
                waiting.remove(name)
                if not all(self.records[d].finished for d in dependencies):
                    self.block(name)
                elif self.prepare(self.plan.job(name)):
                    self.submit(name)
                    running.add(name)
            if running:
                name, outcome = self.runner.next_finished()
                self.finish(name, outcome)
                if name in self.records:
                    running.discard(name)
        return {job.name: self.records[job.name] for job in self.plan.jobs}


def run_plan(
    plan: Plan,
    default_model: str,
    *,
    ray: bool = False,
    address: str | None = None,
    max_parallel: int | None = None,
    gpus_per_job: float | None = None,
    force: bool = False,
    on_event: Callable[[BatchEvent], None] | None = None,
) -> BatchResult:
    """Run (or resume) `plan` into `plan.out`; `ray` submits the jobs to Ray (`address`: a cluster's, else a local
    Ray started for the run); `default_model` trains jobs that name no model and read no concept."""
    refuse_system_folder(plan.out, "The plan's out")
    check_inputs(plan)
    check_outputs(plan)
    if max_parallel is not None and max_parallel < 1:
        raise UsageError(f"--max-parallel must be at least 1 (got {max_parallel}).")
    plan.out.mkdir(parents=True, exist_ok=True)
    on_event = on_event or (lambda _event: None)
    root = plan.out.resolve()
    runner: Runner = (
        RayRunner(root, default_model, address, max_parallel, gpus_per_job)
        if ray
        else LocalRunner(root, default_model, on_event)
    )
    started = time.perf_counter()
    try:
        records = Scheduler(plan, runner, force, on_event).run()
    finally:
        runner.close()
    result = BatchResult(plan.out, records, round(time.perf_counter() - started, 3), "ray" if ray else "local")
    summary = {"mode": result.mode, "seconds": result.seconds, "jobs": [asdict(r) for r in records.values()]}
    write_json(plan.out / SUMMARY_FILE, summary)
    return result


@dataclass(frozen=True)
class BatchRequest:
    """`conceptlab batch`: one field per option."""

    plan_path: Path
    ray: str | None = None
    """None: here, one job after another; `local`: a local Ray started for the run; else a cluster's address."""
    max_parallel: int | None = None
    gpus_per_job: float | None = None
    out: Path | None = None
    """None: the plan's `out`, else runs/plan."""
    model: str | None = None
    """The model of jobs that name none and read no concept (None: the default model)."""
    force: bool = False


def ray_options(ray: str | None) -> dict[str, Any]:
    """`run_plan`'s `ray` and `address` from a `--ray` value: None (no Ray), `local` or a cluster's address."""
    return {"ray": ray is not None, "address": None if ray in (None, "local") else ray}


def run_batch(request: BatchRequest, on_event: Callable[[BatchEvent], None] | None = None) -> BatchResult:
    """`conceptlab batch` in one call: read the plan (a `plan` event tells how many jobs it holds), then run it."""
    plan = read_plan(request.plan_path, request.out)
    if on_event:
        on_event(BatchEvent("", "plan", total=len(plan.jobs)))
    return run_plan(
        plan,
        default_model() if request.model is None else request.model,
        **ray_options(request.ray),
        max_parallel=request.max_parallel,
        gpus_per_job=request.gpus_per_job,
        force=request.force,
        on_event=on_event,
    )
