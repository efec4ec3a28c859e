"""A batch plan: jobs (create, mix, evolve, sample, evaluate) with their options and what they wait for.

A plan is TOML. `[plan]` holds the output folder and defaults for every job that takes them; each `[[job]]` has a
`name`, what it runs (`run`), its options (the command's own, with `_` for `-`), and optionally `after`. A job that
names another job in `parents` or `concepts` uses that job's concept and waits for it.

    [plan]
    out = "runs/pets"        # relative to the plan file
    model = "tiny"
    steps = 200

    [[job]]
    name = "a"
    run = "create"
    category = "pet"
    neg = ["cat", "dog"]

    [[job]]
    name = "child"
    run = "evolve"
    parents = ["a", "b"]
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.request import EvaluateRequest
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.options import PlanKind, check_bound, plan_keys, shared_keys
from conceptlab.engine.rendering.sample import SampleRequest
from conceptlab.engine.training.config import COMMAND_OPTIONS, CreateConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

MODEL_KEYS = plan_keys(ModelChoice)
JOB_KEYS: dict[str, dict[str, PlanKind]] = {
    "create": plan_keys(CreateConfig, COMMAND_OPTIONS["create"]) | MODEL_KEYS,
    "mix": plan_keys(CreateConfig, COMMAND_OPTIONS["mix"]) | MODEL_KEYS,
    "evolve": {"parents": "words"} | plan_keys(CreateConfig, COMMAND_OPTIONS["evolve"]) | MODEL_KEYS,
    "sample": plan_keys(SampleRequest),
    "evaluate": plan_keys(EvaluateRequest),
}
"""The options each kind of job takes, named as on its command line, derived from the fields that declare them."""
SHARED_KEYS: dict[str, frozenset[str]] = {run: frozenset(keys) for run, keys in JOB_KEYS.items()}
SHARED_KEYS |= {"sample": shared_keys(SampleRequest), "evaluate": shared_keys(EvaluateRequest)}
"""The keys that `[plan]` defaults and options shared by every job may set, per kind of job (see `JOB_ONLY`)."""

REQUIRED = {"create": ("category",), "mix": ("words",), "evolve": ("parents",), "sample": ("concepts", "prompt")}
REQUIRED["evaluate"] = ("concepts",)
CONCEPT_MAKERS = ("create", "mix", "evolve")
REFERENCE_KEYS = ("parents", "concepts")
JOB_FIELDS = ("name", "run", "after", "out")
RECORDS_FOLDER = ".batch"
SUMMARY_FILE = "batch.json"
INPUTS_FOLDER = "inputs"
BATCH_OWN = (SUMMARY_FILE, INPUTS_FOLDER, RECORDS_FOLDER)
"""What the batch itself writes in its output folder: no job's out may be, or lie inside, one of these."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_PLAN_BYTES = 64 * 1024 * 1024
"""A plan is text people write or generate: 64 MB holds about a million jobs. Checking one is linear in its jobs."""


@dataclass(frozen=True)
class Job:
    name: str
    run: str
    options: dict[str, Any]
    after: tuple[str, ...] = ()
    out: str = ""
    """The job's folder, relative to the plan's output folder (default: its name)."""

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(item for key in REFERENCE_KEYS for item in self.options.get(key, ()))

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "run": self.run, "options": self.options, "after": list(self.after), "out": self.out}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(data["name"], data["run"], data["options"], tuple(data["after"]), data["out"])


@dataclass(frozen=True)
class Plan:
    jobs: tuple[Job, ...]
    out: Path
    base: Path
    """Where relative paths in the plan start: the plan file's folder."""
    dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @cached_property
    def by_name(self) -> dict[str, Job]:
        return {job.name: job for job in self.jobs}

    def job(self, name: str) -> Job:
        return self.by_name[name]


def _check_value(where: str, key: str, value: Any, kind: PlanKind) -> Any:
    """`value` as `kind`, or a one-line error naming the option, what it got and what it needs."""
    lists = {"words": str, "floats": (int, float), "ints": int}
    if isinstance(kind, str):
        if isinstance(value, str) and kind == "words":
            value = [word.strip() for word in value.split(",") if word.strip()]
        if not isinstance(value, list) or not all(
            isinstance(item, lists[kind]) and not isinstance(item, bool) for item in value
        ):
            expected = {"words": "a list of strings", "floats": "a list of numbers", "ints": "a list of integers"}
            raise UsageError(f"{where}: {key} must be {expected[kind]} (got {_short(value)}).")
        if kind == "floats" and not all(math.isfinite(item) for item in value):
            raise UsageError(f"{where}: {key} must be finite numbers (got {value!r}).")
        return [float(item) for item in value] if kind == "floats" else value
    accepted = (int, float) if kind is float else kind
    if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
        raise UsageError(f"{where}: {key} must be {kind.__name__} (got {_short(value)}).")
    if kind is float and not math.isfinite(value):
        raise UsageError(f"{where}: {key} must be a finite number (got {value!r}).")
    return float(value) if kind is float else value


def _check_bounds(where: str, run: str, options: dict[str, Any]) -> None:
    """The command line's bounds (`conceptlab.engine.options.BOUNDS`) on a job's options, when the plan is read;
    `steps` of a job that trains is its training steps."""
    for key, value in options.items():
        try:
            check_bound(key, value, "train_steps" if key == "steps" and run in CONCEPT_MAKERS else None)
        except UsageError as error:
            raise UsageError(f"{where}: {error}") from None


def _short(value: Any) -> str:
    """`value` as it reads in a one-line error: a long or deeply nested value is cut short."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"a {type(value).__name__} nested too deeply"
    return text if len(text) <= 80 else f"{text[:77]}..."


def _parse_job(index: int, raw: Any, defaults: dict[str, Any]) -> Job:
    if not isinstance(raw, dict):
        raise UsageError(f"job {index + 1} is not a table ({_short(raw)}); write each job as a [[job]] table.")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise UsageError(
            f"job {index + 1}: name must be letters, digits, '.', '_' or '-' (got {name!r}); give each job a name."
        )
    where = f"job {name!r}"
    run = raw.get("run")
    if not isinstance(run, str) or run not in JOB_KEYS:
        raise UsageError(f"{where}: run must be one of {', '.join(JOB_KEYS)} (got {_short(run)}).")
    keys = JOB_KEYS[run]
    unknown = sorted(set(raw) - set(keys) - set(JOB_FIELDS))
    if unknown:
        raise UsageError(f"{where}: {run} takes no {', '.join(unknown)}; it takes {', '.join(sorted(keys))}.")
    options = {key: value for key, value in defaults.items() if key in SHARED_KEYS[run]}
    options |= {key: value for key, value in raw.items() if key in keys}
    options = {key: _check_value(where, key, value, keys[key]) for key, value in options.items()}
    _check_bounds(where, run, options)
    missing = [key for key in REQUIRED[run] if not options.get(key)]
    if missing:
        raise UsageError(f"{where}: {run} needs {', '.join(missing)}.")
    after = _check_value(where, "after", raw.get("after", []), "words")
    out = raw.get("out", name)
    folder = Path(out) if isinstance(out, str) else None
    if folder is None or folder.is_absolute() or ".." in folder.parts or not folder.parts:
        raise UsageError(f"{where}: out must be a folder inside the plan's output folder (got {_short(out)}).")
    return Job(name, run, options, tuple(after), folder.as_posix())


def _dependencies(jobs: tuple[Job, ...]) -> dict[str, tuple[str, ...]]:
    names = {job.name: job for job in jobs}
    dependencies = {}
    for job in jobs:
        unknown = [name for name in job.after if name not in names]
        if unknown:
            raise UsageError(f"job {job.name!r}: after names {', '.join(unknown)}, which is not a job of the plan.")
        for reference in job.references:
            if reference in names and names[reference].run not in CONCEPT_MAKERS:
                raise UsageError(f"job {job.name!r}: {reference!r} is a {names[reference].run} job, not a concept.")
        dependencies[job.name] = tuple(dict.fromkeys([*job.after, *(r for r in job.references if r in names)]))
    return dependencies


def check_outs(jobs: tuple[Job, ...]) -> None:
    """Each job's out (already normalised: no `.`, no trailing `/`) is its own: not another job's folder, not inside
    or around one, and not one of the batch's own files; checked in one pass over the outs and their parents."""
    owners: dict[str, str] = {}
    for job in jobs:
        relative = Path(job.out)
        if relative.parts[0] in BATCH_OWN:
            raise UsageError(
                f"job {job.name!r}: out {job.out!r} is the batch's own ({SUMMARY_FILE}, {INPUTS_FOLDER}/, "
                f"{RECORDS_FOLDER}/); give the job another name or out."
            )
        if job.out in owners:
            raise UsageError(
                f"job {job.name!r}: out {job.out!r} is job {owners[job.out]!r}'s folder too; give each job its own."
            )
        owners[job.out] = job.name
    for job in jobs:
        around = next((parent.as_posix() for parent in Path(job.out).parents if parent.as_posix() in owners), None)
        if around is not None:
            raise UsageError(
                f"job {job.name!r}: out {job.out!r} lies inside job {owners[around]!r}'s folder {around!r}; "
                "give each job a folder of its own."
            )


def topological_order(plan: Plan) -> list[str]:
    """Job names so that every job comes after what it waits for; a cycle is a usage error naming it.

    A depth-first walk with its own stack (a chain of thousands of `after`s is no recursion), each job visited once.
    """
    order: list[str] = []
    placed: set[str] = set()
    for job in plan.jobs:
        if job.name in placed:
            continue
        path, on_path = [job.name], {job.name}
        stack = [iter(plan.dependencies[job.name])]
        while stack:
            dependency = next(stack[-1], None)
            if dependency is None:
                stack.pop()
                done = path.pop()
                on_path.discard(done)
                order.append(done)
                placed.add(done)
            elif dependency in on_path:
                cycle = " -> ".join([*path[path.index(dependency) :], dependency])
                raise UsageError(f"The plan's jobs wait for each other in a circle ({cycle}); break the cycle.")
            elif dependency not in placed:
                path.append(dependency)
                on_path.add(dependency)
                stack.append(iter(plan.dependencies[dependency]))
    return order


def parse_plan(text: str, base: Path, out: Path | None = None, source: str = "plan") -> Plan:
    """A plan from TOML text; relative paths start at `base`; `out` overrides `[plan] out`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{source} is not valid TOML: {error}.") from None
    except RecursionError:
        raise UsageError(f"{source} nests arrays or tables too deeply to read; a plan's values are flat.") from None
    header = data.get("plan", {})
    raw_jobs = data.get("job", [])
    unknown = sorted(set(data) - {"plan", "job"})
    if unknown:
        raise UsageError(f"{source}: a plan has one [plan] table and [[job]] tables (found {', '.join(unknown)}).")
    if not isinstance(header, dict) or not isinstance(raw_jobs, list):
        shapes = f"plan is a {type(header).__name__}, job a {type(raw_jobs).__name__}"
        raise UsageError(f"{source}: a plan has one [plan] table and [[job]] tables ({shapes}).")
    if not raw_jobs:
        raise UsageError(f"{source} has no [[job]]; add at least one job.")
    if not isinstance(header.get("out", ""), str):
        raise UsageError(f"{source}: [plan] out must be a folder name in quotes (got {_short(header['out'])}).")
    defaults = {key: value for key, value in header.items() if key != "out"}
    jobs = tuple(_parse_job(index, raw, defaults) for index, raw in enumerate(raw_jobs))
    duplicates = sorted(name for name, count in Counter(job.name for job in jobs).items() if count > 1)
    if duplicates:
        raise UsageError(f"{source}: job names must be unique ({', '.join(duplicates)} repeats).")
    check_outs(jobs)
    chosen_out = out or base / header.get("out", "runs/plan")
    plan = Plan(jobs, Path(chosen_out), base, _dependencies(jobs))
    topological_order(plan)
    return plan


def read_plan(path: Path, out: Path | None = None) -> Plan:
    if not path.is_file():
        raise UsageError(f"No plan file at {path}; give a .toml plan (see 'conceptlab batch --help').")
    if path.stat().st_size > MAX_PLAN_BYTES:
        raise UsageError(f"{path} is {path.stat().st_size} bytes, more than a plan may be ({MAX_PLAN_BYTES}).")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not valid TOML (not even UTF-8 text); give a .toml plan.") from None
    return parse_plan(text, path.parent, out, source=str(path))


PLACEMENT_OPTIONS = frozenset({"device"})
"""Where a job runs, not what it makes: a finished job is reused when only this changed."""


def job_fingerprint(job: Job, inputs: dict[str, str]) -> str:
    """What makes a job's outputs what they are: its kind, options and the sha256 of each input it reads."""
    described = job.as_json()
    described["options"] = {key: value for key, value in job.options.items() if key not in PLACEMENT_OPTIONS}
    description = json.dumps({"job": described, "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(description.encode()).hexdigest()
