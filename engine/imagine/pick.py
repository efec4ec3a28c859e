"""Pick images of an imagine run by seed into a folder of their own: a parent `evolve` reads as a folder of images,
so a picture one likes becomes a reusable token (ConceptLab's), trained toward the picked images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conceptlab.engine.errors import UsageError
from conceptlab.engine.imagine.record import read_imagine_record
from conceptlab.engine.io.atomic import refuse_existing, write_atomically
from conceptlab.engine.io.images import MAX_IMAGE_BYTES
from conceptlab.engine.io.records import record_bytes, write_inside


@dataclass(frozen=True)
class PickRequest:
    """`conceptlab pick`: one field per option."""

    run: Path
    """The folder an imagine run wrote."""
    seeds: tuple[int, ...]
    out: Path
    force: bool = False


def pick(request: PickRequest) -> list[Path]:
    """Copy `run/<seed>.png` for each seed the run's `imagine.json` records into `out`; return the copies.

    Each file the record names must lie inside the run folder (a `RecordError` otherwise), and each copy is
    resolved inside `out` once it is made: neither the record nor a link in `out` sends a copy elsewhere."""
    run, seeds, out = request.run, request.seeds, request.out
    record = read_imagine_record(run, fix="; give the folder an imagine run wrote")
    files = {image.seed: image.path for image in record.images}
    if not seeds:
        raise UsageError("--seeds is empty; name the seeds of the images to pick, e.g. --seeds 3,5.")
    missing = [seed for seed in seeds if seed not in files or not files[seed].is_file()]
    if missing:
        raise UsageError(f"{run} has no image of seed {missing[0]}; its seeds are {sorted(files)}.")
    if out.resolve() == run.resolve():
        raise UsageError(f"--out {out} is the run itself; give a new folder for the picked images.")
    names = [files[seed].resolve().relative_to(run.resolve()) for seed in seeds]
    refuse_existing([out / name for name in names], request.force, "--out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"Cannot create --out {out}: {error.strerror}.") from None
    targets = [write_inside(out, out / name, "--out: the copy") for name in names]
    refuse_existing(targets, request.force, "--out")
    for seed, target in zip(seeds, targets, strict=True):
        write_atomically(target, record_bytes(files[seed], MAX_IMAGE_BYTES))
    return [out / name for name in names]
