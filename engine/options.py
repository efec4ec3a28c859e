"""One declaration per option: the fields of each command's request or config carry its command-line name.

A field's option is its own name unless `renamed("lr")` says otherwise (`learning_rate` is `--lr`); a field that
a batch plan may not set (where a job writes, whether it replaces files) has `metadata=COMMAND_LINE_ONLY`.
A plan's keys are the option names with `_` for `-`, derived here from the fields, so they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conceptlab.engine.errors import UsageError

PlanKind = type | str
"""How a plan value is checked: str, int, float, bool, or a list: "words", "floats", "ints"."""

LIST_KINDS: dict[Any, str] = {str: "words", Path: "words", float: "floats", int: "ints"}


def renamed(option: str, **field_arguments: Any) -> Any:
    """A dataclass field whose command-line option is `--option` rather than the field's name."""
    return dataclasses.field(metadata={"option": option}, **field_arguments)


COMMAND_LINE_ONLY = {"plan": False}
"""Field metadata of an option that the command line sets but a batch plan does not (the job decides it)."""
JOB_ONLY = {"shared": False}
"""Field metadata of an option a plan sets on the job itself, never through `[plan]` defaults or options shared by
every job: its name means something else to other commands (`steps` renders here, but trains in create)."""


def option_name(field: dataclasses.Field) -> str:
    return field.metadata.get("option", field.name)


def _plan_kind(hint: Any) -> PlanKind:
    arguments = [argument for argument in typing.get_args(hint) if argument is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return _plan_kind(arguments[0])
    if typing.get_origin(hint) is tuple:
        return LIST_KINDS[arguments[0]]
    return str if hint is Path else hint


def _fields(cls: type, names: Iterable[str] | None) -> list[dataclasses.Field]:
    fields = {field.name: field for field in dataclasses.fields(cls)}
    if names is None:
        return [field for field in fields.values() if field.metadata.get("plan", True)]
    return [fields[name] for name in names]


def plan_keys(cls: type, names: Iterable[str] | None = None) -> dict[str, PlanKind]:
    """Plan key -> kind for the fields `names` of the dataclass `cls` (default: every field a plan may set)."""
    hints = typing.get_type_hints(cls)
    return {option_name(field): _plan_kind(hints[field.name]) for field in _fields(cls, names)}


def shared_keys(cls: type, names: Iterable[str] | None = None) -> frozenset[str]:
    """The plan keys of `cls` that `[plan]` defaults and options shared by all jobs may set (see `JOB_ONLY`)."""
    return frozenset(option_name(field) for field in _fields(cls, names) if field.metadata.get("shared", True))


def option_kinds(cls: type, names: Iterable[str] | None = None) -> dict[str, PlanKind]:
    """Option name -> kind for the fields `names` of `cls` (default: every field, those only a command line sets
    included)."""
    return plan_keys(cls, _all_fields(cls) if names is None else names)


def request_values(cls: type, options: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, Any]:
    """Field name -> value for each of the fields `names` of `cls` (default: every field) that `options` (a
    command line's, by option name) sets."""
    return field_values(cls, options, _all_fields(cls) if names is None else names)


def _all_fields(cls: type) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]


def field_values(cls: type, options: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, Any]:
    """Field name -> value for each of those fields that `options` (keyed by option name) sets; lists as tuples."""
    chosen = [field for field in _fields(cls, names) if option_name(field) in options]
    for field in chosen:
        check_bound(option_name(field), options[option_name(field)], field.metadata.get("bound"))
    return {field.name: _field_value(options[option_name(field)]) for field in chosen}


def _field_value(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclasses.dataclass(frozen=True)
class Bound:
    """The largest value an option takes, and why: checked before any weights load."""

    high: float
    why: str


IMAGE_COUNT = Bound(1000, "every image is rendered, held and scored; 1000 is 30 times the 32 the paper scores")
SCHEDULE_STEPS = Bound(1000, "a diffusion schedule has 1000 timesteps, so more steps cannot be taken")
IMAGE_SIDE = Bound(4096, "memory grows with the side squared; 4096 is 4 times the largest model's native 1024")
GUIDANCE = Bound(100, "guidance multiplies a difference of predictions; beyond 100 it saturates or overflows")
TRAINING_STEPS = {"bound": "train_steps"}
"""Field metadata of `steps` where it counts optimization steps (create, evolve, breed, demo), not denoising ones."""
MAX_ITEMS = 1000
"""At most this many items in a comma-separated option (seeds, words, counts): each one is work."""
BOUNDS: dict[str, Bound] = {
    "n": IMAGE_COUNT,
    "images_per_parent": IMAGE_COUNT,
    "max_negatives": Bound(1000, "each negative is a word in every unconditional prompt"),
    "population": Bound(1000, "every member of the population is a concept trained each generation"),
    "generations": Bound(1000, "every generation trains and scores a population"),
    "children": Bound(1000, "every child is a concept trained and scored"),
    "size": IMAGE_SIDE,
    "image_size": IMAGE_SIDE,
    "steps": SCHEDULE_STEPS,
    "image_steps": SCHEDULE_STEPS,
    "prior_steps": SCHEDULE_STEPS,
    "train_steps": Bound(100_000, "the log keeps a row per step; 100000 is 40 times the paper's 2500"),
    "guidance": GUIDANCE,
    "prior_guidance": GUIDANCE,
    "ip_scale": Bound(10, "1 is the image's full weight in IP-Adapter's attention; beyond 10 it overflows"),
    "lr": Bound(1, "AdamW moves the token by about lr per step; a word's embedding is about 1 long"),
    "top_k": Bound(100, "each of the oracle's answers is a word kept and encoded"),
    "repeats": Bound(10_000, "each repeat is a timed step"),
    "sweep_repeats": Bound(10_000, "each repeat is a timed step"),
    "warmup": Bound(10_000, "each warmup is an untimed step"),
    "negatives": Bound(1000, "each negative is a prompt encoded every step"),
    "negative_counts": Bound(1000, "each negative is a prompt encoded every step"),
    "text_layers": Bound(64, "a layer count of the benchmark's stack; the largest real model has 32"),
    "prior_layers": Bound(64, "a layer count of the benchmark's stack; the largest real model has 32"),
}
"""The bound of each option that sets a size, a count, a number of steps or a scale, by option name (a field's
`bound` metadata names another entry: training `steps`). docs/hostile-files.md lists them; `check_bound` enforces."""


def check_bound(option: str, value: Any, key: str | None = None) -> None:
    """Refuse `value` of `--option` (a number, or a tuple of them) beyond its bound, in one line naming the bound and
    why; a float must also be finite. Lower limits are each command's own checks."""
    flag = f"--{option.replace('_', '-')}" if len(option) > 1 else f"-{option}"
    if isinstance(value, tuple | list) and len(value) > MAX_ITEMS:
        raise UsageError(f"{flag} has {len(value)} items; give at most {MAX_ITEMS} (each one is work).")
    bound = BOUNDS.get(key or option)
    if bound is None or value is None:
        return
    for item in value if isinstance(value, tuple | list) else (value,):
        if isinstance(item, bool) or not isinstance(item, int | float):
            continue
        if isinstance(item, float) and not math.isfinite(item):
            raise UsageError(
                f"{flag} must be a finite number within the bound {bound.high:g} (got {item}): {bound.why}."
            )
        if item > bound.high:
            shown = item if isinstance(item, int) else f"{item:g}"
            raise UsageError(f"{flag} {shown} is beyond the bound {bound.high:g}: {bound.why}.")


def check_bounds(request: Any) -> None:
    """`check_bound` on every field of the dataclass `request`: a library caller's request meets the same bounds as
    the command line's."""
    for field in dataclasses.fields(request):
        check_bound(option_name(field) or field.name, getattr(request, field.name), field.metadata.get("bound"))


MAX_SEED = 2**64 - 1
"""The largest seed a random generator takes (torch seeds with 64 bits): a seed option is refused past it."""


def check_seeds(option: str, seeds: Iterable[int]) -> None:
    """Refuse a seed below 0 or beyond 64 bits at its option (`--seed`, `--seeds`, a seed plus its count)."""
    for seed in seeds:
        if not 0 <= seed <= MAX_SEED:
            raise UsageError(f"{option} {seed} is not a seed; give an integer from 0 to {MAX_SEED} (64 bits).")
