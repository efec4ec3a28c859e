"""Where conceptlab keeps what it can rebuild (tiny models, rendered parent images), and how it builds them once.

A built model's folder is named after the bytes of the sources that build it (`recipe_fingerprint`), so editing a
builder makes the next use rebuild instead of reading a stale folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

RECIPE_VERSION = "1"
"""Part of every recipe fingerprint: bumping it rebuilds every cached model."""


def cache_root() -> Path:
    """`$CONCEPTLAB_CACHE`, else `$XDG_CACHE_HOME/conceptlab`, else `~/.cache/conceptlab`."""
    if os.environ.get("CONCEPTLAB_CACHE"):
        return Path(os.environ["CONCEPTLAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "conceptlab"


def recipe_fingerprint(recipe_files: Sequence[Path]) -> str:
    """Changes whenever the code that builds a model changes, so a stale cache is never used."""
    recipe = b"".join(path.read_bytes() for path in recipe_files) + RECIPE_VERSION.encode()
    return hashlib.sha256(recipe).hexdigest()[:12]


def cached_folder(name: str, recipe_files: Sequence[Path]) -> Path:
    """Where `cached_build` keeps `name` for this recipe (built or not)."""
    return cache_root() / f"{name}-{recipe_fingerprint(recipe_files)}"


def is_built(folder: Path) -> bool:
    return (folder / ".complete").exists()


def cached_build(name: str, recipe_files: Sequence[Path], build: Callable[[Path], None]) -> Path:
    """`cache_root()/<name>-<recipe hash>`, built on first use by `build(folder)` and moved into place atomically.

    `recipe_files` are the sources whose content decides what is built (the builder and what it reads)."""
    folder = cached_folder(name, recipe_files)
    if is_built(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng():
            # One thread: tiny tensors gain little from a second, and on a busy machine OpenMP's waiting threads
            # made the decoder's training several times slower.
            torch.set_num_threads(1)
            build(staging)
        (staging / ".complete").touch()
        shutil.rmtree(folder, ignore_errors=True)  # a build interrupted before this marker existed
        os.replace(staging, folder)
    except OSError:
        if not (folder / ".complete").exists():
            raise
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(staging, ignore_errors=True)
    return folder
