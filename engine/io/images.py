"""Read and write folders of images (what `evaluate --images` measures and what rendering caches)."""

from __future__ import annotations

import fnmatch
import io
import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.atomic import write_atomically, write_json
from conceptlab.engine.io.records import RecordError, read_json

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
RENDER_RECORD = ".rendered.json"
"""Written into a folder of renders after its last image: what they were rendered from (`concept`: its sha256)
and how, so a rerun knows whether they are still current and the gallery knows whose pictures they are."""


MAX_IMAGE_PIXELS = 8192 * 8192
"""An image claiming more pixels than this is refused before it is decoded: a few bytes of PNG header can claim
billions (a decompression bomb). Renders, strips and grids stay far below it."""
MAX_IMAGE_BYTES = 256 * 1024 * 1024


def image_problem(path: Path) -> str | None:
    """Why `path` cannot be read as an image, as a phrase, or None. Reads the header only.

    Folders, FIFOs and devices named like images are refused without being opened (reading a FIFO would wait
    forever).
    """
    try:
        status = path.stat()
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if not stat.S_ISREG(status.st_mode):
        return "is not a regular file"
    if status.st_size > MAX_IMAGE_BYTES:
        return f"is {status.st_size} bytes, more than an image may have ({MAX_IMAGE_BYTES})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        return f"claims more pixels than an image may have ({MAX_IMAGE_PIXELS}); a decompression bomb"
    except (UnidentifiedImageError, OSError, ValueError):
        return "is not a readable image"
    if width * height > MAX_IMAGE_PIXELS:
        return f"claims {width}x{height} pixels, more than an image may have ({MAX_IMAGE_PIXELS}); a decompression bomb"
    return None


def image_files(folder: Path) -> list[Path]:
    """The images directly inside `folder`, sorted by name; a one-line error when there are none."""
    if not folder.is_dir():
        raise UsageError(f"Image folder {folder} does not exist; give a folder of .png/.jpg images.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"Image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); add some or drop it.")
    return files


TOOLKIT_PICTURES = ("*-grid.png", "strip.png", "similarities.png")
"""What the toolkit writes beside its images (sample's grids, create's strip, the similarity plot): not images of a
concept, so never scored as one."""


def _toolkit_picture(path: Path) -> bool:
    return any(fnmatch.fnmatch(path.name.lower(), pattern) for pattern in TOOLKIT_PICTURES)


def scored_image_files(folder: Path) -> tuple[list[Path], int]:
    """The images of `folder` to score and how many toolkit pictures (grids, strips, plots) were left out; a folder
    with none left is refused in one line."""
    files = image_files(folder)
    kept = [path for path in files if not _toolkit_picture(path)]
    if not kept:
        raise UsageError(
            f"Image folder {folder} holds only grids, strips or plots the toolkit wrote ({len(files)}); "
            "give the folder of the images themselves."
        )
    return kept, len(files) - len(kept)


def load_images(folder: Path, files: Sequence[Path] | None = None) -> list[Image.Image]:
    """The images `files` of `folder` (default: all of them), as RGB; one line naming a file that cannot be one."""
    images = []
    for path in image_files(folder) if files is None else files:
        problem = image_problem(path)
        if problem:
            raise UsageError(f"{path} {problem}; remove it from {folder}.")
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except (UnidentifiedImageError, OSError):
            raise UsageError(f"{path} is not a readable image; remove it from {folder}.") from None
    return images


def png_bytes(image: Image.Image) -> bytes:
    """`image` encoded as PNG with PIL's defaults, so the same pixels always give the same bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: Path, image: Image.Image) -> None:
    write_atomically(path, png_bytes(image))


def save_images(images: list[Image.Image], folder: Path, prefix: str = "") -> list[Path]:
    """Write `prefix0000.png`, `prefix0001.png`, ... atomically."""
    paths = []
    for index, image in enumerate(images):
        path = folder / f"{prefix}{index:04d}.png"
        write_png(path, image)
        paths.append(path)
    return paths


def save_renders(images: list[Image.Image], folder: Path, source: dict[str, Any]) -> None:
    """`save_images`, then the folder's render record (last, so a folder without one is unfinished)."""
    save_images(images, folder)
    write_json(folder / RENDER_RECORD, source)


def render_source(folder: Path) -> dict[str, Any] | None:
    """What the renders in `folder` were made from (the protocol's render record), or None for a folder without
    one (an interrupted render). The record is read as records are (`read_json`): one that is not a regular file,
    too large or too deep, or not a table is refused in one line."""
    path = folder / RENDER_RECORD
    if not os.path.lexists(path):
        return None
    source = read_json(path, fix="; delete it to render the folder again")
    if not isinstance(source, dict):
        raise RecordError(f"{path} is not a render record (a table); delete it to render the folder again.")
    return source
