"""The `tiny` backend: a small, trained world of the real prior architectures, built locally and cached."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from conceptlab.engine.io.cache import cache_root
from conceptlab.engine.models.backend import DecoderStack, PriorStack
from conceptlab.engine.portability.routes import ImageSpace
from conceptlab.plugins.kandinsky import Kandinsky22Backend
from conceptlab.plugins.tiny_world import CATEGORY_MEMBERS

TINY_RECIPE_VERSION = "1"
TINY_IMAGE_SPACE = ImageSpace("the tiny world's CLIP", 64)
"""The tiny world's image encoder (`tiny_world.EMBED_DIM` wide); the tiny routes are conditioned on it."""


def _recipe_fingerprint(recipe_files: Sequence[Path]) -> str:
    """Changes whenever the code that builds a tiny model changes, so a stale cache is never used."""
    recipe = b"".join(path.read_bytes() for path in recipe_files) + TINY_RECIPE_VERSION.encode()
    return hashlib.sha256(recipe).hexdigest()[:12]


def cached_folder(name: str, recipe_files: Sequence[Path]) -> Path:
    """Where `cached_build` keeps `name` for this recipe (built or not)."""
    return cache_root() / f"{name}-{_recipe_fingerprint(recipe_files)}"


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


def _tiny_world_recipe() -> tuple[Path, ...]:
    """The tiny world's sources: its builder, the CLIP vocabulary it pins, the prompt templates it trains on."""
    from conceptlab.engine.training import templates
    from conceptlab.plugins import clip_vocab, tiny_world

    return Path(tiny_world.__file__), Path(clip_vocab.__file__), Path(templates.__file__)


def tiny_world_folder() -> Path:
    """The cached tiny world (prior stack), built on first use."""
    from conceptlab.plugins import tiny_world

    return cached_build("tiny", _tiny_world_recipe(), tiny_world.save_tiny_world)


def tiny_world_built() -> bool:
    """Whether the tiny world and its decoder are already in the cache (a first run builds them)."""
    return is_built(cached_folder("tiny", _tiny_world_recipe())) and is_built(
        cached_folder("tiny-decoder", _tiny_decoder_recipe())
    )


def _tiny_decoder_recipe() -> tuple[Path, ...]:
    """The decoder's builder and the world it is trained on."""
    from conceptlab.plugins import tiny_decoder

    return Path(tiny_decoder.__file__), *_tiny_world_recipe()


def tiny_decoder_folder() -> Path:
    """The cached tiny decoder, trained on first use (about 90 s) on the tiny world's prior outputs, so rebuilt
    whenever the world is; its own cache, so the prior's stays valid when only the decoder changes."""
    from conceptlab.plugins import tiny_decoder

    world = tiny_world_folder()
    return cached_build(
        "tiny-decoder", _tiny_decoder_recipe(), lambda folder: tiny_decoder.save_tiny_decoder(folder, world)
    )


class TinyBackend(Kandinsky22Backend):
    """Same loading code as Kandinsky 2.2; `tiny` resolves to the locally built folder."""

    name = "tiny"
    default_model = "tiny"
    default_decoder = "tiny"
    recommended_learning_rate = 1e-3
    default_oracle = "clip-zeroshot"
    """The tiny world has no BLIP-2 of its own; `--oracle blip2 --oracle-model tiny` runs a tiny random one."""
    recommended_render = {"size": 32, "steps": 10}  # noqa: RUF012 (read-only class default)
    """The size the tiny decoder paints at (its pictures are 32 px); 10 steps keep a render well under a second."""
    known_words = CATEGORY_MEMBERS
    """The tiny world's text encoder learnt only its own members; it would place any other word arbitrarily."""
    evaluation_clip = "tiny"
    image_space = TINY_IMAGE_SPACE
    """`conceptlab evaluate` scores this backend's images with the tiny CLIP unless `--clip` says otherwise."""

    @staticmethod
    def first_use() -> str | None:
        """What a first use builds before anything loads, while it is not built yet (None: it is)."""
        if tiny_world_built():
            return None
        return "building the tiny world: small models of the real architectures, trained once and cached (~2.5 min)"

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
