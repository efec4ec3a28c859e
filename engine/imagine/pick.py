"""Pick images of an imagine run by seed into a folder of their own: a parent `evolve` reads as a folder of images,
so a picture one likes becomes a reusable token (ConceptLab's), trained toward the picked images."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from conceptlab.engine.errors import UsageError
from conceptlab.engine.imagine.run import RECORD
from conceptlab.engine.io.atomic import refuse_existing, write_atomically


@dataclass(frozen=True)
class PickRequest:
    """`conceptlab pick`: one field per option."""

    run: Path
    """The folder an imagine run wrote."""
    seeds: tuple[int, ...]
    out: Path
    force: bool = False


def pick(request: PickRequest) -> list[Path]:
    """Copy `run/<seed>.png` for each seed the run's `imagine.json` records into `out`; return the copies."""
    run, seeds, out = request.run, request.seeds, request.out
    try:
        record = json.loads((run / RECORD).read_text(encoding="utf-8"))
        files = {int(image["seed"]): str(image["file"]) for image in record["images"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"{run} holds no readable {RECORD}; give the folder an imagine run wrote.") from None
    if not seeds:
        raise UsageError("--seeds is empty; name the seeds of the images to pick, e.g. --seeds 3,5.")
    missing = [seed for seed in seeds if seed not in files or not (run / files[seed]).is_file()]
    if missing:
        raise UsageError(f"{run} has no image of seed {missing[0]}; its seeds are {sorted(files)}.")
    if out.resolve() == run.resolve():
        raise UsageError(f"--out {out} is the run itself; give a new folder for the picked images.")
    targets = [out / files[seed] for seed in seeds]
    refuse_existing(targets, request.force, "--out")
    out.mkdir(parents=True, exist_ok=True)
    for seed, target in zip(seeds, targets, strict=True):
        write_atomically(target, (run / files[seed]).read_bytes())
    return targets
