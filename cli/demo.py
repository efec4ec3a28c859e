"""`conceptlab demo`: a new pet on the tiny backend, offline; it says which phase it is in (a first run builds the
tiny world and trains its decoder, about two and a half minutes, before training), and ends with the strip of renders,
what the oracle named and how much the renders read as each negative.

conceptlab demo
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from PIL import Image

from conceptlab.cli import options
from conceptlab.cli.create import run_training
from conceptlab.cli.output import stderr, stdout
from conceptlab.engine.models.backend import PriorStack
from conceptlab.engine.models.loading import ModelChoice, load_prior
from conceptlab.engine.training.config import create_config
from conceptlab.engine.training.create import CreateResult

DEMO_STEPS = 300


def _free_folder(base: Path) -> Path:
    """`runs/demo`, or `runs/demo-2`, `-3`, ... so a demo never replaces an earlier one."""
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Base folder; a free name beside it is used.")] = Path(
        "runs/demo"
    ),
    steps: options.StepsOpt = DEMO_STEPS,
    seed: options.SeedOpt = 0,
) -> None:
    """Invent a new pet (unlike a cat, a dog, and what the oracle sees in its renders) on the tiny offline backend;
    show where its files are, what the oracle named and how much the renders read as each negative."""
    config = create_config("pet", ("cat", "dog"), adaptive=True, steps=steps, seed=seed, checkpoint_every=100)
    # imported here: importing diffusers' pipelines logs (see app._root)
    from conceptlab.plugins.tiny.backend import tiny_world_built

    if not tiny_world_built():
        phase("building the tiny world: small models of the real architectures, trained once and cached (~2.5 min)")
    phase(f"training a new pet, unlike a cat, a dog and what the oracle names: {steps} steps on the CPU")
    model = ModelChoice(model="tiny", device="cpu")
    print_drift(run_training(config, model, _free_folder(out), force=False), model)


def print_drift(result: CreateResult, model: ModelChoice) -> None:
    """Where the strip is, what the oracle named, and how much the first and last checkpoints' renders (every
    prompt and seed) read as the category and as each negative: clip-zeroshot's score, averaged."""
    negatives = result.concept.metadata["negatives"]
    named = [f"{n['word']} (step {n['step']})" for n in negatives if n["source"] == "oracle"]
    _say(f"Strip of renders: {result.strip_path}")
    _say(f"The oracle named: {', '.join(named) or 'nothing'}")
    images = result.run_dir / "images"
    steps = sorted(
        int(path.name.split("-")[1]) for path in images.glob(f"step-*-seed-{result.config.image_seeds[0]}.png")
    )
    if len(steps) < 2:
        return
    words = [result.config.category, *(n["word"] for n in negatives)]
    stack = load_prior(model).stack
    first, last = (checkpoint_reading(stack, images, step, words) for step in (steps[0], steps[-1]))
    renders = f"{len(result.config.checkpoint_prompts(steps[0]))} prompts x {len(result.config.image_seeds)} seeds"
    _say(f"How much the renders read as each word, step {steps[0]} -> {steps[-1]} (the oracle's score: cosine to")
    _say(f"\"a photo of a {{word}}\" in the tiny CLIP's space, averaged over each checkpoint's {renders}):")
    for index, word in enumerate(words):
        role = "+" if index == 0 else "-"
        _say(f"  {role} {word:<12} {first[index].item():+.3f} -> {last[index].item():+.3f}")


def checkpoint_reading(stack: PriorStack, images: Path, step: int, words: list[str]) -> torch.Tensor:
    """`[words]`: clip-zeroshot's score of each word, averaged over every render of checkpoint `step`."""
    from conceptlab.plugins.oracles.clip_zeroshot import zero_shot_scores

    paths = sorted(images.glob(f"*step-{step:04d}-seed-*.png"))
    renders = [Image.open(path) for path in paths]
    try:
        return zero_shot_scores(stack, renders, words).mean(dim=0)
    finally:
        for render in renders:
            render.close()


def _say(text: str) -> None:
    stdout.print(text, highlight=False, markup=False, soft_wrap=True)


def phase(text: str) -> None:
    """Say what the demo is doing now, so a first run is never a silent wait."""
    stderr.print(f"[bold]==[/] {text}", highlight=False)
