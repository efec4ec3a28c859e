"""`imagine.json`, the record of an imagine run, read through one validated reader: a rerun, `pick` and the gallery
all see the same refusals (not a regular file, too large or deep, a field of the wrong kind, an unknown format, a
file named outside the run folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conceptlab.engine.imagine.request import ImageRecord
from conceptlab.engine.io.records import ListOf, RecordError, Schema, check_format, check_table, inside, read_json
from conceptlab.engine.options import MAX_SEED

RECORD = "imagine.json"
FORMAT = 1
NEGATIVE = Schema({"word": str, "step": int, "source": str})
ANSWER = Schema({"step": int, "answer": str})
IMAGE = Schema(
    {
        "seed": int,
        "file": str,
        "negatives": ListOf(NEGATIVE),
        "answers": ListOf(ANSWER),
        "seconds_denoising": float,
        "seconds_asking": float,
    }
)
"""One image's entry; a field a newer writer adds goes in `optional` with its kind."""
IMAGINE_RECORD = Schema({"format": int, "settings": dict, "images": ListOf(IMAGE)})


@dataclass(frozen=True)
class ImagineRecord:
    """A validated `imagine.json`: its settings (as written) and its images, each file inside the run folder."""

    path: Path
    settings: dict[str, Any]
    images: tuple[ImageRecord, ...]

    @property
    def by_seed(self) -> dict[int, ImageRecord]:
        return {image.seed: image for image in self.images}


def read_imagine_record(folder: Path, fix: str = "") -> ImagineRecord:
    """The record `folder/imagine.json`, validated; a `RecordError` (one line naming the field) otherwise.

    `fix` ends each refusal with what the caller's user can do ("; choose another --out or add --force")."""
    path = Path(folder) / RECORD
    data = read_json(path, fix=fix)
    if not isinstance(data, dict):
        raise RecordError(f"{path} is not an imagine record (a table with format, settings and images){fix}.")
    check_format(path, data.get("format"), FORMAT, fix)
    check_table(str(path), data, IMAGINE_RECORD)
    images = []
    for index, entry in enumerate(data["images"]):
        where = f"{path}: images[{index}]"
        if not 0 <= entry["seed"] <= MAX_SEED:
            raise RecordError(f"{where}.seed {entry['seed']} is not a seed (0 to 2**64 - 1); the record was altered.")
        inside(folder, entry["file"], f"{where}.file")
        images.append(
            ImageRecord(
                entry["seed"],
                Path(folder) / entry["file"],
                tuple(entry["negatives"]),
                tuple(entry["answers"]),
                float(entry["seconds_denoising"]),
                float(entry["seconds_asking"]),
                skipped=True,
            )
        )
    return ImagineRecord(path, data["settings"], tuple(images))
