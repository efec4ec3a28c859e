"""The benchmark's one timing loop, the paired ratio of two sides and peak memory.

Every timed number of `conceptlab bench` (step sides, negative sweeps, first steps, renders, oracle calls, imagine
rows) comes from `timed_rounds`: steps called round-robin, each call timed alone between device synchronisations,
so drift on a shared machine (another process, a slower minute) falls on every step alike.
"""

from __future__ import annotations

import contextlib
import gc
import random
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

Step = Callable[[], object]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_rounds(
    steps: dict[str, Step], device: torch.device, rounds: int, warmup: int = 0, deadline: float | None = None
) -> dict[str, list[float]]:
    """Milliseconds of each call: `warmup` untimed rounds, then `rounds` timed rounds of one call of each step in
    turn. With a `deadline` (a `time.perf_counter()` value), a round that the last one says would end after it is
    not started, but one timed round always runs: fewer rounds, never a cut round."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {key: [] for key in steps}
    for index in range(rounds):
        last_round_s = sum(values[-1] for values in times.values()) / 1000 if index else 0.0
        if index and deadline is not None and time.perf_counter() + last_round_s > deadline:
            break
        for key, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times[key].append(1000 * (time.perf_counter() - start))
    return times


def median_ms(step: Step, device: torch.device, warmup: int, repeats: int) -> float:
    """Median milliseconds of `repeats` calls of `step`, after `warmup` untimed ones."""
    return statistics.median(timed_rounds({"step": step}, device, repeats, warmup)["step"])


def interleaved_median_ms(steps: dict[str, Step], device: torch.device, rounds: int) -> dict[str, float]:
    """Median milliseconds per call of each step, after one warm-up call each, timed round-robin."""
    times = timed_rounds(steps, device, rounds, warmup=1)
    return {key: statistics.median(values) for key, values in times.items()}


def paired_ratio(numerator: list[float], denominator: list[float], resamples: int = 2000, seed: int = 0) -> dict:
    """Median of the per-round ratios with a 95% bootstrap interval (resampling rounds); "unstable" when the
    interval holds 1.0, i.e. this run cannot tell which side is faster."""
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True)]
    draw = random.Random(seed)
    medians = sorted(statistics.median(draw.choices(ratios, k=len(ratios))) for _ in range(resamples))
    low, high = medians[int(0.025 * resamples)], medians[min(resamples - 1, int(0.975 * resamples))]
    return {
        "median": statistics.median(ratios),
        "low": low,
        "high": high,
        "unstable": low <= 1.0 <= high,
        "pairs": len(ratios),
    }


class PeakMemory:
    """Peak memory since `reset()`: allocated CUDA memory on a GPU, resident set size (RSS) on a CPU."""

    def __init__(self, device: torch.device):
        self.device = device

    @property
    def kind(self) -> str:
        return "cuda_max_memory_allocated" if self.device.type == "cuda" else "peak_rss"

    def reset(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        with contextlib.suppress(OSError):  # Linux: writing 5 resets the peak RSS (VmHWM) to the current RSS
            Path("/proc/self/clear_refs").write_text("5")

    def current_mb(self) -> float:
        """Allocated CUDA memory, or the resident set size, now."""
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device) / 2**20
        return _status_mb("VmRSS:") or 0.0

    def peak_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        peak = _status_mb("VmHWM:")
        return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mb(key: str) -> float | None:
    """A memory line of /proc/self/status in MB; None where it cannot be read (not Linux)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return None
