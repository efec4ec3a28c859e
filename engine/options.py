"""One declaration per option: the fields of each command's request or config carry its command-line name.

A field's option is its own name unless `renamed("lr")` says otherwise (`learning_rate` is `--lr`); a field that
a batch plan may not set (where a job writes, whether it replaces files) has `metadata=COMMAND_LINE_ONLY`.
A plan's keys are the option names with `_` for `-`, derived here from the fields, so they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
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
    return {field.name: _field_value(options[option_name(field)]) for field in chosen}


def _field_value(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


MAX_SEED = 2**64 - 1
"""The largest seed a random generator takes (torch seeds with 64 bits): a seed option is refused past it."""


def check_seeds(option: str, seeds: Iterable[int]) -> None:
    """Refuse a seed below 0 or beyond 64 bits at its option (`--seed`, `--seeds`, a seed plus its count)."""
    for seed in seeds:
        if not 0 <= seed <= MAX_SEED:
            raise UsageError(f"{option} {seed} is not a seed; give an integer from 0 to {MAX_SEED} (64 bits).")
