"""`create`, `mix`, `evolve` and `--resume` in one call each: a frozen request in, the finished run out.

The command line and a batch job build the same requests from the same option names (`COMMAND_OPTIONS`, the
`CreateConfig` fields each command takes), and `train` runs them; a batch passes its `ModelCache` to reuse models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conceptlab.engine.errors import UsageError
from conceptlab.engine.models.backend import DecoderStack
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.models.model_cache import ModelCache
from conceptlab.engine.models.offload import IDLE_DEVICE
from conceptlab.engine.training.config import COMMAND_OPTIONS, CreateConfig, create_config, mix_config
from conceptlab.engine.training.create import CreateResult, RunCallbacks, create, resume, saved_run_config
from conceptlab.engine.training.evolve import evolve


def command_config(kind: str, values: dict[str, Any]) -> CreateConfig:
    """The config of `create` or `mix` from its `CreateConfig` field values (`COMMAND_OPTIONS[kind]`)."""
    values = dict(values)
    if kind == "create":
        return create_config(values.pop("category"), values.pop("negatives", ()), **values)
    return mix_config(values.pop("positives"), values.pop("weights", None), **values)


@dataclass(frozen=True)
class CreateRequest:
    """`conceptlab create` and `conceptlab mix`: what to learn, against which model, and where."""

    config: CreateConfig
    model: ModelChoice
    out: Path | None = None
    """None: `runs/<token>`."""
    force: bool = False
    offload: bool | None = None

    def total_steps(self) -> int:
        return self.config.steps


@dataclass(frozen=True)
class EvolveRequest:
    """`conceptlab evolve`: the parents (concept files or image folders), the model (its `model` None: the concept
    parents' own), where the child goes, and its training options by `CreateConfig` field name, as a batch job's
    options give them (`COMMAND_OPTIONS["evolve"]`; the config itself needs the parents, read when it runs)."""

    parents: tuple[Path, ...]
    model: ModelChoice
    training: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None
    force: bool = False
    offload: bool | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.training) - set(COMMAND_OPTIONS["evolve"]))
        if unknown:
            raise UsageError(f"evolve takes no {', '.join(unknown)}; it takes {', '.join(COMMAND_OPTIONS['evolve'])}.")

    def total_steps(self) -> int:
        return self.training.get("steps", CreateConfig.steps)


@dataclass(frozen=True)
class ResumeRequest:
    """`--resume DIR`: continue the interrupted run in `run_dir` with its own settings; device, dtype and offload
    None are the ones it ran with."""

    run_dir: Path
    device: str | None = None
    dtype: str | None = None
    offload: bool | None = None

    def total_steps(self) -> int:
        return saved_run_config(self.run_dir).steps


TrainRequest = CreateRequest | EvolveRequest | ResumeRequest


def train(
    request: TrainRequest, callbacks: RunCallbacks | None = None, cache: ModelCache | None = None
) -> CreateResult:
    """Run `request` to its concept file; with a `cache` (a batch) its models are loaded once and reused, the
    decoder waiting on the CPU between uses."""
    if isinstance(request, ResumeRequest):
        return resume(
            request.run_dir, device=request.device, dtype=request.dtype, callbacks=callbacks, offload=request.offload
        )
    if isinstance(request, EvolveRequest):
        return _evolve(request, callbacks, cache)
    config, model = request.config, request.model
    run = {"out": request.out, "force": request.force, "callbacks": callbacks, "offload": request.offload}
    if cache is None:
        return create(config, model, **run)
    loaded = cache.prior(model)
    wants_decoder = config.images or config.adaptive
    decoder = idle_decoder(cache, model) if wants_decoder else None
    return create(config, loaded, decoder=decoder, **run)


def _evolve(request: EvolveRequest, callbacks: RunCallbacks | None, cache: ModelCache | None) -> CreateResult:
    settings = dict(request.training)
    named = {name: settings.pop(name, None) for name in EVOLVE_OWN}
    models = {"loaded": cache.prior(request.model), "decoder": idle_decoder(cache, request.model)} if cache else {}
    return evolve(
        list(request.parents),
        request.model,
        out=request.out,
        force=request.force,
        callbacks=callbacks,
        offload=request.offload,
        **named,
        **models,
        **settings,
    )


EVOLVE_OWN = ("weights", "token", "initializer")
"""`evolve`'s own arguments among the training fields: their defaults come from the parents."""


def idle_decoder(cache: ModelCache, model: ModelChoice) -> DecoderStack:
    """The decoder of `model` from `cache`, waiting on the CPU between uses: a batch keeps several models loaded."""
    return cache.decoder(cache.prior(model), model.decoder, model.decoder_revision, place=IDLE_DEVICE)
