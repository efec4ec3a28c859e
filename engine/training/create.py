"""`create` and `mix` as one library call: load, train, and write the run folder and the concept."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from conceptlab.engine.adaptive.oracle import (
    ORACLE_GROUP,
    OracleOptions,
    OracleWithWeights,
    Question,
    check_oracle_inputs,
    load_oracle,
)
from conceptlab.engine.adaptive.watcher import ConceptWatcher
from conceptlab.engine.concept.file import Concept, read_metadata, save_concept
from conceptlab.engine.errors import ConceptFileError, UsageError
from conceptlab.engine.io.lock import RunLock
from conceptlab.engine.models.backend import Backend, DecoderStack
from conceptlab.engine.models.devices import dtype_name
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, load_decoder, load_prior
from conceptlab.engine.models.offload import IDLE_DEVICE, prior_and_decoder_residency
from conceptlab.engine.models.plugins import find, resolve_model
from conceptlab.engine.models.settings import configured
from conceptlab.engine.prior.tokens import check_new_token
from conceptlab.engine.rendering.render import RenderSettings, render_settings
from conceptlab.engine.rendering.sample import check_size
from conceptlab.engine.training.config import CreateConfig
from conceptlab.engine.training.constraints import ImageConstraints, TextEmbedder, check_constraints_fit
from conceptlab.engine.training.interrupt import TrainingInterrupted
from conceptlab.engine.training.loop import StepRecord, negative_schedule, pads_prompts, train_token
from conceptlab.engine.training.negatives import Negative
from conceptlab.engine.training.run_folder import RunFolder, default_run_dir, state_path, step_lines, write_log_line
from conceptlab.engine.training.similarity_plot import save_similarity_plot
from conceptlab.engine.training.state import (
    START_AGAIN,
    TrainingState,
    config_as_json,
    config_from_json,
    load_state,
    save_state,
)
from conceptlab.engine.version import conceptlab_version, created_timestamp


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
        "created": created_timestamp(),
        "conceptlab_version": conceptlab_version(),
        **extra,
    }


def _oracle_choice(config: CreateConfig, backend: Backend) -> tuple[str, OracleOptions]:
    """The oracle `config` asks (`--oracle`, else the backend's default) and its options; the settings file's
    oracle weights apply only to an oracle that has weights of its own (not clip-zeroshot)."""
    name = config.oracle or backend.default_oracle
    model, revision = config.oracle_model, config.oracle_revision
    if hasattr(find(ORACLE_GROUP, name), "default_model"):
        model, revision = configured(backend.name, "oracle", model, revision)
    return name, OracleOptions(model, Path(config.vocab_file) if config.vocab_file else None, revision)


def _check_oracle(config: CreateConfig, model: ModelChoice | LoadedPrior) -> None:
    """Refuse an unknown oracle or one without a vocabulary before any model loads or the folder is claimed."""
    if config.adaptive:
        backend = model.backend if isinstance(model, LoadedPrior) else resolve_model(model.model, model.backend)[0]
        name, options = _oracle_choice(config, backend)
        check_oracle_inputs(name, Question(config.category, config.style), options)


def _needs_decoder(config: CreateConfig, constraints: ImageConstraints | None) -> bool:
    """Renders, an oracle (it looks at renders) and M-CLIP constraints (the 2.1 decoder's text encoder) need it."""
    return config.images or config.adaptive or (constraints is None and config.constraint_encoder == "mclip")


def _decoder(
    config: CreateConfig,
    loaded: LoadedPrior,
    decoder: DecoderStack | None,
    offload: bool | None,
    constraints: ImageConstraints | None,
    choice: tuple[str | None, str | None] = (None, None),
) -> DecoderStack | None:
    """`decoder`, else the chosen one (`choice`: model and revision; None: the backend's) when the run needs one."""
    if decoder or not _needs_decoder(config, constraints):
        return decoder
    return load_decoder(loaded, *choice, place=None if offload is False else IDLE_DEVICE)


def _with_constraint_encoder(
    config: CreateConfig, loaded: LoadedPrior, constraints: ImageConstraints | None
) -> CreateConfig:
    """`config` with the constraint encoder that will run (the backend's default unless chosen); evolve's image
    constraints have none."""
    default = loaded.backend.default_constraint_encoder
    if config.constraint_encoder == "mclip" and default != "mclip":  # checked before the decoder loads
        raise UsageError(
            f"--constraint-encoder mclip needs Kandinsky 2.1's decoder M-CLIP, which {loaded.backend.name} has not; "
            "use --constraint-encoder prior."
        )
    if constraints is not None or config.constraint_encoder is not None:
        return config
    return dataclasses.replace(config, constraint_encoder=default)


def _constraint_embedder(
    config: CreateConfig, loaded: LoadedPrior, decoder: DecoderStack | None, constraints: ImageConstraints | None
) -> TextEmbedder | None:
    if constraints is not None or config.constraint_encoder != "mclip":
        return None
    return loaded.backend.constraint_embedder(decoder, loaded.stack.device)


def _watcher(
    config: CreateConfig,
    loaded: LoadedPrior,
    folder: RunFolder,
    render: RenderSettings | None,
    decoder: DecoderStack | None,
    offload: bool | None,
    on_phase: Callable[[str, float], None] | None = None,
) -> ConceptWatcher | None:
    """Loads the oracle only when the run asks; `decoder` is loaded (`_decoder`) when the run renders or asks.

    `offload` None decides from what is still to come onto the device: the decoder (loaded on the CPU) and the
    weights an oracle will load on its first question (`expected_bytes`; BLIP-2 is as big as the prior).
    """
    if not (config.images or config.adaptive):
        return None
    oracle = None
    if config.adaptive:
        name, options = _oracle_choice(config, loaded.backend)
        oracle = load_oracle(name, loaded, options)
    settings = render or render_settings(loaded.backend, size=config.image_size, steps=config.image_steps)
    folder_for_images = folder.path if config.images else None
    check_size(decoder, settings.size, "--image-size")
    oracle_bytes = oracle.expected_bytes() if isinstance(oracle, OracleWithWeights) else 0
    residency = prior_and_decoder_residency(loaded, decoder, offload, oracle_bytes)
    return ConceptWatcher(loaded.stack, decoder, config, settings, folder_for_images, oracle, residency, on_phase)


@dataclass
class RunCallbacks:
    """What a caller hears of a run, and how it asks the run to stop (between steps, state saved)."""

    on_step: Callable[[StepRecord], None] | None = None
    on_negative: Callable[[Negative], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_parent_image: Callable[[str, int, int], None] | None = None
    """evolve: (parent, images done, images in all) while a parent's images are rendered."""
    on_compile: Callable[[float], None] | None = None
    """`--compile`: the first step's wall time in seconds, compiling included."""
    on_phase: Callable[[str, float], None] | None = None
    """Each checkpoint render and oracle question: ("render" or "oracle", wall seconds)."""


def create(
    config: CreateConfig,
    model: ModelChoice | LoadedPrior,
    *,
    out: Path | None = None,
    force: bool = False,
    callbacks: RunCallbacks | None = None,
    render: RenderSettings | None = None,
    constraints: ImageConstraints | None = None,
    extra_metadata: dict[str, Any] | None = None,
    decoder: DecoderStack | None = None,
    offload: bool | None = None,
) -> CreateResult:
    """Learn a new concept and write `out/<token>.safetensors`, `log.jsonl`, checkpoints and `similarities.png`,
    and (with `config.images`) `images/step-XXXX-seed-S.png` and `images/strip.png`.

    `model` is loaded, or reused when already a `LoadedPrior` (its tokenizer then gains the token). With
    `config.adaptive` an oracle names new negatives from the images. `constraints` replaces the text
    constraints and `extra_metadata` adds to the metadata (evolve: parents, lineage). `offload` (None: only
    when they would not all fit on the GPU) keeps one of prior, decoder, oracle resident; the saved state records
    it for `resume`. The folder is locked while training; when `callbacks.should_stop()` turns true the state is
    saved for `resume` and `TrainingInterrupted` is raised.
    """
    folder = RunFolder(Path(out) if out else default_run_dir(config.token), config.token)
    folder.check(force)
    _check_oracle(config, model)
    loaded = model if isinstance(model, LoadedPrior) else load_prior(model)
    check_new_token(loaded.stack.tokenizer, config.token)
    if config.learning_rate is None:
        config = dataclasses.replace(config, learning_rate=loaded.backend.recommended_learning_rate)
    config = dataclasses.replace(config, pad_prompts=pads_prompts(config, loaded.stack.device))
    if constraints is None:  # before the folder is claimed: a refusal leaves no lock and no empty log
        encoder = loaded.stack.text_encoder
        words = len(config.positives) + len(config.negatives)
        check_constraints_fit(words, len(config.templates), encoder.config.projection_dim, encoder.device)
    config = _with_constraint_encoder(config, loaded, constraints)
    choice = model if isinstance(model, ModelChoice) else ModelChoice(None)
    decoder = _decoder(config, loaded, decoder, offload, constraints, (choice.decoder, choice.decoder_revision))
    embed = _constraint_embedder(config, loaded, decoder, constraints)
    callbacks = callbacks or RunCallbacks()
    watcher = _watcher(config, loaded, folder, render, decoder, offload, callbacks.on_phase)
    extra = _decoder_record(decoder, choice) | _oracle_record(watcher)
    extra |= extra_metadata or {}
    run = _Run(config, loaded, folder, watcher, constraints, extra, callbacks, offload, embed)
    with folder.claim(force):
        return run.train(None, [])


def _decoder_record(decoder: DecoderStack | None, choice: ModelChoice) -> dict[str, Any]:
    """The decoder the concept was rendered with (or, rendering nothing, the one asked for; None: the backend's
    default), so later commands default to it as they default to its prior."""
    if decoder is not None:
        return {"decoder": decoder.source, "decoder_revision": decoder.revision}
    return {"decoder": choice.decoder, "decoder_revision": choice.decoder_revision}


def _oracle_record(watcher: ConceptWatcher | None) -> dict[str, Any]:
    """The weights the oracle asked with (a BLIP-2 id or folder), when it has weights of its own."""
    reference = getattr(watcher.oracle, "model_ref", None) if watcher else None
    return (
        {"oracle_model": reference, "oracle_revision": getattr(watcher.oracle, "revision", None)} if reference else {}
    )


def resume(
    run_dir: Path | str,
    *,
    device: str | None = None,
    dtype: str | None = None,
    callbacks: RunCallbacks | None = None,
    offload: bool | None = None,
) -> CreateResult:
    """Continue an interrupted run from its saved state; the result is the uninterrupted run's, byte for byte.

    The config, the model, the constraints and the oracle's answers so far come from the state; `device`,
    `dtype` and `offload` default to the ones the run used. The state is trusted only after it passes its
    checksum, matches the run that wrote the folder's checkpoints and matches the log lines it covers; anything
    else is refused in one line before the folder is touched.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such run folder.")
    state = load_state(state_path(run_dir))
    config, recorded = _recorded_run(state_path(run_dir), state)
    folder = RunFolder(run_dir, config.token)
    if folder.concept_path.exists():
        raise UsageError(f"{run_dir} holds a finished run ({folder.concept_path.name}); there is nothing to resume.")
    _check_same_run(folder, state.extra["config"], recorded)
    covered_log = folder.covered_log(state.log_lines, state.log_sha256, state.step)
    choice = ModelChoice(
        recorded["model"],
        recorded["backend"],
        device or recorded["device"],
        dtype or recorded["dtype"],
        recorded["revision"],
    )
    _check_oracle(config, choice)
    offload = state.extra.get("offload") if offload is None else offload
    loaded = load_prior(choice)
    if state.vector.numel() != loaded.stack.embedding_dim:
        raise ConceptFileError(f"{folder.state_path}: the saved vector does not fit {choice.model}; {START_AGAIN}")
    rows = state.extra.get("constraints")
    constraints = ImageConstraints.from_json(rows, loaded.stack.device) if rows else None
    saved = state.extra.get("metadata") or {}
    decoder_choice = (saved.get("decoder"), saved.get("decoder_revision"))
    decoder = _decoder(config, loaded, None, offload, constraints, decoder_choice)
    watcher = _watcher(config, loaded, folder, RenderSettings(**state.extra["render"]), decoder, offload)
    if watcher:
        watcher.resume(state.step, state.extra.get("oracle_answers", []))
    metadata = state.extra.get("metadata", {})
    embed = _constraint_embedder(config, loaded, decoder, constraints)
    run = _Run(config, loaded, folder, watcher, constraints, metadata, callbacks or RunCallbacks(), offload, embed)
    with RunLock(folder.path):
        folder.rewind_log(covered_log)
        return run.train(state, covered_log)


def saved_run_config(run_dir: Path) -> CreateConfig:
    """The config of the interrupted run in `run_dir`, from its saved state (refused in one line if unusable)."""
    return _recorded_run(state_path(run_dir), load_state(state_path(run_dir)))[0]


def _recorded_run(state_file: Path, state: TrainingState) -> tuple[CreateConfig, dict[str, Any]]:
    try:
        return config_from_json(state.extra["config"]), dict(state.extra["model"])
    except (AttributeError, KeyError, TypeError, ValueError, UsageError):
        unusable = f"{state_file}: the training state does not record a usable config; {START_AGAIN}"
        raise ConceptFileError(unusable) from None


def _check_same_run(folder: RunFolder, config: dict[str, Any], model: dict[str, Any]) -> None:
    """Refuse a state whose config or model differs from the one recorded in the folder's checkpoints: another
    run's state copied into this folder (another seed, another token, a mix run's state in a create run's folder).
    """
    identity = (config, model.get("backend"), model.get("model"), model.get("revision"))
    for checkpoint in sorted(folder.path.glob("checkpoints/step-*.safetensors")):
        recorded = read_metadata(checkpoint)
        if identity != (
            recorded.get("config"),
            recorded.get("backend"),
            recorded.get("model"),
            recorded.get("model_revision"),
        ):
            raise ConceptFileError(
                f"{folder.state_path} is another run's state (its config or model differs from {checkpoint.name}'s); "
                + START_AGAIN
            )


def _model_record(loaded: LoadedPrior) -> dict[str, Any]:
    return {
        "model": loaded.info.model,
        "backend": loaded.info.backend,
        "revision": loaded.info.revision,
        "device": str(loaded.stack.device),
        "dtype": dtype_name(loaded.stack.dtype),
    }


@dataclass
class _Run:
    """One training run writing into its folder: log lines, negatives, checkpoints, state, and the results."""

    config: CreateConfig
    loaded: LoadedPrior
    folder: RunFolder
    watcher: ConceptWatcher | None
    constraints: ImageConstraints | None
    extra_metadata: dict[str, Any]
    callbacks: RunCallbacks
    offload: bool | None
    """The `offload` choice as given (None: decided from free memory), recorded for `resume`."""
    embed: TextEmbedder | None = None
    """The constraints' text encoder when it is not the prior's CLIP (M-CLIP)."""
    compile_seconds: float | None = None

    def train(self, start: TrainingState | None, log: list[bytes]) -> CreateResult:
        """Train (from `start`, after the `log` lines written before it) and write every output of the run."""
        config, callbacks = self.config, self.callbacks
        self.records = [StepRecord(**line) for line in step_lines([json.loads(line) for line in log])]
        self.lines = len(log)
        self.log_sha256 = hashlib.sha256(b"".join(log))
        self.negatives = negative_schedule(config, on_add=self._record_negative)
        with self.folder.open_log(append=start is not None) as self.log:
            try:
                vector = train_token(
                    self.loaded.stack,
                    config,
                    on_step=self._record_step,
                    on_checkpoint=self._write_checkpoint,
                    ask=self.watcher.ask if self.watcher and config.adaptive else None,
                    negatives=self.negatives,
                    constraints=self.constraints,
                    start=start,
                    on_state=self._write_state,
                    should_stop=callbacks.should_stop,
                    embed=self.embed,
                    on_compile=self._record_compile,
                )
            except TrainingInterrupted as stopped:
                raise TrainingInterrupted(stopped.step, stopped.total, self.folder.path) from None
        return self._finish(vector)

    def _write_line(self, line: dict) -> None:
        self.log_sha256.update(write_log_line(self.log, line))
        self.lines += 1

    def _record_step(self, record: StepRecord) -> None:
        self.records.append(record)
        self._write_line(record.as_json())
        if self.callbacks.on_step:
            self.callbacks.on_step(record)

    def _record_negative(self, negative: Negative) -> None:
        self._write_line({"event": "negative", **dataclasses.asdict(negative)})
        if self.callbacks.on_negative:
            self.callbacks.on_negative(negative)

    def _record_compile(self, seconds: float) -> None:
        self.compile_seconds = round(seconds, 3)
        self._write_line(
            {
                "event": "compile",
                "step": self.records[-1].step + 1 if self.records else 1,
                "seconds": self.compile_seconds,
            }
        )
        if self.callbacks.on_compile:
            self.callbacks.on_compile(seconds)

    def _metadata(self, **extra: Any) -> dict[str, Any]:
        answers = {"oracle_answers": self.watcher.answers} if self.watcher and self.watcher.answers else {}
        compiled = {"compile_seconds": self.compile_seconds} if self.compile_seconds is not None else {}
        return concept_metadata(
            self.config,
            self.loaded,
            **self.extra_metadata,
            negatives=self.negatives.records(),
            **answers,
            **compiled,
            **extra,
        )

    def _write_checkpoint(self, step: int, vector: torch.Tensor) -> None:
        if self.watcher and self.config.images:
            self.watcher.images_at(step)
        concept = Concept(self.config.token, vector, self._metadata(checkpoint_step=step))
        save_concept(concept, self.folder.checkpoint_path(step))

    def _write_state(self, state: TrainingState) -> None:
        state.log_lines = self.lines
        state.log_sha256 = self.log_sha256.hexdigest()
        state.extra = {
            "config": config_as_json(self.config),
            "model": _model_record(self.loaded),
            "metadata": self.extra_metadata,
            "constraints": self.constraints.as_json() if self.constraints else None,
            "render": dataclasses.asdict(self.watcher.settings) if self.watcher else {},
            "oracle_answers": self.watcher.answers if self.watcher else [],
            "offload": self.offload,
        }
        save_state(state, self.folder.state_path)

    def _finish(self, vector: torch.Tensor) -> CreateResult:
        config, records = self.config, self.records
        final = _mean_similarities(records[-max(1, len(records) // 10) :])
        concept = Concept(config.token, vector, self._metadata(final_similarities=final))
        title = f"{config.token}: {config.kind} ({self.loaded.info.backend}, seed {config.seed})"
        clamps = [("+ clamp", config.positive_clamp)] if config.positive_clamp < 1 else []
        clamps += [("- clamp", config.negative_clamp)] if self.negatives.active else []
        save_similarity_plot([r.as_json() for r in records], self.folder.plot_path, title, clamps)
        save_concept(concept, self.folder.concept_path)  # last: a folder with its concept is a finished run
        return CreateResult(
            concept,
            self.folder.concept_path,
            self.folder.path,
            config,
            _mean_similarities(records[: max(1, len(records) // 10)]),
            final,
            self.watcher.strip_path if self.watcher and config.images else None,
        )
