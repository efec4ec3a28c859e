"""Stopping a run cleanly: a flag checked between steps, set by a signal handler or by a caller.

Training never stops in the middle of a step. When a stop is requested, the loop finishes the step it is in,
saves its state and raises `TrainingInterrupted`, so the run can be resumed to the same bytes.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conceptlab.engine.errors import ConceptLabError

INTERRUPTED_EXIT_CODE = 130
"""What shells report for a process ended by Ctrl-C (128 + SIGINT)."""


class StopRequest:
    """A flag the training loop reads between steps; `request()` is safe to call from a signal handler."""

    def __init__(self) -> None:
        self.requested = False

    def request(self) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


class TrainingInterrupted(ConceptLabError):
    """A stop was requested; the state after `step` completed steps is saved (in `run_dir` when known)."""

    exit_code = INTERRUPTED_EXIT_CODE

    def __init__(self, step: int, total: int, run_dir: Path | None = None):
        where = f" in {run_dir}" if run_dir else ""
        super().__init__(f"Interrupted after step {step} of {total}; the state is saved{where}.")
        self.step = step
        self.total = total
        self.run_dir = run_dir


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[StopRequest]:
    """While inside, SIGINT and SIGTERM request a clean stop; a second SIGINT abandons the step at once."""

    def handle(signum: int, _frame: object) -> None:
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.request()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
