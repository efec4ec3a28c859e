"""`create` and `mix` as one library call: load, train, and write the run folder and the concept."""

from __future__ import annotations

import dataclasses
import datetime
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from conceptlab.engine.concept import Concept, save_concept
from conceptlab.engine.config import CreateConfig
from conceptlab.engine.devices import dtype_name
from conceptlab.engine.errors import ConceptFileError, UsageError
from conceptlab.engine.interrupt import TrainingInterrupted
from conceptlab.engine.loading import LoadedPrior, ModelChoice, load_prior
from conceptlab.engine.lock import RunLock
from conceptlab.engine.plot import save_similarity_plot
from conceptlab.engine.run_folder import RunFolder, default_run_dir, state_path, write_log_line
from conceptlab.engine.state import TrainingState, config_as_json, config_from_json, load_state, save_state
from conceptlab.engine.tokens import check_new_token
from conceptlab.engine.train import StepRecord, train_token
from conceptlab.engine.version import conceptlab_version


@dataclass(frozen=True)
class CreateResult:
    concept: Concept
    concept_path: Path
    run_dir: Path
    config: CreateConfig
    first_similarities: dict[str, dict[str, float]]
    final_similarities: dict[str, dict[str, float]]


def _mean_similarities(records: list[StepRecord]) -> dict[str, dict[str, float]]:
    """Mean similarity per word over `records` (one step samples one template, so single steps are noisy)."""
    return {
        group: {
            word: round(statistics.fmean(getattr(r, group)[word] for r in records), 4)
            for word in getattr(records[0], group)
        }
        for group in ("positive", "negative")
    }


def concept_metadata(config: CreateConfig, loaded: LoadedPrior, **extra: Any) -> dict[str, Any]:
    """The concept's record: what it is, what it was trained against, and the exact config that ran."""
    info = loaded.info
    return {
        "kind": config.kind,
        "initializer": config.initializer,
        "category": config.category,
        "positives": list(config.positives),
        "weights": list(config.normalized_weights),
        "negatives": [{"word": word, "step": 0} for word in config.negatives],
        "seed": config.seed,
        "steps": config.steps,
        "learning_rate": config.learning_rate,
        "prior_steps": config.prior_steps,
        "prior_guidance": config.prior_guidance,
        "backend": info.backend,
        "model": info.model,
        "model_revision": info.revision,
        "text_encoder_fingerprint": info.text_encoder_fingerprint,
        "device": loaded.stack.device.type,
        "dtype": dtype_name(loaded.stack.dtype),
        "config": dataclasses.asdict(config),
        "parents": [],
        "lineage": [],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "conceptlab_version": conceptlab_version(),
        **extra,
    }


def create(
    config: CreateConfig,
    model: ModelChoice | LoadedPrior,
    *,
    out: Path | None = None,
    force: bool = False,
    on_step: Callable[[StepRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CreateResult:
    """Learn a new concept and write `out/<token>.safetensors`, `log.jsonl`, checkpoints and `similarities.png`.

    `model` is loaded, or reused when already a `LoadedPrior` (its tokenizer then gains the token). The folder
    is locked while training; when `should_stop()` turns true the state is saved for `resume` and
    `TrainingInterrupted` is raised.
    """
    folder = RunFolder(Path(out) if out else default_run_dir(config.token), config.token)
    folder.check(force)
    loaded = model if isinstance(model, LoadedPrior) else load_prior(model)
    check_new_token(loaded.stack.tokenizer, config.token)
    if config.learning_rate is None:
        config = dataclasses.replace(config, learning_rate=loaded.backend.recommended_learning_rate)
    with folder.claim(force):
        return _train_in_folder(config, loaded, folder, None, [], on_step, should_stop)


def resume(
    run_dir: Path | str,
    *,
    device: str | None = None,
    dtype: str | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CreateResult:
    """Continue an interrupted run from its saved state; the result is the uninterrupted run's, byte for byte.

    The config and the model come from the state; `device` and `dtype` default to the ones the run used.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such run folder.")
    state = load_state(state_path(run_dir))
    config, recorded = _recorded_run(run_dir, state)
    folder = RunFolder(run_dir, config.token)
    if folder.concept_path.exists():
        raise UsageError(f"{run_dir} holds a finished run ({folder.concept_path.name}); there is nothing to resume.")
    choice = ModelChoice(
        recorded["model"],
        recorded["backend"],
        device or recorded["device"],
        dtype or recorded["dtype"],
        recorded["revision"],
    )
    loaded = load_prior(choice)
    with RunLock(folder.path):
        records = [StepRecord(**line) for line in folder.rewind_log(state.log_lines)]
        return _train_in_folder(config, loaded, folder, state, records, on_step, should_stop)


def _recorded_run(run_dir: Path, state: TrainingState) -> tuple[CreateConfig, dict[str, Any]]:
    try:
        return config_from_json(state.extra["config"]), dict(state.extra["model"])
    except (KeyError, TypeError, ValueError, UsageError):
        raise ConceptFileError(f"{run_dir}: the saved state does not record a usable config; cannot resume.") from None


def _model_record(loaded: LoadedPrior) -> dict[str, Any]:
    return {
        "model": loaded.info.model,
        "backend": loaded.info.backend,
        "revision": loaded.info.revision,
        "device": str(loaded.stack.device),
        "dtype": dtype_name(loaded.stack.dtype),
    }


def _train_in_folder(
    config: CreateConfig,
    loaded: LoadedPrior,
    folder: RunFolder,
    start: TrainingState | None,
    records: list[StepRecord],
    on_step: Callable[[StepRecord], None] | None,
    should_stop: Callable[[], bool] | None,
) -> CreateResult:
    """Train (from `start`, with the `records` logged before it) and write every output of the run."""

    def record_step(record: StepRecord) -> None:
        records.append(record)
        write_log_line(log, record.as_json())
        if on_step:
            on_step(record)

    def write_checkpoint(step: int, vector: torch.Tensor) -> None:
        metadata = concept_metadata(config, loaded, checkpoint_step=step)
        save_concept(Concept(config.token, vector, metadata), folder.checkpoint_path(step))

    def write_state(state: TrainingState) -> None:
        state.extra = {"config": config_as_json(config), "model": _model_record(loaded)}
        save_state(state, folder.state_path)

    with folder.open_log(append=start is not None) as log:
        try:
            vector = train_token(
                loaded.stack,
                config,
                on_step=record_step,
                on_checkpoint=write_checkpoint,
                start=start,
                on_state=write_state,
                should_stop=should_stop,
            )
        except TrainingInterrupted as stopped:
            raise TrainingInterrupted(stopped.step, stopped.total, folder.path) from None
    tail = records[-max(1, len(records) // 10) :]
    final = _mean_similarities(tail)
    concept = Concept(config.token, vector, concept_metadata(config, loaded, final_similarities=final))
    save_concept(concept, folder.concept_path)
    title = f"{config.token}: {config.kind} ({loaded.info.backend}, seed {config.seed})"
    clamps = [("+ clamp", config.positive_clamp)] + ([("- clamp", config.negative_clamp)] if config.negatives else [])
    save_similarity_plot([r.as_json() for r in records], folder.plot_path, title, clamps)
    return CreateResult(
        concept,
        folder.concept_path,
        folder.path,
        config,
        _mean_similarities(records[: max(1, len(records) // 10)]),
        final,
    )
