"""Photos uploaded through the studio become a folder of images under `--root`, which evolve takes as a parent.

They come from a browser, so they are bounded before anything is kept: how many, how many bytes each, how many
pixels each, and each is read as an image the way `evaluate --images` reads one (`image_problem`, then decoded).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.atomic import write_atomically
from conceptlab.engine.io.images import image_problem, png_bytes
from conceptlab.engine.studio.paths import confined

MAX_UPLOAD_IMAGES = 64
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
"""Per image: a photo from a phone is a few MB."""
MAX_UPLOAD_PIXELS = 4096 * 4096
UPLOADS = "uploads"
"""The folder under `--root` that uploaded sets go into."""


def upload_folder_name(name: str) -> str:
    """The set's folder name: letters, digits, `-` and `_` only (a slug of what was typed)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:64]
    if not slug:
        raise UsageError("Name the uploaded set (letters, digits, - or _), e.g. my-lizard.")
    return slug


def check_uploads(files: Sequence[Path]) -> list[Image.Image]:
    """The uploaded files as RGB images, each checked; one line naming the first that is refused."""
    if not files:
        raise UsageError("No images uploaded; choose one or more .png or .jpg files.")
    if len(files) > MAX_UPLOAD_IMAGES:
        raise UsageError(f"{len(files)} images uploaded; give at most {MAX_UPLOAD_IMAGES}.")
    images = []
    for path in files:
        label = Path(path).name
        problem = image_problem(Path(path))
        if problem:
            raise UsageError(f"{label} {problem}; upload .png or .jpg photos.")
        if Path(path).stat().st_size > MAX_UPLOAD_BYTES:
            raise UsageError(f"{label} is larger than {MAX_UPLOAD_BYTES // 2**20} MiB; upload a smaller photo.")
        try:
            with Image.open(path) as image:
                if image.width * image.height > MAX_UPLOAD_PIXELS:
                    raise UsageError(
                        f"{label} is {image.width}x{image.height} pixels, more than {MAX_UPLOAD_PIXELS}; scale it down."
                    )
                images.append(image.convert("RGB"))
        except (UnidentifiedImageError, OSError):
            raise UsageError(f"{label} is not a readable image; upload .png or .jpg photos.") from None
    return images


def import_uploads(root: Path, name: str, files: Sequence[Path]) -> Path:
    """Check the uploaded `files` and write them as PNGs into `root/uploads/<name>/` (never over an earlier set);
    the folder, which the library lists as an image set."""
    images = check_uploads(files)
    folder = confined(root, f"{UPLOADS}/{upload_folder_name(name)}")
    targets = [folder / f"{index:03d}.png" for index in range(len(images))]
    if folder.exists():
        raise UsageError(f"An uploaded set {folder.name!r} already exists; give the new set another name.")
    for target, image in zip(targets, images, strict=True):
        write_atomically(target, png_bytes(image))
    return folder
