"""The folder a training run writes: concept, checkpoints, per-step log and similarity plot."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TextIO

from conceptlab.engine.errors import UsageError

OUTPUT_PATTERNS = ("*.safetensors", "log.jsonl", "similarities.png")


def token_slug(token: str) -> str:
    """A file-system-safe name for a token: `<new-pet>` -> `new-pet`."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", token.strip("<>")).strip("-.")
    return slug or "concept"


def default_run_dir(token: str) -> Path:
    return Path("runs") / token_slug(token)


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

    def checkpoint_path(self, step: int) -> Path:
        return self.path / "checkpoints" / f"step-{step:04d}.safetensors"

    def existing_outputs(self) -> list[Path]:
        found = [p for pattern in OUTPUT_PATTERNS for p in self.path.glob(pattern)]
        return found + sorted(self.path.glob("checkpoints/*.safetensors"))

    def check(self, force: bool) -> None:
        """Refuse a folder that is a file or already holds a run (unless `force`), touching nothing."""
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"--out {self.path} is a file; give a folder.")
        existing = self.existing_outputs() if self.path.is_dir() else []
        if existing and not force:
            raise UsageError(
                f"{self.path} already holds a run ({existing[0].name}); choose another --out or add --force."
            )

    def claim(self, force: bool) -> None:
        """Make the folder (after `check`), clearing stale checkpoints of a forced rerun."""
        self.check(force)
        for stale in self.path.glob("checkpoints/step-*.safetensors") if force else ():
            stale.unlink()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"Cannot create --out {self.path}: {error.strerror}.") from None

    def open_log(self) -> TextIO:
        return self.log_path.open("w", encoding="utf-8")


def write_log_line(log: TextIO, record: dict) -> None:
    log.write(json.dumps(record) + "\n")
    log.flush()


def read_log(path: Path) -> list[dict]:
    """Every line of a run's log: one per step, and an `event` line for each negative added during training."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def step_lines(log: list[dict]) -> list[dict]:
    return [line for line in log if "event" not in line]
