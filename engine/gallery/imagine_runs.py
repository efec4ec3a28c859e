"""Imagine runs in the gallery: each folder with an `imagine.json`, its images with their negatives as chips (the
step from which each acts), copied beside the page like the concepts' pictures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conceptlab.engine.errors import UsageError
from conceptlab.engine.gallery.html import _negatives_html, _text, _url
from conceptlab.engine.gallery.model import SkippedFile
from conceptlab.engine.gallery.pictures import IMAGES_FOLDER
from conceptlab.engine.imagine.record import RECORD, read_imagine_record
from conceptlab.engine.imagine.request import ImageRecord
from conceptlab.engine.io.atomic import write_atomically
from conceptlab.engine.io.images import MAX_IMAGE_BYTES, image_problem
from conceptlab.engine.io.records import inside, record_bytes, write_inside


@dataclass(frozen=True)
class ImagineRun:
    folder: Path
    settings: dict[str, Any]
    images: tuple[ImageRecord, ...]
    """Each recorded image whose file is there (inside the run folder, as the record reader checks)."""


def find_imagine_runs(folder: Path, skipped: list[SkippedFile] | None = None) -> list[ImagineRun]:
    """Every `imagine.json` under `folder` (recursively), in path order; one the record reader refuses (not a
    regular file, a field of the wrong kind, a file named outside its run) is left out and added to `skipped`."""
    runs = []
    for path in sorted(Path(folder).rglob(RECORD)):
        try:
            record = read_imagine_record(path.parent)
        except UsageError as problem:
            if skipped is not None:
                skipped.append(SkippedFile(path, str(problem)))
            continue
        images = tuple(image for image in record.images if _shown(image.path, skipped))
        if images:
            runs.append(ImagineRun(path.parent, record.settings, images))
    return runs


def _shown(path: Path, skipped: list[SkippedFile] | None) -> bool:
    """Whether an image the record names goes on the page: there, and readable as an image (no FIFO, no bomb)."""
    if not path.exists():
        return False
    problem = image_problem(path)
    if problem and skipped is not None:
        skipped.append(SkippedFile(path, problem))
    return problem is None


def copy_run_images(run: ImagineRun, index: int, out: Path) -> list[str]:
    """Copy the run's images under `out/images/imagine-<index>/`; their paths relative to the page. Each source is
    read as a regular file inside the run folder (checked again here, just before reading)."""
    folder = Path(IMAGES_FOLDER) / f"imagine-{index}"
    paths = []
    for image in run.images:
        name = image.path.relative_to(run.folder).as_posix()
        source = inside(run.folder, name, f"{run.folder / RECORD}: the file of seed {image.seed}")
        target = folder / source.name
        write_atomically(write_inside(out, out / target, "a gallery picture"), record_bytes(source, MAX_IMAGE_BYTES))
        paths.append(target.as_posix())
    return paths


def imagine_section_html(runs: list[ImagineRun], pictures: list[list[str]]) -> str:
    """A section with a card per run: what was imagined, with which model and oracle, and each image's negatives."""
    if not runs:
        return ""
    cards = []
    for run, paths in zip(runs, pictures, strict=True):
        settings = run.settings
        title = str(settings.get("prompt", "{}")).replace("{}", str(settings.get("category", "")))
        figures = "".join(
            f'<figure class="imagined"><a href="{_url(path)}"><img src="{_url(path)}" alt="seed {_text(image.seed)}"'
            f' loading="eager"></a><figcaption>seed {_text(image.seed)}</figcaption>'
            f"{_negatives_html({'negatives': list(image.negatives)})}</figure>"
            for image, path in zip(run.images, paths, strict=True)
        )
        about = (
            f"{settings.get('model', '?')} · oracle {settings.get('oracle', '?')} · {settings.get('steps', '?')} steps"
        )
        cards.append(
            f'<article class="card imagine-run"><div class="body"><div class="title"><h3>{_text(title)}</h3>'
            f'<span class="badge">imagine</span></div><p class="hint">{_text(about)} · {_text(run.folder.name)}</p>'
            f'</div><div class="pictures">{figures}</div></article>'
        )
    return f'<section><h2>Imagine runs</h2><div class="cards">{"".join(cards)}</div></section>'
