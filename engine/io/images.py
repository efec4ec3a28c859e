"""Read and write folders of images (what `evaluate --images` measures and what rendering caches)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.atomic import write_atomically, write_json

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
RENDER_RECORD = ".rendered.json"
"""Written into a folder of renders after its last image: what they were rendered from (`concept`: its sha256)
and how, so a rerun knows whether they are still current and the gallery knows whose pictures they are."""


def image_files(folder: Path) -> list[Path]:
    """The images directly inside `folder`, sorted by name; a one-line error when there are none."""
    if not folder.is_dir():
        raise UsageError(f"Image folder {folder} does not exist; give a folder of .png/.jpg images.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"Image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); add some or drop it.")
    return files


def load_images(folder: Path) -> list[Image.Image]:
    images = []
    for path in image_files(folder):
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
    """What the renders in `folder` were made from, or None for a folder without a (readable) record."""
    try:
        source = json.loads((folder / RENDER_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return source if isinstance(source, dict) else None
