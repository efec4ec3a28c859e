"""`conceptlab bench` in one call: a frozen request in, the report (the JSON record of the run) out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from conceptlab.engine.benchmark.imagine import check_imagine_models, imagine_row
from conceptlab.engine.benchmark.render import render_and_oracle_rows
from conceptlab.engine.benchmark.step import (
    CREATE_STEPS,
    NEGATIVE_COUNTS,
    SECTIONS,
    BenchSettings,
    StackReport,
    benchmark_stack,
    official_dtype,
)
from conceptlab.engine.benchmark.subjects import DepthCut, bench_stack, stack_names
from conceptlab.engine.benchmark.timing import PeakMemory
from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.atomic import refuse_existing, write_json
from conceptlab.engine.models.devices import resolve_device, resolve_dtype
from conceptlab.engine.options import COMMAND_LINE_ONLY, check_bounds, renamed
from conceptlab.engine.version import conceptlab_version

NOT_AN_OPTION = {"plan": False, "option": None}
"""Field metadata of what the command line decides for itself rather than through an option."""


@dataclass(frozen=True)
class BenchRequest:
    """`conceptlab bench`: one field per option (see `conceptlab.engine.options`)."""

    stacks: tuple[str, ...] = ()
    """`conceptlab.benchmark_stacks` entries."""
    full: bool = False
    text_layers: int = 1
    prior_layers: int = 1
    repeats: int = BenchSettings.repeats
    warmup: int = BenchSettings.warmup
    negatives: int = BenchSettings.negatives
    negative_counts: tuple[int, ...] = NEGATIVE_COUNTS
    sweep_repeats: int = BenchSettings.sweep_repeats
    compiled: bool = BenchSettings.compiled
    device: str = "auto"
    dtype: str = "auto"
    render: bool = True
    imagine_models: tuple[str, ...] = renamed("imagine", default=())
    """Models imagine loads, or `conceptlab.benchmark_pipelines` entries."""
    out: Path | None = field(default=None, metadata=COMMAND_LINE_ONLY)
    force: bool = field(default=False, metadata=COMMAND_LINE_ONLY)
    render_model: str | None = field(default=None, metadata=NOT_AN_OPTION)
    """The model whose render and oracle calls `render` times."""
    oracles: tuple[tuple[str, str | None], ...] = field(default=(), metadata=NOT_AN_OPTION)
    """The oracles timed on `render_model`'s images: (name, its weights; None: the oracle's default)."""

    def __post_init__(self) -> None:
        check_bounds(self)
        known = stack_names()
        unknown = [name for name in self.stacks if name not in known]
        if unknown or not self.stacks:
            raise UsageError(f"--stacks: unknown {', '.join(unknown) or 'none given'}; use {', '.join(known)}.")
        counted = (self.repeats, self.sweep_repeats, self.text_layers, self.prior_layers, self.negatives)
        if min(counted) < 1 or self.warmup < 0:
            raise UsageError("--repeats, --sweep-repeats, --negatives and the layer counts must be at least 1.")
        if not self.negative_counts or min(self.negative_counts) < 1:
            counts = ",".join(map(str, self.negative_counts))
            raise UsageError(f"--negative-counts must all be at least 1 (got {counts}), e.g. 1,4,16,64.")
        check_imagine_models(self.imagine_models)
        if self.render and self.render_model is None:
            raise UsageError("bench's render row needs a render_model; give one or set render=False.")

    @property
    def settings(self) -> BenchSettings:
        counts, sweep = self.negative_counts, self.sweep_repeats
        return BenchSettings(self.repeats, self.warmup, self.negatives, counts, sweep, compiled=self.compiled)

    @property
    def cut(self) -> DepthCut | None:
        return None if self.full else DepthCut(self.text_layers, self.prior_layers)


def bench(request: BenchRequest, progress: Callable[[str], None] = lambda _: None) -> dict:
    """Time every stack, then the render and oracle rows and the imagine rows; write the report to `request.out`
    (refused up front if it exists, unless `force`) and return it."""
    refuse_existing([request.out], request.force, "--out file")
    device = resolve_device(request.device)
    dtype = resolve_dtype(request.dtype, device)
    reports = [_stack_report(request, name, device, dtype, progress) for name in request.stacks]
    render, oracle = (
        render_and_oracle_rows(request.render_model, request.oracles, device, dtype, request.repeats)
        if request.render and request.render_model
        else (None, None)
    )
    imagine = [imagine_row(model, device, dtype, request.repeats, request.full) for model in request.imagine_models]
    report = bench_report(reports, device, request.settings, render, oracle) | {"imagine": imagine}
    if request.out:
        write_json(request.out, report)
    return report


def _stack_report(
    request: BenchRequest, name: str, device: torch.device, dtype: torch.dtype, progress: Callable[[str], None]
) -> StackReport:
    stack, cut = bench_stack(name), request.cut
    return benchmark_stack(
        name,
        lambda on, precision: stack.build(on, precision, cut),
        stack.depth(cut),
        device,
        dtype,
        request.settings,
        progress,
        lambda built: stack.constraint_encoder(built, cut),
    )


def bench_report(
    reports: list[StackReport],
    device: torch.device,
    settings: BenchSettings,
    render: dict | None = None,
    oracle: dict | None = None,
) -> dict:
    """The JSON record of a run."""
    return {
        "conceptlab_version": conceptlab_version(),
        "torch": torch.__version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "baseline_dtype": str(official_dtype(device)).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "memory_kind": PeakMemory(device).kind,
        "settings": asdict(settings),
        "create_steps": CREATE_STEPS,
        "sections": list(SECTIONS),
        "stacks": [report.as_json() for report in reports],
        "render": render or {"status": "skipped"},
        "oracle": oracle or {"status": "skipped"},
    }
