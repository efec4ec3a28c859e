"""Read and write folders of images (what `evaluate --images` measures and what rendering caches)."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.image_processor import VaeImageProcessor
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
MAX_LOADED_SIDE = 1024
"""A larger image is shrunk to this side as it is read (one image at a time), so a folder costs memory by its count,
not its pixels: CLIP sees 224 or 336 pixels, and renders are at most 1024."""
MAX_FOLDER_IMAGES = 1000
"""The most images a folder may hand to evaluate or evolve (the bound of -n: each one is embedded and held)."""


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
    if len(files) > MAX_FOLDER_IMAGES:
        raise UsageError(
            f"Image folder {folder} holds {len(files)} images, beyond the bound {MAX_FOLDER_IMAGES} (each one is "
            "read, embedded and held); give a folder of fewer."
        )
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
    """The images `files` of `folder` (default: all of them), as RGB, each read alone and shrunk to
    `MAX_LOADED_SIDE` if larger; one line naming a file that cannot be one."""
    images = []
    for path in image_files(folder) if files is None else files:
        problem = image_problem(path)
        if problem:
            raise UsageError(f"{path} {problem}; remove it from {folder}.")
        try:
            with Image.open(path) as image:
                image.thumbnail((MAX_LOADED_SIDE, MAX_LOADED_SIDE))  # no-op at or below the side
                images.append(image.convert("RGB"))
        except (UnidentifiedImageError, OSError):
            raise UsageError(f"{path} is not a readable image; remove it from {folder}.") from None
    return images


NON_FINITE_ADVICE = "lower --guidance (or --ip-scale, --prior-guidance), or use another concept"


def finite_images(pixels: np.ndarray, what: str) -> list[Image.Image]:
    """A pipeline's `output_type="np"` pixels (`[n, h, w, c]` in [0, 1]) as the PIL images `output_type="pil"` gives
    (diffusers' own conversion), refused in one line when any pixel is NaN or infinite: such an image would be
    written black, and nothing would say why."""
    if not np.isfinite(pixels).all():
        raise UsageError(f"{what} came out NaN or infinite, so no image was written; {NON_FINITE_ADVICE}.")
    return VaeImageProcessor.numpy_to_pil(pixels)


def check_finite_tensors(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Refuse to write tensors holding NaN or infinite values (what a too-large guidance or concept makes)."""
    broken = [name for name, tensor in tensors.items() if not torch.isfinite(tensor).all()]
    if broken:
        raise UsageError(
            f"{what}: {', '.join(broken)} came out NaN or infinite, so nothing was written; {NON_FINITE_ADVICE}."
        )


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


RENDERED_FILES = "files"
"""The render record's key naming each image it wrote and its sha256, so a reuse can check what it reads."""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_renders(images: list[Image.Image], folder: Path, source: dict[str, Any]) -> None:
    """`save_images`, then the folder's render record (last, so a folder without one is unfinished): `source` and,
    under `RENDERED_FILES`, each image's name and sha256."""
    paths = save_images(images, folder)
    write_json(folder / RENDER_RECORD, {**source, RENDERED_FILES: {path.name: file_sha256(path) for path in paths}})


def rendered_files(folder: Path, record: dict[str, Any]) -> tuple[list[Path], str | None]:
    """The images a render record lists, and what is wrong with them (None when each is there with its recorded
    sha256, and there are as many as the record's `count`)."""
    files = record.get(RENDERED_FILES)
    if not isinstance(files, dict) or not all(isinstance(digest, str) for digest in files.values()):
        return [], "its render record lists no sha256 per image (an earlier version wrote it)"
    paths = [folder / name for name in files if isinstance(name, str) and Path(name).name == name]
    if len(paths) != len(files) or len(paths) != record.get("count", len(paths)):
        return paths, f"its render record lists {len(files)} images for a count of {record.get('count')}"
    for path in paths:
        if image_problem(path) is not None:
            return paths, f"{path.name}, which its render record lists, is missing or unreadable"
        if file_sha256(path) != files[path.name]:
            return paths, f"{path.name} is not the image its render record hashed (changed or swapped)"
    return paths, None


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
