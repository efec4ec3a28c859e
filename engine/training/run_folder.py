"""The folder a training run writes: concept, checkpoints, per-step log and similarity plot."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TextIO

from conceptlab.engine.errors import ConceptFileError, UsageError
from conceptlab.engine.io.atomic import naming, refuse_existing, refuse_system_folder, write_atomically
from conceptlab.engine.io.lock import RunLock
from conceptlab.engine.training.state import START_AGAIN

OUTPUT_PATTERNS = ("*.safetensors", "log.jsonl", "similarities.png")


def token_slug(token: str) -> str:
    """A file-system-safe name for a token: `<new-pet>` -> `new-pet`."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", token.strip("<>")).strip("-.")
    return slug or "concept"


def default_run_dir(token: str) -> Path:
    return Path("runs") / token_slug(token)


def state_path(run_dir: Path) -> Path:
    """The training state to resume from (written at checkpoint steps and on interruption)."""
    return Path(run_dir) / "checkpoints" / "state.safetensors"


class RunFolder:
    """Claims an output folder (refusing one that holds a run unless forced) and names its files."""

    def __init__(self, path: Path, token: str):
        self.path = path
        self.slug = token_slug(token)

    @property
    def concept_path(self) -> Path:
        return self.path / f"{self.slug}.safetensors"

    @property
    def log_path(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def plot_path(self) -> Path:
        return self.path / "similarities.png"

    @property
    def state_path(self) -> Path:
        return state_path(self.path)

    def checkpoint_path(self, step: int) -> Path:
        return self.path / "checkpoints" / f"step-{step:04d}.safetensors"

    def existing_outputs(self) -> list[Path]:
        found = [p for pattern in OUTPUT_PATTERNS for p in self.path.glob(pattern)]
        return found + sorted(self.path.glob("checkpoints/*.safetensors"))

    def check(self, force: bool) -> None:
        """Refuse a folder that is a file or already holds a run (unless `force`), touching nothing."""
        refuse_system_folder(self.path, "--out")
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"--out {self.path} is a file; give a folder.")
        resumable = self.state_path.exists() and not self.concept_path.exists()
        existing = self.existing_outputs() if self.path.is_dir() else []
        refuse_existing(existing, force, "--out", ", or --resume the run" if resumable else "")

    def claim(self, force: bool) -> RunLock:
        """Make the folder (after `check`) and lock it, then clear what a forced rerun replaces: this token's concept,
        the log, plot, checkpoints and images (so an interrupted rerun resumes as any other run).

        The returned lock is held; release it (or use it in a `with`) when the run ends.
        """
        self.check(force)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"Cannot create --out {self.path}: {error.strerror}.") from None
        lock = RunLock(self.path)
        lock.acquire()
        plot, strip = self.path / "similarities.png", self.path / "images" / "strip.png"
        replaced = (self.concept_path, self.log_path, plot, strip)
        stale = [*self.path.glob("checkpoints/*.safetensors"), *self.path.glob("images/step-*.png"), *replaced]
        stale = [path for path in stale if path.is_file()] if force else []
        for path in stale:
            path.unlink()
        return lock

    def open_log(self, append: bool = False) -> TextIO:
        return self.log_path.open("a" if append else "w", encoding="utf-8")

    def covered_log(self, lines: int, sha256: str, steps: int) -> list[bytes]:
        """The first `lines` lines of `log.jsonl`, checked against the saved state that covers them: their sha256,
        each a JSON object, and the step lines numbered 1 to `steps`. Reads only; a truncated, edited or foreign log
        (or a state from another run) is refused in one line.
        """
        refused = ConceptFileError(
            f"{self.log_path} does not match the saved training state {self.state_path.name} (truncated, edited, or "
            f"the state is another run's); {START_AGAIN}"
        )
        data = self.log_path.read_bytes() if self.log_path.is_file() else b""
        kept = data.splitlines(keepends=True)[:lines]
        if len(kept) < lines or not all(line.endswith(b"\n") for line in kept):
            raise refused
        if hashlib.sha256(b"".join(kept)).hexdigest() != sha256:
            raise refused
        try:
            records = [json.loads(line.decode("utf-8")) for line in kept]
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise refused from None
        if not all(isinstance(record, dict) for record in records):
            raise refused
        if [record.get("step") for record in step_lines(records)] != list(range(1, steps + 1)):
            raise refused
        return kept

    def rewind_log(self, kept: list[bytes]) -> None:
        """Cut `log.jsonl` back to the lines `covered_log` kept (what a saved state covers)."""
        write_atomically(self.log_path, b"".join(kept))


def write_log_line(log: TextIO, record: dict) -> bytes:
    """Append `record` as one JSON line; return the line's bytes (a run keeps their sha256 in its saved state)."""
    line = json.dumps(record) + "\n"
    try:
        log.write(line)
        log.flush()
    except OSError as error:
        raise naming(error, log.name) from None
    return line.encode("utf-8")


def read_log(path: Path) -> list[dict]:
    """Every line of a run's log: one per step, and an `event` line for each negative added during training."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def step_lines(log: list[dict]) -> list[dict]:
    return [line for line in log if "event" not in line]
