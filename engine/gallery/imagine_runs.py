"""Imagine runs in the gallery: each folder with an `imagine.json`, its images with their negatives as chips (the
step from which each acts), copied beside the page like the concepts' pictures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conceptlab.engine.gallery.html import _negatives_html, _text, _url
from conceptlab.engine.gallery.pictures import IMAGES_FOLDER
from conceptlab.engine.imagine.run import RECORD
from conceptlab.engine.io.atomic import write_atomically


@dataclass(frozen=True)
class ImagineRun:
    folder: Path
    settings: dict[str, Any]
    images: tuple[dict[str, Any], ...]
    """Each recorded image whose file is there: `seed`, `file`, `negatives`."""


def find_imagine_runs(folder: Path) -> list[ImagineRun]:
    """Every readable `imagine.json` under `folder` (recursively), in path order; unreadable ones are left out."""
    runs = []
    for record in sorted(Path(folder).rglob(RECORD)):
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            images = tuple(
                image
                for image in data["images"]
                if isinstance(image, dict) and (record.parent / image["file"]).is_file()
            )
            settings = data["settings"] if isinstance(data["settings"], dict) else {}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if images:
            runs.append(ImagineRun(record.parent, settings, images))
    return runs


def copy_run_images(run: ImagineRun, index: int, out: Path) -> list[str]:
    """Copy the run's images under `out/images/imagine-<index>/`; their paths relative to the page."""
    folder = Path(IMAGES_FOLDER) / f"imagine-{index}"
    paths = []
    for image in run.images:
        target = folder / Path(str(image["file"])).name
        write_atomically(out / target, (run.folder / str(image["file"])).read_bytes())
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
            f'<figure class="imagined"><a href="{_url(path)}"><img src="{_url(path)}" alt="seed {_text(image["seed"])}"'
            f' loading="eager"></a><figcaption>seed {_text(image["seed"])}</figcaption>'
            f"{_negatives_html({'negatives': image.get('negatives')})}</figure>"
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
