"""The creative-generation protocol of ConceptLab's follow-up (arXiv 2510.10715), runnable offline by anyone.

Four categories; per category and method the same number of images (100; `--quick`: 8, one category), scored on
one table: CLIP similarity, novelty, typicality, diversity, Vendi, total variance, the judge's validity and
vqa-novelty, and the seconds each image and concept cost. Every finished piece is kept on disk, so a rerun skips it.

Methods are one function each in `METHODS` (name -> function of the run and a category, returning the method's
rows for that category); adding a method is one function and one entry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from conceptlab.engine.adaptive.vocabulary import known_members
from conceptlab.engine.batch.plan import Job
from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.baselines import baseline_names, load_baseline
from conceptlab.engine.evaluation.evaluate import (
    CLIP_FIELD,
    EvaluationRow,
    ImageSet,
    RenderClock,
    baseline_images,
    render_concept_images,
)
from conceptlab.engine.evaluation.judge import Judge, check_judge
from conceptlab.engine.evaluation.metrics import (
    SET_METRICS,
    ClipEmbedder,
    EvaluationTarget,
    Evaluator,
    Summary,
    prompt_for,
    total_variance,
    vendi_score,
)
from conceptlab.engine.evaluation.protocols.paper import summarize
from conceptlab.engine.evaluation.protocols.runner import ProtocolRun, slug
from conceptlab.engine.imagine import ImagineProgress, ImagineRequest, imagine
from conceptlab.engine.imagine.models import resolve_family
from conceptlab.engine.io.atomic import write_json
from conceptlab.engine.io.images import file_sha256, load_images
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.models.plugins import resolve_model
from conceptlab.engine.rendering.render import render_prompts

CREATIVE_CATEGORIES = ("pet", "plant", "garment", "vehicle")
BASELINE_NEGATIVES: dict[str, tuple[str, ...]] = {
    "pet": ("cat", "dog"),
    "plant": ("tree", "flower"),
    "garment": ("shirt", "dress"),
    "vehicle": ("car", "bicycle"),
}
"""Our choice (the follow-up does not list one): the two most typical members, the negatives of the baselines and
of every row's negative similarity."""


@dataclass(frozen=True)
class CreativeConfig:
    categories: tuple[str, ...] = CREATIVE_CATEGORIES
    images: int = 100
    """Images per category and method."""
    images_per_concept: int = 10
    """The `concept` method trains one concept (its own seed) per this many images: 10 concepts of 10 images."""
    baselines: tuple[str, ...] = field(default_factory=baseline_names)
    train_steps: int | None = None
    """None: `create`'s default (2,500, the official code's)."""
    judge: str | None = None
    """The oracle that judges validity and vqa-novelty; None: the backend's own (BLIP-2 on Kandinsky)."""
    sd_model: str | None = None
    size: int | None = None
    render_steps: int | None = None
    prior_steps: int | None = None
    image_seed: int = 0
    negatives: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(BASELINE_NEGATIVES))

    @property
    def methods(self) -> tuple[str, ...]:
        return ("concept", "imagine", "plain", *self.baselines)

    @property
    def concept_seeds(self) -> range:
        return range(math.ceil(self.images / self.images_per_concept))


def creative_protocol(quick: bool = False, **changes: Any) -> CreativeConfig:
    """The follow-up's design; `quick`: one category (pet), 8 images (so one concept), 10 training steps."""
    if not quick:
        return CreativeConfig(**changes)
    quick_values = dict(categories=("pet",), images=8, train_steps=10)
    return CreativeConfig(**{**quick_values, "render_steps": 2, "prior_steps": 5, **changes})


def concept_name(category: str, seed: int) -> str:
    return f"{slug(category)}-seed{seed}"


def _target(config: CreativeConfig, category: str) -> EvaluationTarget:
    return EvaluationTarget(category, config.negatives[category], known_members(category))


def training_jobs(config: CreativeConfig, model: ModelChoice) -> tuple[Job, ...]:
    """One adaptive `create` job (no given negatives: the oracle names them) per category and seed."""
    options = {"model": model.model, "device": model.device, "dtype": model.dtype}
    options |= {key: value for key, value in (("backend", model.backend), ("revision", model.revision)) if value}
    options |= {"steps": config.train_steps} if config.train_steps else {}
    return tuple(
        Job(
            name,
            "create",
            {"category": category, "seed": seed, "token": f"<{name}>", "images": False, **options},
            out=f"concepts/{name}",
        )
        for category in config.categories
        for seed in config.concept_seeds
        for name in [concept_name(category, seed)]
    )


def concept_rows(run: ProtocolRun, category: str) -> list[ImageSet]:
    """`concept`: our `create` with adaptive negatives; one concept per `images_per_concept` images, one seed each."""
    config, rows = run.config, []
    for seed in config.concept_seeds:
        name = concept_name(category, seed)
        concept, train_seconds = run.concept(name)
        count = min(config.images_per_concept, config.images - seed * config.images_per_concept)
        settings = run.settings()
        source = {"concept": concept.sha256, "count": count, "first_seed": config.image_seed}
        source |= {"render": asdict(settings), **run.model_source()}

        def make(clock: RenderClock, concept=concept, count=count, settings=settings) -> list:
            loaded, decoder = run.loaded()
            return render_concept_images(concept, loaded, decoder, count, config.image_seed, settings, clock)

        folder = run.out / "images" / "concept" / name
        images, costs = run.images(folder, source, count, _label(run, folder), make)
        costs = {**costs, "train-seconds": [train_seconds]}
        rows.append(ImageSet(name, "concept", images, _target(config, category), concept.sha256, costs))
    return rows


def plain_rows(run: ProtocolRun, category: str) -> list[ImageSet]:
    """`plain`: the model itself, "A photo of a {category}", no negatives."""
    config, settings = run.config, run.settings()
    source = {"method": "plain", "category": category, "count": config.images, "first_seed": config.image_seed}
    source |= {"render": asdict(settings), **run.model_source()}

    def make(clock: RenderClock) -> list:
        loaded, decoder = run.loaded()
        prompts = [prompt_for(category)] * config.images
        seeds = list(range(config.image_seed, config.image_seed + config.images))
        return render_prompts(loaded.stack, decoder, prompts, seeds, settings, on_image=clock)

    folder = run.out / "images" / "plain" / slug(category)
    images, costs = run.images(folder, source, config.images, _label(run, folder), make)
    return [ImageSet(f"plain {category}", "plain", images, _target(config, category), costs=costs)]


def baseline_rows(run: ProtocolRun, category: str, name: str) -> list[ImageSet]:
    """A `conceptlab.baselines` entry (kandinsky-neg, sd-neg) with the category's two typical members as negatives."""
    config, baseline = run.config, load_baseline(name)
    target = _target(config, category)
    uses_backend = baseline.uses_backend
    source = {"baseline": name, "category": category, "negatives": list(target.negatives), "count": config.images}
    source |= {"first_seed": config.image_seed, "render_steps": config.render_steps}
    source |= {"prior_steps": config.prior_steps, "size": config.size if uses_backend else None}
    source |= run.model_source() if uses_backend else {"model": config.sd_model}

    def make(clock: RenderClock) -> list:
        return baseline_images(
            baseline,
            target,
            config.images,
            config.image_seed,
            run.model,
            run.models,
            model=config.sd_model,
            size=config.size if uses_backend else None,
            steps=config.render_steps,
            prior_steps=config.prior_steps,
            on_image=clock,
        )

    folder = run.out / "images" / name / slug(category)
    images, costs = run.images(folder, source, config.images, _label(run, folder), make, preload=uses_backend)
    return [ImageSet(f"{name} {category}", name, images, target, costs=costs)]


IMAGINED_HASHES = ".protocol-images.json"
"""Beside an imagine row's images: the sha256 of each as the protocol rendered it, so a rerun checks what it reuses."""
MAX_HASHES_BYTES = 1024 * 1024
"""Far above the 1000 images' hashes (about 80 KB) a row can have."""


def _imagined_hashes(request: ImagineRequest, force: bool) -> dict[str, str]:
    """The hashes recorded by an earlier run of this row, after checking the images they name: one changed or
    swapped is refused (unless `force`, which renders every image again); one the protocol never hashed (an
    interrupted run's) is removed, so imagine renders it again."""
    folder, record = request.out_folder, request.out_folder / IMAGINED_HASHES
    try:  # a regular file of at most 1 MB (a FIFO would hang the read); anything else counts as no hashes
        small = record.is_file() and record.stat().st_size <= MAX_HASHES_BYTES
        recorded = json.loads(record.read_text(encoding="utf-8")) if small else {}
    except (OSError, ValueError, RecursionError):
        recorded = {}
    recorded = {k: v for k, v in recorded.items() if isinstance(v, str)} if isinstance(recorded, dict) else {}
    if force:
        return {}
    for seed in request.image_seeds:
        path = folder / f"{seed}.png"
        if not path.is_file():
            continue
        if path.name not in recorded:
            path.unlink()
        elif file_sha256(path) != recorded[path.name]:
            raise UsageError(
                f"{path} is not the image this protocol rendered (changed or swapped); add --force to render again."
            )
    return recorded


def imagine_rows(run: ProtocolRun, category: str) -> list[ImageSet]:
    """`imagine`: the training-free method (VLM-guided adaptive negatives) on the same backend and render settings,
    with its own default oracle; its record makes a rerun skip every finished image."""
    config = run.config
    request = ImagineRequest(
        category=category,
        n=config.images,
        seed=config.image_seed,
        model=run.model.model,
        backend=run.model.backend,
        steps=config.render_steps,
        size=config.size,
        device=run.model.device,
        dtype=run.model.dtype,
        out=run.out / "images" / "imagine" / slug(category),
        force=run.force,
    )
    on_image = run.on_task(f"imagine {slug(category)}", config.images)

    def progress(event: ImagineProgress) -> None:
        if event.skipped or event.step == event.steps:
            on_image(event.image)

    hashes = _imagined_hashes(request, run.force)
    result = imagine(request, progress, kandinsky=run.loaded())
    write_json(request.out_folder / IMAGINED_HASHES, hashes | {path.name: file_sha256(path) for path in result.paths})
    images = load_images(result.out, result.paths)
    # as imagine.json records them (rounded), so a rerun that reads them back reports the same costs
    seconds = [round(image.seconds_denoising, 4) + round(image.seconds_asking, 4) for image in result.images]
    costs = {"render-seconds": seconds}
    return [ImageSet(f"imagine {category}", "imagine", images, _target(config, category), costs=costs)]


METHODS: dict[str, Callable[[ProtocolRun, str], list[ImageSet]]] = {
    "concept": concept_rows,
    "imagine": imagine_rows,
    "plain": plain_rows,
    **{name: lambda run, category, name=name: baseline_rows(run, category, name) for name in baseline_names()},
}
"""Method name -> its rows for one category: adding a method is one function and one entry."""


def pooled_set_metrics(evaluator: Evaluator, sets: list[ImageSet]) -> dict[str, Summary]:
    """Vendi and total variance of all of a method's images in a category (they do not pool from the rows)."""
    embeds = evaluator.image_embeds([image for image_set in sets for image in image_set.images])
    count = embeds.shape[0]
    return {
        "vendi": Summary.of_set(vendi_score(embeds), count),
        "variance": Summary.of_set(total_variance(embeds), count),
    }


def creative_summary(rows: list[EvaluationRow], sets: list[ImageSet], evaluator: Evaluator) -> list[EvaluationRow]:
    """One row per (category, method): per-image metrics and costs pooled, set-level ones over all the images."""
    summary = []
    for row in summarize(rows):
        category, method = row.metrics.category, row.method
        members = [s for s in sets if s.method == method and s.target.category == category]
        metrics = row.metrics.metrics | pooled_set_metrics(evaluator, members)
        ordered = {name: metrics[name] for name in row.metrics.metrics if name in metrics}
        ordered |= {name: metrics[name] for name in SET_METRICS if name not in ordered}
        summary.append(replace(row, metrics=replace(row.metrics, metrics=ordered)))
    return summary


def check_creative(config: CreativeConfig, model: ModelChoice) -> str:
    """Refuse what would fail late (an unknown method or baseline, a model imagine cannot steer, a judge that cannot
    judge a category) before anything loads; return the judge's name (None in the config: the backend's oracle)."""
    backend, _ = resolve_model(model.model, model.backend)
    judge = config.judge or backend.default_oracle
    for method in config.methods:
        if method not in METHODS:
            raise UsageError(f"Unknown method {method!r} for --protocol creative; known: {', '.join(METHODS)}.")
    for name in config.baselines:
        load_baseline(name)
    if "imagine" in config.methods:
        resolve_family(model.model, model.backend)
    check_judge(judge, config.categories, None)
    return judge


def _label(run: ProtocolRun, folder: Path) -> str:
    return f"render {folder.relative_to(run.out)}"


class CreativeProtocol:
    """`evaluate --protocol creative`: what the runner needs of it."""

    name = "creative"
    title = "Creative generation"

    @staticmethod
    def build(quick: bool = False, **changes: Any) -> CreativeConfig:
        return creative_protocol(quick, **changes)

    @staticmethod
    def check(config: CreativeConfig, model: ModelChoice) -> str:
        return check_creative(config, model)

    @staticmethod
    def jobs(config: CreativeConfig, model: ModelChoice) -> tuple[Job, ...]:
        return training_jobs(config, model)

    @staticmethod
    def image_sets(run: ProtocolRun) -> list[ImageSet]:
        config = run.config
        return [
            s for category in config.categories for method in config.methods for s in METHODS[method](run, category)
        ]

    @staticmethod
    def summarize(rows: list[EvaluationRow], sets: list[ImageSet], clip: ClipEmbedder) -> list[EvaluationRow]:
        return creative_summary(rows, sets, Evaluator(clip))

    @staticmethod
    def recorded(config: CreativeConfig, clip_name: str, judge: Judge | None) -> dict[str, Any]:
        return {
            "protocol": "creative",
            CLIP_FIELD: clip_name,
            "judge": judge.record() if judge else None,
            "config": asdict(config),
        }

    @staticmethod
    def chart_title(clip_name: str, judge: Judge | None) -> str:
        return f"Creative generation ({clip_name}, judge {judge.name if judge else None})"


CREATIVE = CreativeProtocol()
