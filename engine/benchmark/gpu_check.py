"""`conceptlab bench --gpu-check`: every GPU number of the project in one run, within a time budget per row.

A GPU is at hand only now and then and no model hub is reachable from it, so one prepared command runs on random
weights of the real widths and leaves one file: the create step of each stack (the official baseline, ours eager,
ours compiled), a short adaptive `create` timed by phase (on the card as it is, and on a simulated 16 GB card with
the offload path), the imagine rows of every `conceptlab.benchmark_pipelines` entry (plain against imagine, with
the tiny autoencoder and with the full VAE), and the machine. Every timed number comes from the benchmark's one
timing loop (`timing.timed_rounds`) or, for `create`, from its own callbacks.

Each row has a budget (seconds on one H100, estimated from FLOP counts in docs/performance.md); a row whose rounds
would run past it stops early, never below one timed round, and says so (`cut_by_budget`). Building and compiling
cannot be cut: a row that overruns anyway is recorded with its real time. `quick` cuts the depth, the rounds and
the sizes so the whole runs on a CPU in the test suite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from conceptlab.engine.benchmark.imagine import time_loaded
from conceptlab.engine.benchmark.request import NOT_AN_OPTION
from conceptlab.engine.benchmark.step import CREATE_STEPS, BenchSettings, benchmark_stack, official_dtype
from conceptlab.engine.benchmark.subjects import DepthCut, bench_pipeline, bench_stack, pipeline_names, stack_names
from conceptlab.engine.benchmark.timing import PeakMemory, synchronize
from conceptlab.engine.errors import UsageError
from conceptlab.engine.imagine.request import FULL_PREVIEW, TINY_PREVIEW
from conceptlab.engine.io.atomic import refuse_existing, write_json
from conceptlab.engine.models.devices import dtype_name, resolve_device, resolve_dtype
from conceptlab.engine.models.offload import IDLE_DEVICE, module_bytes, offload_needed, prior_and_decoder_residency
from conceptlab.engine.options import COMMAND_LINE_ONLY
from conceptlab.engine.training.compiled_step import COMPILE_BACKEND, compile_mode
from conceptlab.engine.training.config import create_config
from conceptlab.engine.training.create import RunCallbacks, create
from conceptlab.engine.training.interrupt import TrainingInterrupted
from conceptlab.engine.version import conceptlab_version

ProgressCallback = Callable[[str], None]
TOTAL_BUDGET_S = 480.0
"""Eight minutes on one H100 for the whole run."""
STEP_BUDGET_S = 95.0
"""One stack's step row: building both stacks, compiling, the rounds (a stack entry's `gpu_check_budget_s` wins)."""
CREATE_BUDGET_S = 30.0
"""The adaptive `create` on the card as it is: building the world, 100 steps, 3 render sets, 2 questions."""
SIMULATED_CARD_BUDGET_S = 40.0
"""The same on the simulated 16 GB card: plus the offload path's model moves."""
IMAGINE_BUDGET_S = 45.0
"""One pipeline's imagine rows, both previews, unless the entry declares its own `gpu_check_budget_s`."""
TIMED_PREVIEWS = (TINY_PREVIEW, FULL_PREVIEW)
"""The two previews the issue times: the tiny autoencoder and the full VAE (the preset's full-size decode is the
full VAE's cost at the image's own size, not timed apart)."""
SIMULATED_CARD_BYTES = 16 * 1024**3
CUDA_ONLY = "a CPU has no per-process memory fraction (torch.cuda.set_per_process_memory_fraction): CUDA only"


@dataclass(frozen=True)
class GpuCheckSettings:
    """What one run does; `quick` (a CPU in the test suite) cuts depth, rounds and sizes."""

    cut: DepthCut | None
    rounds: int
    """Timed rounds of each step comparison (fewer when the row's budget says so)."""
    imagine_rounds: int
    create_steps: int
    checkpoint_every: int
    """Renders at 0 (for the first question), every `checkpoint_every` and the last step; questions at 0 and every
    `checkpoint_every` before the end: two."""
    image_size: int | None
    """None: the backend's (512 px for Kandinsky)."""
    image_steps: int | None
    """None: the backend's (50 decoder steps)."""
    compile_backend: str
    compile_mode: str | None
    enforce_budgets: bool = True
    """The budgets are an H100's: `quick` on a CPU records them but runs every row whole."""
    image_seeds: tuple[int, ...] = (42, 500)
    """The official two seeds per render prompt; `quick` renders one."""
    negatives: int = 3
    warmup: int = 1
    simulated_card_gb: float = SIMULATED_CARD_BYTES / 1024**3
    total_budget_s: float = TOTAL_BUDGET_S


def gpu_check_settings(quick: bool, device: torch.device) -> GpuCheckSettings:
    """Full: real depth, 20 rounds, 100 `create` steps with the official renders, within the budgets. Quick: one
    layer, 2 rounds, 10 steps, 64 px renders of 1 decoder step at one seed, every row whole; on a CPU the compiled
    side is dynamo's capture without code generation (inductor takes minutes there and does not pay; see
    docs/performance.md)."""
    backend = "eager" if quick and device.type != "cuda" else COMPILE_BACKEND
    mode = compile_mode(device) if backend == COMPILE_BACKEND else None
    if quick:
        return GpuCheckSettings(DepthCut(1, 1), 2, 1, 10, 5, 64, 1, backend, mode, False, (42,))
    return GpuCheckSettings(None, 20, 1, 100, 50, None, None, backend, mode)


@dataclass(frozen=True)
class GpuCheckRequest:
    """`conceptlab bench --gpu-check`: the subjects are the command line's choice (the engine names no model)."""

    quick: bool = False
    device: str = "auto"
    dtype: str = "auto"
    out: Path | None = field(default=None, metadata=COMMAND_LINE_ONLY)
    force: bool = field(default=False, metadata=COMMAND_LINE_ONLY)
    stacks: tuple[str, ...] = field(default=(), metadata=NOT_AN_OPTION)
    """`conceptlab.benchmark_stacks` entries timed step by step."""
    create_stack: str | None = field(default=None, metadata=NOT_AN_OPTION)
    """The entry whose `world` (prior and decoder) the adaptive `create` runs on."""
    oracle: str | None = field(default=None, metadata=NOT_AN_OPTION)
    """The oracle the adaptive `create` asks."""

    def __post_init__(self) -> None:
        known = stack_names()
        named = [*self.stacks, *([self.create_stack] if self.create_stack else [])]
        unknown = [name for name in named if name not in known]
        if unknown or not self.stacks:
            given = ", ".join(unknown) or "none given"
            raise UsageError(f"--gpu-check: unknown stack {given}; use {', '.join(known)}.")


@dataclass
class RowClock:
    """A row's budget: `deadline()` for the timing loop, `record()` for the report."""

    budget_s: float
    enforced: bool = True
    start: float = field(default_factory=time.perf_counter)

    def deadline(self, share: float = 1.0) -> float | None:
        """When the rounds must have ended: `share` of what is left of the budget from now (None: not enforced)."""
        if not self.enforced:
            return None
        left = self.budget_s - (time.perf_counter() - self.start)
        return time.perf_counter() + share * max(0.0, left)

    def record(self, rounds_asked: int, rounds_run: int) -> dict[str, Any]:
        seconds = time.perf_counter() - self.start
        return {
            "seconds": round(seconds, 3),
            "budget_s": self.budget_s,
            "rounds_asked": rounds_asked,
            "rounds_run": rounds_run,
            "cut_by_budget": rounds_run < rounds_asked,
            "over_budget": seconds > self.budget_s,
        }


def run_gpu_check(request: GpuCheckRequest, progress: ProgressCallback = lambda _: None) -> dict:
    """Run every row, write the report to `request.out` (refused up front if it exists, unless `force`), return it."""
    refuse_existing([request.out], request.force, "--out file")
    started = time.perf_counter()
    device = resolve_device(request.device)
    dtype = resolve_dtype(request.dtype, device)
    settings = gpu_check_settings(request.quick, device)
    rows = [_step_row(name, settings, device, dtype, progress) for name in request.stacks]
    rows += _create_rows(request, settings, device, dtype, progress)
    for name in pipeline_names():
        rows += _imagine_rows(name, settings, device, dtype, progress)
    report = {
        "kind": "gpu-check",
        "quick": request.quick,
        "conceptlab_version": conceptlab_version(),
        "machine": machine(device),
        "memory_kind": PeakMemory(device).kind,
        "settings": _settings_record(request, settings, device, dtype),
        "rows": rows,
        "total": {
            "seconds": round(time.perf_counter() - started, 3),
            "budget_s": settings.total_budget_s,
            "row_budgets_s": sum(row["budget_s"] for row in rows),
        },
    }
    if request.out:
        write_json(request.out, report)
    return report


def _settings_record(
    request: GpuCheckRequest, settings: GpuCheckSettings, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    return {
        **asdict(settings),
        "cut": asdict(settings.cut) if settings.cut else None,
        "device": str(device),
        "dtype": dtype_name(dtype),
        "baseline_dtype": dtype_name(official_dtype(device)),
        "stacks": list(request.stacks),
        "create_stack": request.create_stack,
        "oracle": request.oracle,
        "pipelines": pipeline_names(),
        "create_estimate_steps": CREATE_STEPS,
        "threads": torch.get_num_threads(),
    }


def machine(device: torch.device) -> dict[str, Any]:
    """The GPU (name, memory, compute capability, driver) and the software: what every number ran on."""
    record: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    if device.type != "cuda":
        reason = f"no GPU: the run was on {device.type}"
        return record | {"gpu": None, "gpu_memory_mb": None, "driver": None, "gpu_reason": reason}
    properties = torch.cuda.get_device_properties(device)
    return record | {
        "gpu": properties.name,
        "gpu_memory_mb": round(properties.total_memory / 2**20),
        "compute_capability": f"{properties.major}.{properties.minor}",
        "driver": _driver_version(),
    }


def _driver_version() -> str | None:
    """The NVIDIA driver's version as nvidia-smi reports it (torch does not expose it); None without nvidia-smi."""
    command = shutil.which("nvidia-smi")
    if command is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(
            [command, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return result.stdout.strip().splitlines()[0][:64] if result.stdout.strip() else None
    return None


def _budget(entry: object, default: float) -> float:
    """A subject's own budget (`gpu_check_budget_s`, declared by the plugin that knows its size), else `default`."""
    budget = getattr(entry, "gpu_check_budget_s", None)
    return float(budget) if isinstance(budget, int | float) and budget > 0 else default


def _free_device_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _guarded(row: dict[str, Any], run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one row; a failure (out of memory on a small card, say) is recorded in the row and the next row runs:
    a GPU session is too short to lose every row to one."""
    try:
        return row | {"status": "ran"} | run()
    except Exception as error:  # recorded in the row, with its type and first line
        failed = row | {"status": "failed", "reason": failure(error)}
    gc.collect()  # the error (gone with its `except` block) held the row's models in its traceback
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return failed


def failure(error: BaseException) -> str:
    """An error's type and first line, bounded: what a failed row records."""
    lines = str(error).splitlines() or [""]
    return f"{type(error).__name__}: {lines[0][:300]}"


def _step_row(
    name: str, settings: GpuCheckSettings, device: torch.device, dtype: torch.dtype, progress: ProgressCallback
) -> dict[str, Any]:
    stack = bench_stack(name)
    clock = RowClock(_budget(stack, STEP_BUDGET_S), settings.enforce_budgets)
    row = {"row": "create_step", "name": name, "budget_s": clock.budget_s}

    def run() -> dict[str, Any]:
        bench_settings = BenchSettings(
            repeats=settings.rounds,
            warmup=settings.warmup,
            negatives=settings.negatives,
            negative_counts=(settings.negatives,),
            sweep_repeats=1,
            compiled=True,
            budget_s=clock.budget_s if clock.enforced else None,
        )
        report = benchmark_stack(
            name,
            lambda on, precision: stack.build(on, precision, settings.cut),
            stack.depth(settings.cut),
            device,
            dtype,
            bench_settings,
            progress,
            lambda built: stack.constraint_encoder(built, settings.cut),
            compile_backend=settings.compile_backend,
        ).as_json()
        _free_device_memory(device)
        for side in ("baseline", "ours", "compiled"):
            report[side]["steps_per_s"] = round(1000 / report[side]["step_ms"], 3)
        rounds_run = len(report["ours"]["steps_ms"])
        return report | clock.record(settings.rounds, rounds_run)

    return _guarded(row, run)


def _create_rows(
    request: GpuCheckRequest,
    settings: GpuCheckSettings,
    device: torch.device,
    dtype: torch.dtype,
    progress: ProgressCallback,
) -> list[dict[str, Any]]:
    """The adaptive `create` on the card as it is, then on a simulated 16 GB card (CUDA only; on a CPU the row is
    there, skipped, with the reason)."""
    if request.create_stack is None:
        skipped = {"status": "skipped", "reason": "no create stack was given", "budget_s": 0.0}
        return [{"row": row, **skipped} for row in ("adaptive_create", "adaptive_create_16gb")]
    rows = [_create_row(request, settings, device, dtype, progress, card_bytes=None)]
    simulated = {"row": "adaptive_create_16gb", "name": request.create_stack}
    if device.type != "cuda":
        return [*rows, simulated | {"status": "skipped", "reason": CUDA_ONLY, "budget_s": 0.0}]
    return [*rows, _create_row(request, settings, device, dtype, progress, card_bytes=SIMULATED_CARD_BYTES)]


@contextlib.contextmanager
def simulated_card(device: torch.device, card_bytes: int | None) -> Iterator[None]:
    """Cap this process's CUDA memory at `card_bytes` (the caching allocator refuses beyond it), then lift the cap."""
    if card_bytes is None:
        yield
        return
    index = device.index if device.index is not None else torch.cuda.current_device()
    total = torch.cuda.get_device_properties(index).total_memory
    fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # torch 2.8 and later
    before = fraction(index) if fraction else 1.0
    torch.cuda.set_per_process_memory_fraction(min(1.0, card_bytes / total), index)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(before, index)


def _offload_decision(loaded: Any, decoder: Any, device: torch.device, card_bytes: int | None) -> dict[str, Any]:
    """What `create`'s `auto` decides here. `free_memory` reads the device (`torch.cuda.mem_get_info`), which a
    per-process fraction does not shrink, so on the simulated card the decision is taken again with its free bytes."""
    residency = prior_and_decoder_residency(loaded, decoder, None)
    decision = {"auto_offload_on_this_card": residency.offload}
    if card_bytes is not None:
        modules = [m for m in decoder.pipeline.components.values() if isinstance(m, torch.nn.Module)]
        free = card_bytes - torch.cuda.memory_reserved(device)
        decision["auto_offload_on_simulated_card"] = offload_needed(module_bytes(modules), free)
        decision["simulated_card_free_mb"] = round(free / 2**20)
    return decision


def _create_row(
    request: GpuCheckRequest,
    settings: GpuCheckSettings,
    device: torch.device,
    dtype: torch.dtype,
    progress: ProgressCallback,
    card_bytes: int | None,
) -> dict[str, Any]:
    simulated = card_bytes is not None
    clock = RowClock(SIMULATED_CARD_BUDGET_S if simulated else CREATE_BUDGET_S, settings.enforce_budgets)
    row = {"row": "adaptive_create_16gb" if simulated else "adaptive_create", "name": request.create_stack}
    row["budget_s"] = clock.budget_s

    def run() -> dict[str, Any]:
        progress(f"adaptive create on {request.create_stack}" + (" (simulated 16 GB card)" if simulated else ""))
        _free_device_memory(device)
        memory = PeakMemory(device)
        built = time.perf_counter()
        loaded, decoder = bench_stack(request.create_stack).world(device, dtype, settings.cut)
        decoder.pipeline.to(IDLE_DEVICE)  # where `create` loads a decoder before deciding to offload
        built_s = time.perf_counter() - built
        memory.reset()  # the build's float32 scratch is freed before a card is simulated: it is not the run's
        with simulated_card(device, card_bytes):
            decision = _offload_decision(loaded, decoder, device, card_bytes)
            timed = _timed_create(request, settings, loaded, decoder, clock, offload=True if simulated else None)
            timed["peak_memory_mb"] = round(memory.peak_mb(), 1)
        del loaded, decoder
        _free_device_memory(device)
        offload = {"offload": "forced on (the offload path)" if simulated else "auto"} | decision
        return {"build_s": round(built_s, 3), **offload, **timed} | clock.record(settings.create_steps, timed["steps"])

    return _guarded(row, run)


def _timed_create(
    request: GpuCheckRequest,
    settings: GpuCheckSettings,
    loaded: Any,
    decoder: Any,
    clock: RowClock,
    offload: bool | None,
) -> dict[str, Any]:
    """One `create` as the command runs it, timed by phase through its callbacks; stopped (state saved) when the
    row's budget is spent."""
    phases = {"render": [], "oracle": []}
    steps: list[int] = []
    deadline = clock.deadline()
    callbacks = RunCallbacks(
        on_step=lambda record: steps.append(record.step),
        should_stop=lambda: deadline is not None and time.perf_counter() > deadline,
        on_phase=lambda phase, seconds: phases[phase].append(seconds),
    )
    config = create_config(
        "pet",
        (),
        token="<gpu-check-pet>",
        steps=settings.create_steps,
        checkpoint_every=settings.checkpoint_every,
        image_size=settings.image_size,
        image_steps=settings.image_steps,
        image_seeds=settings.image_seeds,
        oracle=request.oracle,
        seed=0,
    )
    with tempfile.TemporaryDirectory() as scratch:
        synchronize(loaded.stack.device)
        start = time.perf_counter()
        with contextlib.suppress(TrainingInterrupted):
            create(config, loaded, out=Path(scratch) / "run", callbacks=callbacks, decoder=decoder, offload=offload)
        synchronize(loaded.stack.device)
        total_s = time.perf_counter() - start
    render_s, oracle_s = sum(phases["render"]), sum(phases["oracle"])
    training_s = total_s - render_s - oracle_s  # the steps, and writing checkpoints and the log
    trained = len(steps) > 0
    return {
        "steps": len(steps),
        "total_s": round(total_s, 3),
        "training_s": round(training_s, 3),
        "render_s": round(render_s, 3),
        "oracle_s": round(oracle_s, 3),
        "steps_per_s": round(len(steps) / training_s, 3) if trained else None,
        "renders": len(phases["render"]),
        "questions": len(phases["oracle"]),
        "create_estimate_s": round(_create_estimate(len(steps), training_s, phases), 1) if trained else None,
    }


def _create_estimate(steps: int, training_s: float, phases: dict[str, list[float]]) -> float:
    """A whole `create` of 2,500 steps on the official schedule: this step rate, a render set at 0 and every 250
    steps (11), a question at 0 and every 250 steps before the end (10)."""
    render_s = sum(phases["render"]) / max(1, len(phases["render"]))
    oracle_s = sum(phases["oracle"]) / max(1, len(phases["oracle"]))
    checkpoints = CREATE_STEPS // 250
    return training_s / steps * CREATE_STEPS + render_s * (checkpoints + 1) + oracle_s * checkpoints


def _imagine_rows(
    name: str, settings: GpuCheckSettings, device: torch.device, dtype: torch.dtype, progress: ProgressCallback
) -> list[dict[str, Any]]:
    """Plain against imagine on one `conceptlab.benchmark_pipelines` entry, with each preview its route has (the
    tiny autoencoder when built; the full VAE always). The entry's budget covers building it and both rows."""
    pipeline = bench_pipeline(name)
    clock = RowClock(_budget(pipeline, IMAGINE_BUDGET_S), settings.enforce_budgets)
    base = {"row": "imagine", "name": name, "budget_s": clock.budget_s / len(TIMED_PREVIEWS)}
    progress(f"imagine on {name}: building")
    _free_device_memory(device)
    try:
        request, loaded, oracle = pipeline.build(device, dtype, settings.cut is None)
    except Exception as error:  # recorded in both rows
        return [base | {"preview": preview, "status": "failed", "reason": failure(error)} for preview in TIMED_PREVIEWS]
    base["build_s"] = round(time.perf_counter() - clock.start, 3)
    tiny = getattr(loaded.route, "preview_decoder", None)
    rows = []
    for index, preview in enumerate(TIMED_PREVIEWS):
        row = base | {"preview": preview}
        if preview == TINY_PREVIEW and tiny is None:
            rows.append(row | {"status": "skipped", "reason": "its route has no tiny autoencoder"})
            continue
        progress(f"imagine on {name}, {preview} preview")
        with contextlib.suppress(AttributeError):  # a route without a preview autoencoder decodes with its own
            loaded.route.preview_decoder = tiny if preview == TINY_PREVIEW else None
        deadline = clock.deadline(1.0 / (len(TIMED_PREVIEWS) - index))  # an even share of what is left
        warmup = 0 if any(row.get("status") == "ran" for row in rows) else 1  # warm from the first preview's rounds
        rounds = (settings.imagine_rounds, warmup)
        timed = _imagine_timing(request, loaded, oracle, pipeline.oracle, preview, rounds, deadline, base["budget_s"])
        rows.append(_guarded(row, timed))
    with contextlib.suppress(AttributeError):
        loaded.route.preview_decoder = tiny  # as built: a caller may time it again
    del loaded, oracle
    _free_device_memory(device)
    return rows


def _imagine_timing(
    request: Any,
    loaded: Any,
    oracle: Any,
    oracle_name: str,
    preview: str,
    rounds: tuple[int, int],
    deadline: float | None,
    budget_s: float,
) -> Callable[[], dict[str, Any]]:
    """One preview's rounds (`time_loaded`, the bench's imagine row; `rounds`: timed and warm-up), with its peak
    memory."""
    rounds, warmup = rounds

    def run() -> dict[str, Any]:
        memory = PeakMemory(torch.device(request.device))
        memory.reset()
        start = time.perf_counter()
        previewed = dataclasses.replace(request, preview=preview)
        measured = time_loaded(previewed, loaded, oracle, oracle_name, rounds, deadline, warmup)
        seconds = time.perf_counter() - start
        return measured | {
            "peak_memory_mb": round(memory.peak_mb(), 1),
            "seconds": round(seconds, 3),
            "rounds_asked": rounds,
            "rounds_run": measured["rounds"],
            "warmup_rounds": warmup,
            "cut_by_budget": measured["rounds"] < rounds,
            "over_budget": seconds > budget_s,
        }

    return run
