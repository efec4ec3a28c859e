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
from conceptlab.engine.loading import LoadedPrior, ModelChoice, load_prior
from conceptlab.engine.plot import save_similarity_plot
from conceptlab.engine.run_folder import RunFolder, default_run_dir, write_log_line
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
) -> CreateResult:
    """Learn a new concept and write `out/<token>.safetensors`, `log.jsonl`, checkpoints and `similarities.png`.

    `model` is loaded, or reused when already a `LoadedPrior` (its tokenizer then gains the token).
    """
    folder = RunFolder(Path(out) if out else default_run_dir(config.token), config.token)
    folder.check(force)
    loaded = model if isinstance(model, LoadedPrior) else load_prior(model)
    check_new_token(loaded.stack.tokenizer, config.token)
    folder.claim(force)
    if config.learning_rate is None:
        config = dataclasses.replace(config, learning_rate=loaded.backend.recommended_learning_rate)
    records: list[StepRecord] = []

    def record_step(record: StepRecord) -> None:
        records.append(record)
        write_log_line(log, record.as_json())
        if on_step:
            on_step(record)

    def write_checkpoint(step: int, vector: torch.Tensor) -> None:
        metadata = concept_metadata(config, loaded, checkpoint_step=step)
        save_concept(Concept(config.token, vector, metadata), folder.checkpoint_path(step))

    with folder.open_log() as log:
        vector = train_token(loaded.stack, config, on_step=record_step, on_checkpoint=write_checkpoint)
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
