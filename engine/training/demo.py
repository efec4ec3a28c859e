"""`conceptlab demo` in one call: a new pet on an offline backend, and how much its first and last checkpoints'
renders read as the category and as each negative, by the backend's own oracle's scores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from PIL import Image

from conceptlab.engine.adaptive.oracle import OracleOptions, ScoringOracle, load_oracle
from conceptlab.engine.models.backend import Backend
from conceptlab.engine.models.loading import ModelChoice, load_prior
from conceptlab.engine.models.plugins import resolve_model
from conceptlab.engine.options import COMMAND_LINE_ONLY, TRAINING_STEPS
from conceptlab.engine.training.config import CreateConfig, create_config
from conceptlab.engine.training.create import CreateResult, RunCallbacks, create

DEMO_DEVICE = "cpu"
"""The demo runs where everyone can: on the CPU."""


@dataclass(frozen=True)
class DemoRequest:
    """`conceptlab demo`: one field per option, and the model the command line runs it on."""

    model: str = field(metadata={"plan": False, "option": None})
    """An offline backend (the command line's choice, not an option)."""
    out: Path = field(default=Path("runs/demo"), metadata=COMMAND_LINE_ONLY)
    """The base folder; a free name beside it is used, so a demo never replaces an earlier one."""
    steps: int = field(default=300, metadata=TRAINING_STEPS)
    seed: int = 0

    @property
    def config(self) -> CreateConfig:
        """A new pet, unlike a cat, a dog and what the oracle sees in its renders; a checkpoint every 100 steps."""
        return create_config(
            "pet", ("cat", "dog"), adaptive=True, steps=self.steps, seed=self.seed, checkpoint_every=100
        )


@dataclass(frozen=True)
class WordReading:
    """How much the renders of the first and the last checkpoint read as `word` (the oracle's score, averaged)."""

    word: str
    role: str
    """"+" for the category, "-" for a negative."""
    first: float
    last: float


@dataclass(frozen=True)
class DemoResult(CreateResult):
    named: tuple[tuple[str, int], ...] = ()
    """What the oracle named, and at which step."""
    steps: tuple[int, int] | None = None
    """The first and the last checkpoint with renders (None: fewer than two, so no readings)."""
    readings: tuple[WordReading, ...] = ()
    renders: tuple[int, int] = (0, 0)
    """Prompts and seeds each checkpoint rendered (every reading averages over them all)."""
    oracle: str = ""
    """The oracle whose scores the readings are."""


def free_folder(base: Path) -> Path:
    """`runs/demo`, or `runs/demo-2`, `-3`, ... so a demo never replaces an earlier one."""
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def demo(
    request: DemoRequest, callbacks: RunCallbacks | None = None, on_phase: Callable[[str], None] = lambda _: None
) -> DemoResult:
    """Train the demo's concept in a free folder beside `request.out`, saying each phase to `on_phase` first (a first
    use of the backend builds it), then read its first and last checkpoints' renders."""
    backend, _ = resolve_model(request.model)
    config = request.config
    if note := backend.first_use():
        on_phase(note)
    unlike = ", ".join(f"a {word}" for word in config.negatives)
    on_phase(
        f"training a new {config.category}, unlike {unlike} and what the oracle names: {config.steps} steps on the CPU"
    )
    choice = ModelChoice(model=request.model, device=DEMO_DEVICE)
    created = create(config, choice, out=free_folder(request.out), force=False, callbacks=callbacks)
    return _with_readings(created, choice, backend)


def _with_readings(created: CreateResult, choice: ModelChoice, backend: Backend) -> DemoResult:
    negatives = created.concept.metadata["negatives"]
    named = tuple((n["word"], n["step"]) for n in negatives if n["source"] == "oracle")
    result = {item.name: getattr(created, item.name) for item in fields(created)}
    images = created.run_dir / "images"
    steps = sorted(
        int(path.name.split("-")[1]) for path in images.glob(f"step-*-seed-{created.config.image_seeds[0]}.png")
    )
    oracle = load_oracle(backend.default_oracle, load_prior(choice), OracleOptions()) if len(steps) > 1 else None
    if not isinstance(oracle, ScoringOracle):
        return DemoResult(**result, named=named)
    words = [created.config.category, *(n["word"] for n in negatives)]
    first, last = (checkpoint_reading(oracle, images, step, words) for step in (steps[0], steps[-1]))
    readings = tuple(
        WordReading(word, "+" if index == 0 else "-", first[index].item(), last[index].item())
        for index, word in enumerate(words)
    )
    renders = (len(created.config.checkpoint_prompts(steps[0])), len(created.config.image_seeds))
    checkpoints = (steps[0], steps[-1])
    return DemoResult(**result, named=named, steps=checkpoints, readings=readings, renders=renders, oracle=oracle.name)


def checkpoint_reading(oracle: ScoringOracle, images: Path, step: int, words: list[str]) -> torch.Tensor:
    """`[words]`: the oracle's score of each word, averaged over every render of checkpoint `step`."""
    paths = sorted(images.glob(f"*step-{step:04d}-seed-*.png"))
    renders = [Image.open(path) for path in paths]
    try:
        return oracle.scores(renders, words).mean(dim=0)
    finally:
        for render in renders:
            render.close()
