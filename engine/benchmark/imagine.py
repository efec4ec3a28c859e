"""The `imagine` row of `conceptlab bench`: seconds per image, plain sampling against imagine asking the oracle at
every step of the first half, on the same loaded model, steps and seed, timed round-robin in one run."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from conceptlab.engine.adaptive.oracle import Oracle, OracleOptions, load_oracle
from conceptlab.engine.imagine.request import ImagineRequest
from conceptlab.engine.imagine.run import Loaded, check, load, sample_one


def time_imagine(
    model: str, device: str, dtype: str, rounds: int = 3, preview: str = "tiny", steps: int | None = None
) -> dict:
    """Median seconds per image of plain sampling (an empty window: the oracle is never asked) and of imagine
    (`--ask-from 0 --ask-until 0.5 --ask-every 1`), after one warm-up each; with the ratio and the asking share."""
    base = ImagineRequest(category="pet", n=1, model=model, device=device, dtype=dtype, preview=preview, steps=steps)
    _, oracle_name, oracle_model = check(base)
    loaded = load(base)
    oracle = load_oracle(
        oracle_name, loaded.oracle_host, OracleOptions(model=oracle_model, revision=base.oracle_revision)
    )
    return time_loaded(base, loaded, oracle, oracle_name, rounds)


def time_loaded(base: ImagineRequest, loaded: Loaded, oracle: Oracle, oracle_name: str, rounds: int = 3) -> dict:
    """`time_imagine` on a model and oracle the caller loaded or built (random real-width ones)."""
    sides = {"plain": replace(base, ask_from=0.0, ask_until=0.0), "imagine": base}
    times: dict[str, list[float]] = {side: [] for side in sides}
    asking: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(rounds + 1):
            for side, request in sides.items():
                getattr(loaded.route, "negative_cache", {}).clear()  # every image pays for its negatives
                started = time.perf_counter()
                _, record = sample_one(request, loaded, oracle, 0, Path(scratch))
                if "cuda" in base.device:
                    torch.cuda.synchronize()
                if round_index:  # the first round warms up
                    times[side].append(time.perf_counter() - started)
                    if side == "imagine":
                        asking.append(record.seconds_asking)
    plain, imagined = (statistics.median(times[side]) for side in sides)
    return {
        "model": base.model,
        "oracle": oracle_name,
        "preview": base.preview,
        "steps": loaded.settings.steps,
        "size": loaded.settings.size,
        "asks_per_image": int(0.5 * loaded.settings.steps),
        "plain_s_per_image": round(plain, 4),
        "imagine_s_per_image": round(imagined, 4),
        "ratio": round(imagined / plain, 3),
        "asking_s_per_image": round(statistics.median(asking), 4),
    }
