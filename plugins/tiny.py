"""The `tiny` backend: a small, trained world of the real prior architectures, built locally and cached."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import torch

from conceptlab.engine.backend import PriorStack
from conceptlab.plugins.kandinsky import Kandinsky22Backend

TINY_RECIPE_VERSION = "1"


def cache_root() -> Path:
    """`$CONCEPTLAB_CACHE`, else `$XDG_CACHE_HOME/conceptlab`, else `~/.cache/conceptlab`."""
    if os.environ.get("CONCEPTLAB_CACHE"):
        return Path(os.environ["CONCEPTLAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "conceptlab"


def _recipe_fingerprint() -> str:
    """Changes whenever the code that builds the tiny world changes, so a stale cache is never used."""
    source = (Path(__file__).parent / "tiny_world.py").read_bytes()
    return hashlib.sha256(source + TINY_RECIPE_VERSION.encode()).hexdigest()[:12]


def tiny_world_folder() -> Path:
    """The cached tiny world, built on first use (about 25 s) and written atomically."""
    folder = cache_root() / f"tiny-{_recipe_fingerprint()}"
    if (folder / "model_index.json").exists():
        return folder
    from conceptlab.plugins.tiny_world import save_tiny_world

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=folder.parent))
    try:
        with torch.random.fork_rng():
            save_tiny_world(staging)
        os.replace(staging, folder)
    except OSError:
        if not (folder / "model_index.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


class TinyBackend(Kandinsky22Backend):
    """Same loading code as Kandinsky 2.2; `tiny` resolves to the locally built folder."""

    name = "tiny"
    default_model = "tiny"
    recommended_learning_rate = 1e-3
    evaluation_clip = "tiny"
    """`conceptlab evaluate` scores this backend's images with the tiny CLIP unless `--clip` says otherwise."""

    def load_prior(
        self, model: str, device: torch.device, dtype: torch.dtype, revision: str | None = None
    ) -> PriorStack:
        folder = str(tiny_world_folder()) if model == "tiny" else model
        return super().load_prior(folder, device, dtype, revision)
