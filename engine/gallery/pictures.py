"""Copies of a concept's pictures for the gallery: the full-size file, and a thumbnail when it is large."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from conceptlab.engine.gallery.model import GalleryConcept
from conceptlab.engine.io.atomic import write_atomically
from conceptlab.engine.io.images import png_bytes

THUMBNAIL_SIDE = 480
"""Pictures larger than this (either side) are shown as a thumbnail that links to the full-size copy."""
IMAGES_FOLDER = "images"


@dataclass(frozen=True)
class PictureLink:
    """A picture as the page refers to it: paths relative to the page."""

    role: str
    """`strip`, `render`, `similarities`, `grid` or `evaluated` (a render made to score the concept)."""
    caption: str
    full: str
    shown: str
    """The thumbnail, or the full-size copy when it is small enough."""


def roles(concept: GalleryConcept) -> list[tuple[str, Path]]:
    pictures = concept.pictures
    found = [("strip", pictures.strip)] if pictures.strip else []
    found += [("render", path) for path in pictures.latest]
    found += [("grid", path) for path in pictures.grids]
    found += [("evaluated", path) for path in pictures.evaluated]
    found += [("similarities", pictures.similarities)] if pictures.similarities else []
    return found


def _thumbnail_bytes(image: Image.Image) -> bytes:
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return png_bytes(thumbnail)


def copy_pictures(concept: GalleryConcept, out: Path) -> list[PictureLink]:
    """Copy `concept`'s pictures under `out/images/<sha>/`; unreadable images are left out of the page."""
    folder = Path(IMAGES_FOLDER) / concept.sha256[:16]
    links = []
    for index, (role, source) in enumerate(roles(concept)):
        data = source.read_bytes()
        try:
            with Image.open(BytesIO(data)) as image:
                large = max(image.size) > THUMBNAIL_SIDE
                thumbnail = _thumbnail_bytes(image) if large else None
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            continue
        full = folder / f"{index:02d}-{source.name}"
        write_atomically(out / full, data)
        shown = full
        if thumbnail is not None:
            shown = folder / f"{index:02d}-thumb-{source.name}"
            write_atomically(out / shown, thumbnail)
        links.append(PictureLink(role, source.name, full.as_posix(), shown.as_posix()))
    return links
