"""`conceptlab demo`: a new pet on the tiny backend, offline; it says which phase it is in (a first run builds the
tiny world, about 40 s, before training).

conceptlab demo
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli import options
from conceptlab.cli.create import run_training
from conceptlab.cli.output import stderr
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.training.config import create_config

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
    """Invent a new pet (unlike a cat or a dog) on the tiny offline backend and show where its files are."""
    config = create_config("pet", ("cat", "dog"), steps=steps, seed=seed, checkpoint_every=100)
    from conceptlab.plugins.tiny import tiny_world_built  # here: importing diffusers' pipelines logs (see app._root)

    if not tiny_world_built():
        phase("building the tiny world: small models of the real architectures, trained once and cached (~40 s)")
    phase(f"training a new pet, unlike a cat or a dog: {steps} steps on the CPU")
    run_training(config, ModelChoice(model="tiny", device="cpu"), _free_folder(out), force=False)


def phase(text: str) -> None:
    """Say what the demo is doing now, so a first run is never a silent wait."""
    stderr.print(f"[bold]==[/] {text}", highlight=False)
