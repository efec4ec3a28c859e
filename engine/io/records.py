"""Records read as untrusted: the one way a record file (imagine.json, timing.json, a render record, the settings
file) is opened, parsed, checked against its schema and has the files it names resolved.

A record is opened only when it is a regular file (a FIFO would block the reader forever, a device never ends): its
kind is checked with `stat` before opening, and again on the open descriptor, opened non-blocking. It is read up
to a size bound, parsed without a RecursionError and refused past a nesting depth. A file it names must resolve,
symlinks included, inside the folder that holds the record. Every refusal is one line naming the record and the
field.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conceptlab.engine.errors import UsageError

MAX_RECORD_BYTES = 16 * 1024 * 1024
"""A record is kilobytes (an imagine run of thousands of images: a few megabytes); past this it is not one."""
MAX_DEPTH = 32
"""Nesting a record may have: the deepest conceptlab writes is 4 (images, negatives, their fields)."""


class RecordError(UsageError):
    """A record that cannot be read as its kind: one line naming the file, the field and what to do."""


def record_bytes(path: Path, limit: int = MAX_RECORD_BYTES, fix: str = "") -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them; anything else is a `RecordError`."""
    path = Path(path)
    try:
        kind = os.stat(path).st_mode
        if not stat.S_ISREG(kind):
            raise RecordError(f"{path} is not a regular file (a folder, FIFO or device); not read{fix}.")
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise RecordError(f"{path}: no such file{fix}.") from None
    except OSError as error:
        raise RecordError(f"{path} cannot be read ({error.strerror}){fix}.") from None
    with os.fdopen(handle, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):  # replaced between the stat and the open
            raise RecordError(f"{path} is not a regular file (a folder, FIFO or device); not read{fix}.")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise RecordError(f"{path} is over {limit} bytes, too large to read{fix}.")
    return data


def read_json(path: Path, limit: int = MAX_RECORD_BYTES, fix: str = "") -> Any:
    """The JSON value of the record `path`: a regular file within `limit`, nested at most `MAX_DEPTH` deep."""
    data = record_bytes(path, limit, fix)
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise RecordError(f"{path} is not JSON{fix}.") from None
    except RecursionError:
        raise RecordError(f"{path} is nested too deeply to be a record{fix}.") from None
    check_depth(path, value, fix)
    return value


def check_depth(path: Path | str, value: Any, fix: str = "") -> None:
    """Refuse `value` nested deeper than `MAX_DEPTH` (walked without recursion)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise RecordError(f"{path} is nested more than {MAX_DEPTH} deep, too deep to be a record{fix}.")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        pending.extend((child, depth + 1) for child in children)


def inside(folder: Path, name: object, where: str) -> Path:
    """`folder/name` resolved (symlinks included); a `RecordError` naming `where` (the record and its field) when
    it is not a relative path inside `folder`."""
    if not isinstance(name, str) or not name or "\x00" in name or Path(name).is_absolute():
        raise RecordError(f"{where} must name a file inside {folder}, not {name!r}; the record was altered.")
    base = Path(folder).resolve()
    target = (base / name).resolve()
    if not target.is_relative_to(base) or target == base:
        raise RecordError(f"{where} {name!r} resolves outside {folder}; the record was altered, not read.")
    return target


def write_inside(out: Path, target: Path, what: str) -> Path:
    """`target` resolved, refused unless inside `out` (both resolved now, after the folders are made): a write
    never lands outside its output folder, through `..`, a symlink or an absolute name."""
    base = Path(out).resolve()
    resolved = Path(target).resolve()
    if not resolved.is_relative_to(base) or resolved == base:
        raise RecordError(f"{what} {target} resolves outside {out}; nothing written.")
    return resolved


@dataclass(frozen=True)
class Schema:
    """The keys a record (or one table in it) must hold and those it may hold, each with its kind.

    A kind is a Python type (`int`, `str`, `float` = any finite number, `bool`, `dict`, `list`), a tuple of them,
    `None` in a tuple for null, a nested `Schema`, or `ListOf(kind)`. Keys not named are left alone (a newer
    writer's fields), so a kind of record grows by naming its new optional keys here.
    """

    required: Mapping[str, Any]
    optional: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ListOf:
    kind: Any


def _matches(value: Any, kind: Any) -> bool:
    if kind is None:
        return value is None
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _kind_name(kind: Any) -> str:
    if isinstance(kind, tuple):
        return " or ".join(_kind_name(item) for item in kind)
    if isinstance(kind, Schema):
        return "a table"
    if isinstance(kind, ListOf):
        return f"a list of {_kind_name(kind.kind)}"
    names = {int: "an integer", float: "a finite number", str: "text", bool: "true or false", dict: "a table"}
    return "null" if kind is None else names.get(kind, kind.__name__)


def check_value(where: str, value: Any, kind: Any) -> None:
    """Refuse `value` unless it is of `kind`, naming `where` (`record: images[2].seed`)."""
    if isinstance(kind, Schema):
        check_table(where, value, kind)
        return
    if isinstance(kind, ListOf):
        if not isinstance(value, list):
            raise RecordError(f"{where} must be {_kind_name(kind)}; the record was altered.")
        for index, item in enumerate(value):
            check_value(f"{where}[{index}]", item, kind.kind)
        return
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not any(_matches(value, item) for item in kinds):
        raise RecordError(f"{where} must be {_kind_name(kind)}, not {type(value).__name__}; the record was altered.")


def check_table(where: str, value: Any, schema: Schema) -> None:
    """Refuse `value` unless it is a table holding every required key and each key it holds is of its kind."""
    if not isinstance(value, dict):
        raise RecordError(f"{where} must be a table, not {type(value).__name__}; the record was altered.")
    missing = [key for key in schema.required if key not in value]
    if missing:
        raise RecordError(f"{where} has no {missing[0]!r}; the record was altered or is not one.")
    for key, kind in {**schema.required, **schema.optional}.items():
        if key in value:
            check_value(_child(where, key), value[key], kind)


def _child(where: str, key: str) -> str:
    """`record.json: images[2]` + `seed` -> `record.json: images[2].seed`; `record.json` + `images` ->
    `record.json: images`."""
    return f"{where}.{key}" if ": " in where else f"{where}: {key}"


def check_format(path: Path, value: Any, newest: int, fix: str = "") -> None:
    """Refuse a record's `format` that this conceptlab does not read (unknown, or written by a newer one)."""
    if not _matches(value, int) or value < 1:
        raise RecordError(f"{path}: unknown record format {value!r}{fix}.")
    if value > newest:
        raise RecordError(f"{path} uses record format {value}, newer than this conceptlab reads ({newest}); upgrade.")
