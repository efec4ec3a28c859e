"""One batch job, run inside a root folder: the same engine calls as the commands, with models reused.

Every path a job reads or writes is relative to the root (the plan's output folder, or a worker's scratch folder
holding copies of the inputs), so a job writes the same bytes wherever it runs, lineage paths included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conceptlab.engine.batch.plan import Job
from conceptlab.engine.concept.file import Concept, load_concept
from conceptlab.engine.evaluation.evaluate import (
    concept_image_set,
    concept_target,
    evaluate_image_sets,
    recorded_parents,
    render_concept_images,
    results_csv,
    results_json,
)
from conceptlab.engine.evaluation.evaluators import evaluating_clip
from conceptlab.engine.evaluation.judge import load_judge
from conceptlab.engine.evaluation.request import EvaluateRequest
from conceptlab.engine.io.atomic import working_directory, write_json, write_text
from conceptlab.engine.io.images import save_renders
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.models.model_cache import ModelCache
from conceptlab.engine.options import field_values
from conceptlab.engine.rendering.render import render_settings
from conceptlab.engine.rendering.sample import SampleRequest, sample
from conceptlab.engine.training.config import COMMAND_OPTIONS, CreateConfig
from conceptlab.engine.training.create import RunCallbacks
from conceptlab.engine.training.request import CreateRequest, EvolveRequest, command_config, idle_decoder, train
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


def model_choice(options: dict[str, Any], concepts: list[Concept], default_model: str) -> ModelChoice:
    """The job's model options, else the model its first input concept was trained against, else the default."""
    return ModelChoice.for_concepts(concepts, **field_values(ModelChoice, options), default=default_model)


def training_values(job: Job) -> dict[str, Any]:
    """`CreateConfig` fields from a job's training options (the command-line names); the token defaults to the job's."""
    values = field_values(CreateConfig, job.options, COMMAND_OPTIONS[job.run])
    values["token"] = values.get("token") or f"<{job.name}>"
    return values


def _folder_files(root: Path, folder: Path) -> tuple[str, ...]:
    return tuple(sorted(str(path.relative_to(root)) for path in (root / folder).rglob("*") if path.is_file()))


def _create(job: Job, inputs: dict[str, str], cache: ModelCache, model: str, on_progress: JobProgress) -> Any:
    values = training_values(job)
    if "vocab_file" in values:
        values["vocab_file"] = inputs[values["vocab_file"]]
    config = command_config(job.run, values)
    callbacks = RunCallbacks(on_step=lambda record: on_progress(record.step, config.steps))
    request = CreateRequest(config, model_choice(job.options, [], model), out=Path(job.out), force=True)
    return train(request, callbacks, cache)


def _evolve(job: Job, inputs: dict[str, str], cache: ModelCache, model: str, on_progress: JobProgress) -> Any:
    paths = tuple(Path(inputs[parent]) for parent in job.options["parents"])
    concepts = [load_concept(path) for path in paths if not path.is_dir()]
    choice = model_choice(job.options, concepts, model)
    request = EvolveRequest(paths, choice, training_values(job), out=Path(job.out), force=True)
    callbacks = RunCallbacks(on_step=lambda record: on_progress(record.step, request.total_steps()))
    return train(request, callbacks, cache)


def _sample(job: Job, inputs: dict[str, str], cache: ModelCache, model: str, on_progress: JobProgress) -> str:
    paths = tuple(Path(inputs[name]) for name in job.options["concepts"])
    choice = model_choice(job.options, [load_concept(path) for path in paths], model)
    values = field_values(SampleRequest, job.options)
    values |= {"concepts": paths, "model": choice.model, "backend": choice.backend, "revision": choice.revision}
    if values.get("via") is None:  # a --via route renders without the decoder
        values |= {"decoder": choice.decoder, "decoder_revision": choice.decoder_revision}
    request = SampleRequest(**values | {"out": Path(job.out), "force": True})
    result = sample(request, cache=cache, on_image=lambda index: on_progress(index + 1, request.n))
    return f"{len(result.images)} images"


def _evaluate(job: Job, inputs: dict[str, str], cache: ModelCache, model: str, on_progress: JobProgress) -> str:
    """Render each concept (kept under images/), score it against its target and recorded parents, write the rows."""
    options = job.options
    paths = [inputs[name] for name in options["concepts"]]
    concepts = [load_concept(Path(path)) for path in paths]
    choice = model_choice(options, concepts, model)
    loaded = cache.prior(choice)
    settings = render_settings(loaded.backend, size=options.get("size"), steps=options.get("steps"))
    count, seed = options.get("n", EvaluateRequest.count), options.get("seed", EvaluateRequest.seed)
    category, negatives = options.get("category"), tuple(options.get("neg", ()))
    vocabulary = inputs.get(options.get("vocab", ""))
    sets = []
    for index, (path, concept) in enumerate(zip(paths, concepts, strict=True)):
        images = render_concept_images(concept, loaded, idle_decoder(cache, choice), count, seed, settings)
        source = {"concept": concept.sha256, "count": count, "first_seed": seed, "render": asdict(settings)}
        save_renders(images, Path(job.out) / "images" / token_slug(concept.token), source)
        parents = recorded_parents(concept.metadata)
        sets.append(
            concept_image_set(concept, images, concept_target(concept, category, negatives, vocabulary, path, parents))
        )
        on_progress(index + 1, len(concepts))
    clip = evaluating_clip(options.get("clip"), choice, cache, options.get("clip_revision"))
    judge = load_judge(options["judge"], loaded, vocabulary and Path(vocabulary)) if options.get("judge") else None
    rows = evaluate_image_sets(clip, sets, judge=judge)
    write_json(Path(job.out) / METRICS_FILE, results_json(rows, clip.name, judge.record() if judge else None))
    write_text(Path(job.out) / "rows.csv", results_csv(rows))
    return f"{len(rows)} rows scored"


RUNNERS = {"create": _create, "mix": _create, "evolve": _evolve, "sample": _sample, "evaluate": _evaluate}


def run_job(
    job: Job,
    root: Path,
    inputs: dict[str, str],
    cache: ModelCache,
    default_model: str,
    on_progress: JobProgress | None = None,
) -> JobResult:
    """Run `job` in `root`; `inputs` maps each path or job name the job reads to its file, relative to `root`."""
    with working_directory(root):
        outcome = RUNNERS[job.run](job, inputs, cache, default_model, on_progress or (lambda _done, _total: None))
        files = _folder_files(Path.cwd(), Path(job.out))
    if isinstance(outcome, str):
        return JobResult(None, files, outcome)
    final = outcome.final_similarities.get("positive", {})
    summary = ", ".join(f"{word} {value:.3f}" for word, value in final.items())
    return JobResult(str(outcome.concept_path), files, f"{outcome.concept.token}: {summary}")
