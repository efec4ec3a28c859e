"""The `imagine` rows of `conceptlab bench`: seconds per image, plain sampling against imagine asking the oracle at
every step of the first half, on the same loaded model, steps and seed, timed round-robin in one run."""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from conceptlab.engine.adaptive.oracle import Oracle, OracleOptions, load_oracle
from conceptlab.engine.benchmark.subjects import bench_pipeline, pipeline_names
from conceptlab.engine.benchmark.timing import timed_rounds
from conceptlab.engine.errors import UsageError
from conceptlab.engine.imagine.request import ImagineRequest
from conceptlab.engine.imagine.run import Loaded, check, load, sample_one
from conceptlab.engine.models.devices import dtype_name


def check_imagine_models(models: tuple[str, ...]) -> None:
    """Refuse, before any stack is timed, an `--imagine` entry that is empty or names no model imagine knows."""
    for model in models:
        if not model.strip():
            raise UsageError("--imagine has an empty item; write the models separated by commas, e.g. tiny,tiny-sdxl.")
        if model in pipeline_names():
            continue
        try:
            check(ImagineRequest(category="pet", n=1, model=model))
        except UsageError as error:
            raise UsageError(f"--imagine {model}: {error}".replace(f"--model {model!r}: ", "")) from None


def imagine_row(model: str, device: torch.device, dtype: torch.dtype, rounds: int, full: bool) -> dict:
    """A model imagine loads, or a random real-width pipeline (a `conceptlab.benchmark_pipelines` entry, built here,
    depth cut unless `full`)."""
    if model not in pipeline_names():
        return time_imagine(model, str(device), dtype_name(dtype), rounds)
    pipeline = bench_pipeline(model)
    request, loaded, oracle = pipeline.build(device, dtype, full)
    return {**time_loaded(request, loaded, oracle, pipeline.oracle, rounds), "depth": "full" if full else "cut"}


def time_imagine(model: str, device: str, dtype: str, rounds: int = 3, steps: int | None = None) -> dict:
    """Median seconds per image of plain sampling (an empty window: the oracle is never asked) and of imagine
    (`--ask-from 0 --ask-until 0.5 --ask-every 1`), after one warm-up each; with the ratio and the asking share."""
    base = ImagineRequest(category="pet", n=1, model=model, device=device, dtype=dtype, steps=steps)
    _, oracle_name, oracle_model = check(base)
    loaded = load(base)
    oracle = load_oracle(
        oracle_name, loaded.oracle_host, OracleOptions(model=oracle_model, revision=base.oracle_revision)
    )
    return time_loaded(base, loaded, oracle, oracle_name, rounds)


def time_loaded(
    base: ImagineRequest,
    loaded: Loaded,
    oracle: Oracle,
    oracle_name: str,
    rounds: int = 3,
    deadline: float | None = None,
    warmup: int = 1,
) -> dict:
    """`time_imagine` on a model and oracle the caller loaded or built (random real-width ones); `deadline`: see
    `timed_rounds` (fewer rounds, `rounds` says how many ran); `warmup` 0 where the caller has warmed it up."""
    sides = {"plain": replace(base, ask_from=0.0, ask_until=0.0), "imagine": base}
    asking: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:

        def image(side: str) -> None:
            getattr(loaded.route, "negative_cache", {}).clear()  # every image pays for its negatives
            _, record = sample_one(sides[side], loaded, oracle, 0, Path(scratch))
            if side == "imagine":
                asking.append(record.seconds_asking)

        device = torch.device("cuda" if "cuda" in base.device else "cpu")
        steps = {side: (lambda side=side: image(side)) for side in sides}
        times = timed_rounds(steps, device, rounds, warmup=warmup, deadline=deadline)
    plain, imagined = (statistics.median(times[side]) / 1000 for side in sides)
    return {
        "model": base.model,
        "oracle": oracle_name,
        "preview": base.preview_mode,
        "steps": loaded.settings.steps,
        "size": loaded.settings.size,
        "asks_per_image": int(0.5 * loaded.settings.steps),
        "plain_s_per_image": round(plain, 4),
        "imagine_s_per_image": round(imagined, 4),
        "ratio": round(imagined / plain, 3),
        "asking_s_per_image": round(statistics.median(asking[warmup:]), 4),  # not the warm-up rounds
        "rounds": len(times["plain"]),
    }
