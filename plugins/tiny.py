"""The `tiny` backend: a small, trained world of the real prior architectures, built locally and cached."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from conceptlab.engine.backend import DecoderStack, PriorStack
from conceptlab.plugins.kandinsky import Kandinsky22Backend

TINY_RECIPE_VERSION = "1"


def cache_root() -> Path:
    """`$CONCEPTLAB_CACHE`, else `$XDG_CACHE_HOME/conceptlab`, else `~/.cache/conceptlab`."""
    if os.environ.get("CONCEPTLAB_CACHE"):
        return Path(os.environ["CONCEPTLAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "conceptlab"


def _recipe_fingerprint(recipe: str) -> str:
    """Changes whenever the code that builds a tiny model changes, so a stale cache is never used."""
    source = (Path(__file__).parent / recipe).read_bytes()
    return hashlib.sha256(source + TINY_RECIPE_VERSION.encode()).hexdigest()[:12]


def _cached_build(prefix: str, recipe: str, save: Callable[[Path], None]) -> Path:
    """The folder `save` writes, built once per recipe version (in a staging folder, then renamed) and cached."""
    folder = cache_root() / f"{prefix}-{_recipe_fingerprint(recipe)}"
    if (folder / "model_index.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=folder.parent))
    try:
        with torch.random.fork_rng():
            save(staging)
        os.replace(staging, folder)
    except OSError:
        if not (folder / "model_index.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def tiny_world_folder() -> Path:
    """The cached tiny world (the prior side), built on first use (about 25 s)."""
    from conceptlab.plugins.tiny_world import save_tiny_world

    return _cached_build("tiny", "tiny_world.py", save_tiny_world)


def tiny_decoder_folder() -> Path:
    """The cached tiny decoder, built on first use (a second); its own cache, so the prior's stays valid."""
    from conceptlab.plugins.tiny_decoder import save_tiny_decoder

    return _cached_build("tiny-decoder", "tiny_decoder.py", save_tiny_decoder)


class TinyBackend(Kandinsky22Backend):
    """Same loading code as Kandinsky 2.2; `tiny` resolves to the locally built folder."""

    name = "tiny"
    default_model = "tiny"
    default_decoder = "tiny"
    recommended_learning_rate = 1e-3
    recommended_render = {"size": 32, "steps": 10}  # noqa: RUF012 (read-only class default)
    """Random decoder weights make no picture at any size or step count; these keep a render under a second on a
    CPU (about 2 s at 50 steps)."""
    evaluation_clip = "tiny"
    """`conceptlab evaluate` scores this backend's images with the tiny CLIP unless `--clip` says otherwise."""

    def load_prior(
        self, model: str, device: torch.device, dtype: torch.dtype, revision: str | None = None
    ) -> PriorStack:
        folder = str(tiny_world_folder()) if model == "tiny" else model
        return super().load_prior(folder, device, dtype, revision)

    def load_decoder(
        self, model: str | None, device: torch.device, dtype: torch.dtype, revision: str | None = None
    ) -> DecoderStack:
        folder = str(tiny_decoder_folder()) if model in (None, "tiny") else model
        return super().load_decoder(folder, device, dtype, revision)
