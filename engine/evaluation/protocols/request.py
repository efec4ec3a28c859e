"""`conceptlab evaluate --protocol paper|creative` in one call: a frozen request in, the protocol's result out."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.baselines import load_baseline
from conceptlab.engine.evaluation.protocols.creative import CREATIVE
from conceptlab.engine.evaluation.protocols.paper import PAPER
from conceptlab.engine.evaluation.protocols.runner import EvaluationProtocol, ProtocolResult, run_protocol
from conceptlab.engine.evaluation.request import TaskProgress, write_tables
from conceptlab.engine.io.atomic import refuse_existing
from conceptlab.engine.io.figures import figure_format
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.options import COMMAND_LINE_ONLY, check_bounds, renamed

PROTOCOLS: dict[str, EvaluationProtocol] = {"paper": PAPER, "creative": CREATIVE}


@dataclass(frozen=True)
class ProtocolRequest:
    """`conceptlab evaluate --protocol NAME`: one field per option it takes (see `conceptlab.engine.options`)."""

    protocol: str
    out: Path | None = field(default=None, metadata=COMMAND_LINE_ONLY)
    """The run's folder (resumable)."""
    quick: bool = False
    baselines: tuple[str, ...] = renamed("baseline", default=())
    """() : the protocol's own."""
    sd_model: str | None = None
    seed: int = 0
    """Image i of every concept and baseline is rendered from seed `seed + i`."""
    size: int | None = None
    steps: int | None = None
    """Decoder steps of the renders."""
    judge: str | None = None
    model: str | None = None
    backend: str | None = None
    revision: str | None = None
    decoder: str | None = None
    decoder_revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    clip: str | None = None
    clip_revision: str | None = None
    ray: bool = False
    """Train the concepts as Ray tasks."""
    ray_address: str | None = field(default=None, metadata=COMMAND_LINE_ONLY)
    """The cluster `--ray` names (None: a local Ray)."""
    max_parallel: int | None = None
    csv: Path | None = field(default=None, metadata=COMMAND_LINE_ONLY)
    plot: Path | None = field(default=None, metadata=COMMAND_LINE_ONLY)
    force: bool = field(default=False, metadata=COMMAND_LINE_ONLY)
    """Write over existing `csv` and `plot` files, and redo what other settings made."""

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.protocol not in PROTOCOLS:
            raise UsageError(f"Unknown protocol {self.protocol!r}; the protocols are 'paper' and 'creative'.")
        if self.plot is not None:
            figure_format(self.plot)
        for name in self.baselines:
            load_baseline(name)  # an unknown baseline fails before anything loads
        if self.judge and self.protocol == "paper":
            raise UsageError("--judge belongs to --protocol creative and plain evaluate; drop it for the paper's.")
        if self.max_parallel is not None and not self.ray:
            raise UsageError(
                "--max-parallel limits trainings on Ray; add --ray or drop it (without Ray they run in turn)."
            )
        if self.out is None:
            raise UsageError(f"--protocol {self.protocol} needs --out DIR (where concepts, images and the summary go).")

    @property
    def model_choice(self) -> ModelChoice:
        model = (self.model, self.backend, self.device, self.dtype, self.revision, self.decoder)
        return ModelChoice.for_concepts([], *model, self.decoder_revision)

    def config(self) -> object:
        """The protocol's config with the request's changes (what is not given stays the protocol's)."""
        changes = {"size": self.size, "render_steps": self.steps, "sd_model": self.sd_model, "image_seed": self.seed}
        changes |= {"baselines": self.baselines} if self.baselines else {}
        changes |= {"judge": self.judge} if self.judge else {}
        given = {key: value for key, value in changes.items() if value is not None}
        return PROTOCOLS[self.protocol].build(self.quick, **given)


def evaluate_protocol(request: ProtocolRequest, on_task: TaskProgress | None = None) -> ProtocolResult:
    """Run (or resume) the request's protocol in its `out`, then write its `csv` and `plot` where asked."""
    refuse_existing([request.csv, request.plot], request.force, "file")
    protocol = PROTOCOLS[request.protocol]
    batch = {"ray": request.ray, "address": request.ray_address, "max_parallel": request.max_parallel}
    result = run_protocol(
        protocol,
        request.config(),
        request.model_choice,
        request.out,
        clip=request.clip,
        clip_revision=request.clip_revision,
        on_task=on_task,
        batch_options=batch,
        force=request.force,
    )
    title = f"{protocol.title} ({result.clip})"
    return replace(result, written=write_tables(result.summary, request.csv, request.plot, title))
