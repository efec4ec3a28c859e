"""Read and write folders of images (what `evaluate --images` measures and what rendering caches)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from conceptlab.engine.errors import UsageError
from conceptlab.engine.files import write_atomically

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


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


def save_images(images: list[Image.Image], folder: Path, prefix: str = "") -> list[Path]:
    """Write `prefix0000.png`, `prefix0001.png`, ... atomically."""
    paths = []
    for index, image in enumerate(images):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        path = folder / f"{prefix}{index:04d}.png"
        write_atomically(path, buffer.getvalue())
        paths.append(path)
    return paths
