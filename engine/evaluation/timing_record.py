"""`timing.json` beside a folder of renders, read through one validated reader: only the seconds it exists to
record (`render-seconds` per image, `train-seconds` per concept), each a list of finite non-negative numbers.

Any other key is ignored, so a file beside the images cannot stand in for a computed score; a FIFO, a file too
large or too deep, or a seconds field of the wrong kind is refused in one line naming the file and the field.
"""

from __future__ import annotations

import os
from pathlib import Path

from conceptlab.engine.io.records import ListOf, RecordError, check_value, read_json

TIMING_FILE = "timing.json"
SECONDS_FIELDS = ("render-seconds", "train-seconds")
MAX_TIMING_BYTES = 1024 * 1024
"""One number per image: a megabyte holds tens of thousands."""


def read_timing(folder: Path) -> dict[str, list[float]]:
    """The seconds fields of `folder/timing.json` (an empty table when there is no such file)."""
    path = Path(folder) / TIMING_FILE
    if not os.path.lexists(path):
        return {}
    data = read_json(path, MAX_TIMING_BYTES, fix="; delete it to evaluate without recorded seconds")
    if not isinstance(data, dict):
        raise RecordError(f"{path} is not a table of seconds; delete it to evaluate without recorded seconds.")
    costs = {}
    for key in SECONDS_FIELDS:
        if key in data:
            check_value(f"{path}: {key}", data[key], ListOf(float))
            if any(value < 0 for value in data[key]):
                raise RecordError(f"{path}: {key} holds a negative number of seconds; the record was altered.")
            costs[key] = [float(value) for value in data[key]]
    return costs
