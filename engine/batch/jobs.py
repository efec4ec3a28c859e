"""One batch job, run inside a root folder: the same engine calls as the commands, with models reused.

Every path a job reads or writes is relative to the root (the plan's output folder, or a worker's scratch folder
holding copies of the inputs), so a job writes the same bytes wherever it runs, lineage paths included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conceptlab.engine.adaptive.vocabulary import known_members, read_vocabulary
from conceptlab.engine.batch.plan import Job
from conceptlab.engine.concept.file import Concept, load_concept
from conceptlab.engine.evaluation.evaluate import (
    ImageSet,
    concept_negatives,
    evaluate_image_sets,
    render_concept_images,
    results_csv,
    results_json,
    target_for,
)
from conceptlab.engine.evaluation.evaluators import default_clip, load_clip
from conceptlab.engine.evaluation.metrics import ClipEmbedder, EvaluationTarget
from conceptlab.engine.io.atomic import working_directory, write_json, write_text
from conceptlab.engine.io.images import load_images, save_renders
from conceptlab.engine.models.backend import DecoderStack
from conceptlab.engine.models.devices import resolve_device, resolve_dtype
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, load_decoder, load_prior
from conceptlab.engine.models.offload import IDLE_DEVICE
from conceptlab.engine.rendering.render import render_settings
from conceptlab.engine.rendering.sample import sample
from conceptlab.engine.training.config import create_config, mix_config
from conceptlab.engine.training.create import RunCallbacks, create
from conceptlab.engine.training.evolve import evolve, recorded_parent_folders
from conceptlab.engine.training.run_folder import token_slug

JobProgress = Callable[[int, int], None]
"""`on_progress(done, total)`: steps of training or images rendered."""

METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class JobResult:
    concept: str | None
    """The concept file the job wrote, relative to the root (None for sample and evaluate)."""
    files: tuple[str, ...]
    """Everything under the job's folder, relative to the root."""
    summary: str


class ModelPool:
    """Priors, decoders and CLIPs loaded once and shared by the jobs that need the same ones."""

    def __init__(self) -> None:
        self._priors: dict[ModelChoice, LoadedPrior] = {}
        self._decoders: dict[int, DecoderStack] = {}
        self._clips: dict[tuple[str, str], ClipEmbedder] = {}

    def prior(self, choice: ModelChoice) -> LoadedPrior:
        if choice not in self._priors:
            self._priors[choice] = load_prior(choice)
        return self._priors[choice]

    def decoder(self, loaded: LoadedPrior) -> DecoderStack:
        if id(loaded) not in self._decoders:
            self._decoders[id(loaded)] = load_decoder(loaded, place=IDLE_DEVICE)
        return self._decoders[id(loaded)]

    def clip(self, spec: str, device: str, dtype: str) -> ClipEmbedder:
        if (spec, device) not in self._clips:
            torch_device = resolve_device(device)
            self._clips[(spec, device)] = load_clip(spec, torch_device, resolve_dtype(dtype, torch_device))
        return self._clips[(spec, device)]

    def clear(self) -> None:
        """Forget every model (after a failed job, whose half-done work may have changed a tokenizer)."""
        self._priors.clear()
        self._decoders.clear()
        self._clips.clear()


def model_choice(options: dict[str, Any], concepts: list[Concept], default_model: str) -> ModelChoice:
    """The job's `model` options, else the model its first input concept was trained against, else the default."""
    model, backend = options.get("model"), options.get("backend")
    if model is None and concepts:
        model, backend = concepts[0].metadata.get("model"), backend or concepts[0].metadata.get("backend")
    return ModelChoice(
        model or default_model,
        backend,
        options.get("device", "auto"),
        options.get("dtype", "auto"),
        options.get("revision"),
    )


def training_settings(options: dict[str, Any]) -> dict[str, Any]:
    """`CreateConfig` fields from a job's training options (the command-line names)."""
    renamed = {"lr": "learning_rate", "every": "checkpoint_every"}
    names = ("steps", "seed", "prior_steps", "prior_guidance", "images", "images_per_parent", "image_seeds", *renamed)
    settings = {renamed.get(key, key): options[key] for key in names if key in options}
    if "image_seeds" in settings:
        settings["image_seeds"] = tuple(settings["image_seeds"])
    return settings


def _folder_files(root: Path, folder: Path) -> tuple[str, ...]:
    return tuple(sorted(str(path.relative_to(root)) for path in (root / folder).rglob("*") if path.is_file()))


def _create(job: Job, inputs: dict[str, str], pool: ModelPool, model: str, on_progress: JobProgress) -> Any:
    options = job.options
    choice = model_choice(options, [], model)
    shared = dict(initializer=options.get("init"), token=options.get("token") or f"<{job.name}>")
    settings = training_settings(options)
    if job.run == "create":
        oracle_keys = ("oracle", "oracle_model", "ask_every", "max_negatives")
        adaptive = {key: options[key] for key in oracle_keys if key in options}
        if "vocab" in options:
            adaptive["vocab_file"] = inputs[options["vocab"]]
        config = create_config(
            options["category"],
            tuple(options.get("neg", ())),
            adaptive=options.get("adaptive"),
            style=options.get("style", False),
            gradual=options.get("gradual", False),
            **shared,
            **adaptive,
            **settings,
        )
    else:
        weights = tuple(options["weights"]) if "weights" in options else None
        config = mix_config(tuple(options["words"]), weights, category=options.get("category"), **shared, **settings)
    loaded = pool.prior(choice)
    decoder = pool.decoder(loaded) if config.images or config.adaptive else None
    callbacks = RunCallbacks(on_step=lambda record: on_progress(record.step, config.steps))
    return create(config, loaded, out=Path(job.out), force=True, callbacks=callbacks, decoder=decoder)


def _evolve(job: Job, inputs: dict[str, str], pool: ModelPool, model: str, on_progress: JobProgress) -> Any:
    options = job.options
    paths = [Path(inputs[parent]) for parent in options["parents"]]
    concepts = [load_concept(path) for path in paths if not path.is_dir()]
    choice = model_choice(options, concepts, model)
    loaded = pool.prior(choice)
    steps = options.get("steps", 2500)
    return evolve(
        paths,
        choice,
        weights=tuple(options["weights"]) if "weights" in options else None,
        token=options.get("token") or f"<{job.name}>",
        initializer=options.get("init"),
        out=Path(job.out),
        force=True,
        callbacks=RunCallbacks(on_step=lambda record: on_progress(record.step, steps)),
        loaded=loaded,
        decoder=pool.decoder(loaded),
        **training_settings(options),
    )


def _sample(job: Job, inputs: dict[str, str], pool: ModelPool, model: str, on_progress: JobProgress) -> str:
    options = job.options
    concepts = [load_concept(Path(inputs[name])) for name in options["concepts"]]
    loaded = pool.prior(model_choice(options, concepts, model))
    settings = render_settings(loaded.backend, size=options.get("size"), steps=options.get("render_steps"))
    count = options.get("n", 4)
    result = sample(
        concepts,
        options["prompt"],
        loaded,
        pool.decoder(loaded),
        count,
        options.get("seed", 42),
        settings,
        out=Path(job.out),
        force=True,
        grid=options.get("grid", True),
        on_image=lambda index: on_progress(index + 1, count),
    )
    return f"{len(result.images)} images"


def _evaluation_set(
    concept: Concept, path: str, images: list[Any], options: dict[str, Any], vocabulary_file: str | None
) -> ImageSet:
    metadata = concept.metadata
    category = options.get("category") or metadata.get("category")
    vocabulary = read_vocabulary(Path(vocabulary_file)) if vocabulary_file else known_members(category or "")
    target = target_for(category, tuple(options.get("neg", ())) or concept_negatives(metadata), vocabulary, path)
    recorded = recorded_parent_folders(metadata) or {}
    parents = {label: (weight, load_images(folder)) for label, (weight, folder) in recorded.items()}
    target = EvaluationTarget(target.category, target.negatives, target.vocabulary, parents)
    return ImageSet(concept.token, "conceptlab", images, target, concept.sha256)


def _evaluate(job: Job, inputs: dict[str, str], pool: ModelPool, model: str, on_progress: JobProgress) -> str:
    options = job.options
    paths = [inputs[name] for name in options["concepts"]]
    concepts = [load_concept(Path(path)) for path in paths]
    choice = model_choice(options, concepts, model)
    loaded = pool.prior(choice)
    settings = render_settings(loaded.backend, size=options.get("size"), steps=options.get("render_steps"))
    count, seed = options.get("n", 32), options.get("seed", 0)
    sets = []
    for index, (path, concept) in enumerate(zip(paths, concepts, strict=True)):
        images = render_concept_images(concept, loaded, pool.decoder(loaded), count, seed, settings)
        source = {"concept": concept.sha256, "count": count, "first_seed": seed, "render": asdict(settings)}
        save_renders(images, Path(job.out) / "images" / token_slug(concept.token), source)
        sets.append(_evaluation_set(concept, path, images, options, inputs.get(options.get("vocab", ""))))
        on_progress(index + 1, len(concepts))
    clip = pool.clip(options.get("clip") or default_clip(choice), choice.device, choice.dtype)
    rows = evaluate_image_sets(clip, sets)
    write_json(Path(job.out) / METRICS_FILE, results_json(rows, clip.name))
    write_text(Path(job.out) / "rows.csv", results_csv(rows))
    return f"{len(rows)} rows scored"


RUNNERS = {"create": _create, "mix": _create, "evolve": _evolve, "sample": _sample, "evaluate": _evaluate}


def run_job(
    job: Job,
    root: Path,
    inputs: dict[str, str],
    pool: ModelPool,
    default_model: str,
    on_progress: JobProgress | None = None,
) -> JobResult:
    """Run `job` in `root`; `inputs` maps each path or job name the job reads to its file, relative to `root`."""
    with working_directory(root):
        outcome = RUNNERS[job.run](job, inputs, pool, default_model, on_progress or (lambda _done, _total: None))
        files = _folder_files(Path.cwd(), Path(job.out))
    if isinstance(outcome, str):
        return JobResult(None, files, outcome)
    final = outcome.final_similarities.get("positive", {})
    summary = ", ".join(f"{word} {value:.3f}" for word, value in final.items())
    return JobResult(str(outcome.concept_path), files, f"{outcome.concept.token}: {summary}")
