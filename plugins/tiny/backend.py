"""The `tiny` backend: a small, trained world of the real prior architectures (`world.py`) and a decoder trained on
it (`decoder.py`), built locally and cached."""

from __future__ import annotations

from pathlib import Path

import torch

from conceptlab.engine.io.cache import cached_build, cached_folder, is_built
from conceptlab.engine.models.backend import DecoderStack, PriorStack
from conceptlab.plugins.kandinsky import Kandinsky22Backend
from conceptlab.plugins.tiny import TINY, TINY_IMAGE_SPACE
from conceptlab.plugins.tiny.world import CATEGORY_MEMBERS


def tiny_world_recipe() -> tuple[Path, ...]:
    """The tiny world's sources: its builder, the CLIP vocabulary it pins, the prompt templates it trains on."""
    from conceptlab.engine.training import templates
    from conceptlab.plugins.tiny import clip_vocab, world

    return Path(world.__file__), Path(clip_vocab.__file__), Path(templates.__file__)


def tiny_world_folder() -> Path:
    """The cached tiny world (prior stack), built on first use."""
    from conceptlab.plugins.tiny import world

    return cached_build("tiny", tiny_world_recipe(), world.save_tiny_world)


def tiny_world_built() -> bool:
    """Whether the tiny world and its decoder are already in the cache (a first run builds them)."""
    return is_built(cached_folder("tiny", tiny_world_recipe())) and is_built(
        cached_folder("tiny-decoder", _tiny_decoder_recipe())
    )


def _tiny_decoder_recipe() -> tuple[Path, ...]:
    """The decoder's builder and the world it is trained on."""
    from conceptlab.plugins.tiny import decoder

    return Path(decoder.__file__), *tiny_world_recipe()


def tiny_decoder_folder() -> Path:
    """The cached tiny decoder, trained on first use (about 90 s) on the tiny world's prior outputs, so rebuilt
    whenever the world is; its own cache, so the prior's stays valid when only the decoder changes."""
    from conceptlab.plugins.tiny import decoder

    world = tiny_world_folder()
    return cached_build("tiny-decoder", _tiny_decoder_recipe(), lambda folder: decoder.save_tiny_decoder(folder, world))


class TinyBackend(Kandinsky22Backend):
    """Same loading code as Kandinsky 2.2; `tiny` resolves to the locally built folder."""

    name = TINY
    default_model = TINY
    default_decoder = TINY
    recommended_learning_rate = 1e-3
    default_oracle = "clip-zeroshot"
    """The tiny world has no BLIP-2 of its own; `--oracle blip2 --oracle-model tiny` runs a tiny random one."""
    imagine_oracle = "clip-zeroshot"
    """Nor a ViLT trained to answer: `imagine` asks the tiny world's own CLIP."""
    default_for = ()
    """Never the default model (2.2 is imagine's): it is chosen by name."""
    default_sd = TINY
    """The sd-neg baseline runs the tiny Stable Diffusion built on the tiny world's text encoder."""
    recommended_render = {"size": 32, "steps": 10}  # noqa: RUF012 (read-only class default)
    """The size the tiny decoder paints at (its pictures are 32 px); 10 steps keep a render well under a second."""
    known_words = CATEGORY_MEMBERS
    """The tiny world's text encoder learnt only its own members; it would place any other word arbitrarily."""
    evaluation_clip = TINY
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
        folder = str(tiny_world_folder()) if model == TINY else model
        return super().load_prior(folder, device, dtype, revision)

    def load_decoder(
        self, model: str | None, device: torch.device, dtype: torch.dtype, revision: str | None = None
    ) -> DecoderStack:
        folder = str(tiny_decoder_folder()) if model in (None, TINY) else model
        return super().load_decoder(folder, device, dtype, revision)
