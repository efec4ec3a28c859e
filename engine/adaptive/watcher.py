"""Watching a concept while it trains: renders at checkpoints, a strip across steps, and oracle questions."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image, ImageDraw, ImageFont

from conceptlab.engine.adaptive.answers import checked_answers, new_negative
from conceptlab.engine.adaptive.oracle import Oracle, OracleWithWeights, Question
from conceptlab.engine.io.images import write_png
from conceptlab.engine.models.backend import DecoderStack, PriorStack
from conceptlab.engine.models.offload import IDLE_DEVICE, Residency
from conceptlab.engine.rendering.render import RenderSettings, render_prompts


class WatchedRun(Protocol):
    """What the watcher needs of a training run's configuration (`CreateConfig` provides it)."""

    @property
    def token(self) -> str: ...
    @property
    def category(self) -> str | None: ...
    @property
    def style(self) -> bool: ...
    @property
    def image_seeds(self) -> tuple[int, ...]: ...
    def checkpoint_prompts(self, step: int) -> list[str]:
        """The prompts rendered at `step`; the first is the one the oracle is shown."""
        ...


STRIP_CELL = 128
LABEL_HEIGHT = 22


def render_strip(images_by_step: dict[int, list[Image.Image]], seeds: tuple[int, ...]) -> Image.Image:
    """One column per rendered step, one row per seed, each column labelled with its step."""
    steps = sorted(images_by_step)
    strip = Image.new("RGB", (STRIP_CELL * len(steps), LABEL_HEIGHT + STRIP_CELL * len(seeds)), "white")
    draw, font = ImageDraw.Draw(strip), ImageFont.load_default(size=13)
    for column, step in enumerate(steps):
        draw.text((column * STRIP_CELL + 6, 4), f"step {step}", fill="black", font=font)
        for row, image in enumerate(images_by_step[step]):
            cell = image.convert("RGB").resize((STRIP_CELL, STRIP_CELL))
            strip.paste(cell, (column * STRIP_CELL, LABEL_HEIGHT + row * STRIP_CELL))
    return strip


class ConceptWatcher:
    """Renders the concept (as it is in the stack's text encoder now) and asks the oracle about the images.

    Images of one step are rendered once, whether a checkpoint or a question needs them first. With offloading
    (`residency`), only the model at work is on the GPU: the prior to train, the decoder to render, the oracle to
    answer (an oracle with weights of its own is the residency's `oracle` group once it has loaded them).
    """

    def __init__(
        self,
        stack: PriorStack,
        decoder: DecoderStack,
        config: WatchedRun,
        settings: RenderSettings,
        folder: Path | None,
        oracle: Oracle | None = None,
        residency: Residency | None = None,
        on_phase: Callable[[str, float], None] | None = None,
    ):
        self.stack, self.decoder, self.config, self.settings = stack, decoder, config, settings
        self.folder, self.oracle = folder, oracle
        self.on_phase = on_phase
        """Hears ("render" or "oracle", wall seconds, model moves included) after each; `bench --gpu-check`."""
        self.residency = residency or Residency(stack.device, offload=False)
        self.own_weights = isinstance(oracle, OracleWithWeights)
        self.residency.add("oracle", oracle.modules if self.own_weights else [], IDLE_DEVICE)
        self.images_by_step: dict[int, list[Image.Image]] = {}
        self.answers: list[dict] = []

    def image_path(self, step: int, seed: int, prompt: int = 0) -> Path:
        """The first prompt's renders (the oracle's) are `step-XXXX-seed-S.png`; the others `prompt-N-step-...`."""
        name = f"step-{step:04d}-seed-{seed}.png"
        return self.folder / "images" / (f"prompt-{prompt + 1}-{name}" if prompt else name)

    @property
    def strip_path(self) -> Path:
        return self.folder / "images" / "strip.png"

    def resume(self, step: int, answers: list[dict]) -> None:
        """Pick up an interrupted run: its answers so far, and its images up to `step` (for the strip)."""
        self.answers = list(answers)
        if self.folder is None:
            return
        for seed_path in sorted((self.folder / "images").glob(f"step-*-seed-{self.config.image_seeds[0]}.png")):
            earlier = int(seed_path.name.split("-")[1])
            paths = [self.image_path(earlier, seed) for seed in self.config.image_seeds]
            if earlier <= step and all(path.exists() for path in paths):
                self.images_by_step[earlier] = [Image.open(path).convert("RGB") for path in paths]

    def images_at(self, step: int) -> list[Image.Image]:
        """The concept at `step`: each checkpoint prompt at each seed, prompt by prompt (the oracle's image first)."""
        if step not in self.images_by_step:
            seeds = list(self.config.image_seeds)
            prompts = self.config.checkpoint_prompts(step)
            pairs = [(index, prompt, seed) for index, prompt in enumerate(prompts) for seed in seeds]
            with self._phase("render"):
                images = render_prompts(
                    self.stack,
                    self.decoder,
                    [prompt for _, prompt, _ in pairs],
                    [seed for _, _, seed in pairs],
                    self.settings,
                    before_phase=self.residency.use,
                )
                self.residency.use("prior")  # training goes on
            self.images_by_step[step] = images
            if self.folder is not None:
                for (index, _, seed), image in zip(pairs, images, strict=True):
                    write_png(self.image_path(step, seed, index), image)
                self._write_strip()
        return self.images_by_step[step]

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Time the block for `on_phase`, between device synchronisations (GPU work is asynchronous)."""
        if self.on_phase is None:
            yield
            return
        device = self.stack.device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        yield
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.on_phase(name, time.perf_counter() - start)

    def _write_strip(self) -> None:
        """The strip shows the first prompt's renders (one row per seed)."""
        count = len(self.config.image_seeds)
        first = {step: images[:count] for step, images in self.images_by_step.items()}
        write_png(self.strip_path, render_strip(first, self.config.image_seeds))

    def ask(self, step: int, known: list[str]) -> list[str]:
        """New negatives the oracle names from the images at `step` (normalized, new, in order)."""
        question = Question(self.config.category, self.config.style)
        images = self.images_at(step)[:1]  # only the first image (first prompt, first seed), as the official code
        # clip-zeroshot uses the prior's own CLIP; with offloading, the others make room for an oracle's weights
        with self._phase("oracle"):
            self.residency.use("oracle" if self.own_weights else "prior")
            answers = checked_answers(self.oracle.ask(images, question, known), self.oracle)
            self.residency.use("prior")  # with offloading, the oracle's weights leave the device
        found: list[str] = []
        for answer in answers:
            word = new_negative(answer, self.config.category, [*known, *found])
            self.answers.append({"step": step, "answer": answer, "negative": word})
            if word:
                found.append(word)
        return found
