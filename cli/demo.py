"""`conceptlab demo`: a new pet on the tiny backend, offline; it says which phase it is in (a first run builds the
tiny world and trains its decoder, about two and a half minutes, before training), and ends with the strip of renders,
what the oracle named and how much the renders read as each negative.

conceptlab demo
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli import options
from conceptlab.cli.create import progress_of
from conceptlab.cli.output import stderr, stdout
from conceptlab.engine.training.demo import DemoRequest, DemoResult, demo

DEMO_MODEL = "tiny"
"""The demo runs offline, on the tiny world."""


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Base folder; a free name beside it is used.")] = Path(
        "runs/demo"
    ),
    steps: options.StepsOpt = DemoRequest.steps,
    seed: options.SeedOpt = 0,
) -> None:
    """Invent a new pet (unlike a cat, a dog, and what the oracle sees in its renders) on the tiny offline backend;
    show where its files are, what the oracle named and how much the renders read as each negative."""
    request = DemoRequest(model=DEMO_MODEL, out=out, steps=steps, seed=seed)
    config = request.config
    result = progress_of(config.steps, config.token, config.kind, lambda callbacks: demo(request, callbacks, phase))
    print_drift(result)


def print_drift(result: DemoResult) -> None:
    """Where the strip is, what the oracle named, and how much the first and last checkpoints' renders (every
    prompt and seed) read as the category and as each negative: clip-zeroshot's score, averaged."""
    _say(f"Strip of renders: {result.strip_path}")
    _say(f"The oracle named: {', '.join(f'{word} (step {step})' for word, step in result.named) or 'nothing'}")
    if result.steps is None:
        return
    (first, last), (prompts, seeds) = result.steps, result.renders
    _say(f"How much the renders read as each word, step {first} -> {last} (the oracle's score: cosine to")
    _say(
        f"\"a photo of a {{word}}\" in the tiny CLIP's space, averaged over each checkpoint's {prompts} prompts x "
        f"{seeds} seeds):"
    )
    for reading in result.readings:
        _say(f"  {reading.role} {reading.word:<12} {reading.first:+.3f} -> {reading.last:+.3f}")


def _say(text: str) -> None:
    stdout.print(text, highlight=False, markup=False, soft_wrap=True)


def phase(text: str) -> None:
    """Say what the demo is doing now, so a first run is never a silent wait."""
    stderr.print(f"[bold]==[/] {text}", highlight=False)
