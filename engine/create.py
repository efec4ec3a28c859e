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

from conceptlab.engine.backend import DecoderStack
from conceptlab.engine.concept import Concept, save_concept
from conceptlab.engine.config import CreateConfig
from conceptlab.engine.devices import dtype_name
from conceptlab.engine.loading import LoadedPrior, ModelChoice, load_decoder, load_prior
from conceptlab.engine.negatives import Negative, NegativeSchedule
from conceptlab.engine.oracle import OracleOptions, load_oracle
from conceptlab.engine.plot import save_similarity_plot
from conceptlab.engine.render import RenderSettings, render_settings
from conceptlab.engine.residency import IDLE_DEVICE, prior_and_decoder_residency
from conceptlab.engine.run_folder import RunFolder, default_run_dir, write_log_line
from conceptlab.engine.tokens import check_new_token
from conceptlab.engine.train import Constraints, StepRecord, train_token
from conceptlab.engine.version import conceptlab_version
from conceptlab.engine.watch import ConceptWatcher


@dataclass(frozen=True)
class CreateResult:
    concept: Concept
    concept_path: Path
    run_dir: Path
    config: CreateConfig
    first_similarities: dict[str, dict[str, float]]
    final_similarities: dict[str, dict[str, float]]
    strip_path: Path | None = None


def _mean_similarities(records: list[StepRecord]) -> dict[str, dict[str, float]]:
    """Mean similarity per word over `records` (one step samples one template, so single steps are noisy).

    A negative added during these steps is averaged over the steps it applied to.
    """
    means: dict[str, dict[str, float]] = {}
    for group in ("positive", "negative"):
        words = dict.fromkeys(word for record in records for word in getattr(record, group))
        means[group] = {
            word: round(statistics.fmean(getattr(r, group)[word] for r in records if word in getattr(r, group)), 4)
            for word in words
        }
    return means


def concept_metadata(config: CreateConfig, loaded: LoadedPrior, **extra: Any) -> dict[str, Any]:
    """The concept's record: what it is, what it was trained against, and the exact config that ran."""
    info = loaded.info
    return {
        "kind": config.kind,
        "initializer": config.initializer,
        "category": config.category,
        "positives": list(config.positives),
        "weights": list(config.normalized_weights),
        "negatives": [{"word": word, "step": 0, "source": "given"} for word in config.negatives],
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


def _watcher(
    config: CreateConfig,
    loaded: LoadedPrior,
    folder: RunFolder,
    render: RenderSettings | None,
    decoder: DecoderStack | None,
    offload: bool | None,
) -> ConceptWatcher | None:
    """Loads the decoder (and the oracle) only when the run renders or asks."""
    if not (config.images or config.adaptive):
        return None
    oracle = None
    if config.adaptive:
        options = OracleOptions(config.oracle_model, Path(config.vocab_file) if config.vocab_file else None)
        oracle = load_oracle(config.oracle or loaded.backend.default_oracle, loaded, options)
    settings = render or render_settings(loaded.backend)
    folder_for_images = folder.path if config.images else None
    decoder = decoder or load_decoder(loaded, place=None if offload is False else IDLE_DEVICE)
    residency = prior_and_decoder_residency(loaded, decoder, offload)
    return ConceptWatcher(loaded.stack, decoder, config, settings, folder_for_images, oracle, residency)


def create(
    config: CreateConfig,
    model: ModelChoice | LoadedPrior,
    *,
    out: Path | None = None,
    force: bool = False,
    on_step: Callable[[StepRecord], None] | None = None,
    on_negative: Callable[[Negative], None] | None = None,
    render: RenderSettings | None = None,
    constraints: Constraints | None = None,
    extra_metadata: dict[str, Any] | None = None,
    decoder: DecoderStack | None = None,
    offload: bool | None = None,
) -> CreateResult:
    """Learn a new concept and write `out/<token>.safetensors`, `log.jsonl`, checkpoints and `similarities.png`,
    and (with `config.images`) `images/step-XXXX-seed-S.png` and `images/strip.png`.

    `model` is loaded, or reused when already a `LoadedPrior` (its tokenizer then gains the token). With
    `config.adaptive` an oracle names new negatives from the images; each is reported to `on_negative`.
    `constraints` replaces the text constraints and `extra_metadata` adds to the metadata (evolve: parents, lineage).
    `offload` (None: only when they would not all fit on the GPU) keeps one of prior, decoder, oracle resident.
    """
    folder = RunFolder(Path(out) if out else default_run_dir(config.token), config.token)
    folder.check(force)
    loaded = model if isinstance(model, LoadedPrior) else load_prior(model)
    check_new_token(loaded.stack.tokenizer, config.token)
    if config.learning_rate is None:
        config = dataclasses.replace(config, learning_rate=loaded.backend.recommended_learning_rate)
    watcher = _watcher(config, loaded, folder, render, decoder, offload)
    folder.claim(force)
    records: list[StepRecord] = []

    def record_step(record: StepRecord) -> None:
        records.append(record)
        write_log_line(log, record.as_json())
        if on_step:
            on_step(record)

    def record_negative(negative: Negative) -> None:
        write_log_line(log, {"event": "negative", **dataclasses.asdict(negative)})
        if on_negative:
            on_negative(negative)

    def write_checkpoint(step: int, vector: torch.Tensor) -> None:
        if watcher and config.images:
            watcher.images_at(step)
        metadata = concept_metadata(
            config, loaded, **(extra_metadata or {}), checkpoint_step=step, negatives=schedule.records()
        )
        save_concept(Concept(config.token, vector, metadata), folder.checkpoint_path(step))

    schedule = NegativeSchedule(config.negatives, gradual=config.gradual, steps=config.steps, on_add=record_negative)
    with folder.open_log() as log:
        vector = train_token(
            loaded.stack,
            config,
            on_step=record_step,
            on_checkpoint=write_checkpoint,
            ask=watcher.ask if watcher and config.adaptive else None,
            negatives=schedule,
            constraints=constraints,
        )
    tail = records[-max(1, len(records) // 10) :]
    final = _mean_similarities(tail)
    extra = {**(extra_metadata or {}), "negatives": schedule.records(), "final_similarities": final}
    if watcher and watcher.answers:
        extra["oracle_answers"] = watcher.answers
    concept = Concept(config.token, vector, concept_metadata(config, loaded, **extra))
    save_concept(concept, folder.concept_path)
    title = f"{config.token}: {config.kind} ({loaded.info.backend}, seed {config.seed})"
    clamps = [("+ clamp", config.positive_clamp)] if config.positive_clamp < 1 else []
    clamps += [("- clamp", config.negative_clamp)] if schedule.active else []
    save_similarity_plot([r.as_json() for r in records], folder.plot_path, title, clamps)
    return CreateResult(
        concept,
        folder.concept_path,
        folder.path,
        config,
        _mean_similarities(records[: max(1, len(records) // 10)]),
        final,
        watcher.strip_path if watcher and config.images else None,
    )
