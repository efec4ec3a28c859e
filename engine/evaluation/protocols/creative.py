"""The creative-generation protocol of ConceptLab's follow-up (arXiv 2510.10715), runnable offline by anyone.

Four categories; per category and method the same number of images (100; `--quick`: 8, one category), scored on
one table: CLIP similarity, novelty, typicality, diversity, Vendi, total variance, the judge's validity and
vqa-novelty, and the seconds each image and concept cost. Every finished piece is kept on disk, so a rerun skips it.

Methods are one function each in `METHODS` (name -> function of the run and a category, returning the method's
rows for that category); adding a method is one function and one entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from conceptlab.engine.adaptive.vocabulary import known_members
from conceptlab.engine.batch.plan import Job, Plan
from conceptlab.engine.batch.runner import run_plan
from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.errors import ConceptLabError, UsageError
from conceptlab.engine.evaluation.baselines import load_baseline
from conceptlab.engine.evaluation.chart import save_metrics_chart
from conceptlab.engine.evaluation.evaluate import (
    EvaluationRow,
    ImageSet,
    RenderClock,
    baseline_images,
    evaluate_image_sets,
    record_costs,
    recorded_costs,
    render_concept_images,
    results_csv,
    results_json,
)
from conceptlab.engine.evaluation.judge import Judge, check_judge, load_judge
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
from conceptlab.engine.evaluation.protocols.paper import already_rendered, slug, summarize, training_events
from conceptlab.engine.evaluation.request import TaskProgress, no_progress
from conceptlab.engine.imagine import ImagineProgress, ImagineRequest, imagine
from conceptlab.engine.imagine.models import resolve_family
from conceptlab.engine.io.atomic import write_json, write_text
from conceptlab.engine.io.images import load_images, save_renders
from conceptlab.engine.models.cache import ModelCache
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.models.plugins import resolve_model
from conceptlab.engine.rendering.render import render_prompts, render_settings

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
    baselines: tuple[str, ...] = ("kandinsky-neg", "sd-neg")
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


@dataclass(frozen=True)
class CreativeResult:
    rows: list[EvaluationRow]
    summary: list[EvaluationRow]
    trained: int
    reused: int
    files: dict[str, Path]
    judge: dict[str, Any]


def concept_name(category: str, seed: int) -> str:
    return f"{slug(category)}-seed{seed}"


def training_plan(config: CreativeConfig, model: ModelChoice, out: Path) -> Plan:
    """One adaptive `create` job (no given negatives: the oracle names them) per category and seed."""
    options = {"model": model.model, "device": model.device, "dtype": model.dtype}
    options |= {key: value for key, value in (("backend", model.backend), ("revision", model.revision)) if value}
    options |= {"steps": config.train_steps} if config.train_steps else {}
    jobs = tuple(
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
    return Plan(jobs, out, out, {job.name: () for job in jobs})


class CreativeRun:
    """One protocol run in `out`: models loaded once, every render skipped when it is already there."""

    def __init__(self, config: CreativeConfig, model: ModelChoice, out: Path, on_task: TaskProgress, force: bool):
        self.config, self.model, self.out, self.force, self.on_task = config, model, out, force, on_task
        self.backend, _ = resolve_model(model.model, model.backend)
        self.models = ModelCache()
        self.training: dict[str, Any] = {}

    def target(self, category: str) -> EvaluationTarget:
        return EvaluationTarget(category, self.config.negatives[category], known_members(category))

    def settings(self):
        config = self.config
        return render_settings(
            self.backend, size=config.size, steps=config.render_steps, prior_steps=config.prior_steps
        )

    def model_source(self) -> dict[str, Any]:
        return {"model": self.model.model, "backend": self.backend.name, "revision": self.model.revision}

    def train(self, batch_options: dict[str, Any]) -> tuple[int, int]:
        """Train (or reuse) every concept through the batch runner; (trained now, reused)."""
        plan = training_plan(self.config, self.model, self.out)
        result = run_plan(
            plan, self.model.model, on_event=training_events(self.on_task), force=self.force, **batch_options
        )
        if result.failed:
            first = result.records[result.failed[0]]
            raise ConceptLabError(
                f"{len(result.failed)} concept(s) did not train ({first.name}: {first.error}); "
                "the concepts that trained are kept."
            )
        self.training = result.records
        trained = sum(record.status == "done" for record in result.records.values())
        return trained, len(result.records) - trained

    def loaded(self) -> tuple[Any, Any]:
        """The backend's prior and decoder (loaded once, before any clock starts: loading is not rendering)."""
        loaded = self.models.prior(self.model)
        return loaded, self.models.decoder(loaded)

    def images(
        self, folder: Path, source: dict[str, Any], count: int, make: Callable[[RenderClock], list], own_model: bool
    ) -> tuple:
        """The images `source` describes in `folder` and their render seconds: kept ones, or rendered by `make`
        (`own_model`: it renders with a model of its own, loaded inside `make`, not the backend's)."""
        if not already_rendered(folder, source, self.force):
            if not own_model:
                self.loaded()
            clock = RenderClock(self.on_task(f"render {folder.relative_to(self.out)}", count))
            images = make(clock)
            record_costs(folder, {"render-seconds": clock.seconds_per_image})
            save_renders(images, folder, source)
        return load_images(folder), recorded_costs(folder)


def concept_rows(run: CreativeRun, category: str) -> list[ImageSet]:
    """`concept`: our `create` with adaptive negatives; one concept per `images_per_concept` images, one seed each."""
    config, rows = run.config, []
    for seed in config.concept_seeds:
        name = concept_name(category, seed)
        record = run.training[name]
        concept = load_concept(run.out / (record.concept or ""))
        count = min(config.images_per_concept, config.images - seed * config.images_per_concept)
        settings = run.settings()
        source = {"concept": concept.sha256, "count": count, "first_seed": config.image_seed}
        source |= {"render": asdict(settings), **run.model_source()}

        def make(clock: RenderClock, concept=concept, count=count, settings=settings) -> list:
            loaded, decoder = run.loaded()
            return render_concept_images(concept, loaded, decoder, count, config.image_seed, settings, clock)

        images, costs = run.images(run.out / "images" / "concept" / name, source, count, make, own_model=False)
        costs = {**costs, "train-seconds": [record.seconds]}
        rows.append(ImageSet(name, "concept", images, run.target(category), concept.sha256, costs))
    return rows


def plain_rows(run: CreativeRun, category: str) -> list[ImageSet]:
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
    images, costs = run.images(folder, source, config.images, make, own_model=False)
    return [ImageSet(f"plain {category}", "plain", images, run.target(category), costs=costs)]


def baseline_rows(run: CreativeRun, category: str, name: str) -> list[ImageSet]:
    """A `conceptlab.baselines` entry (kandinsky-neg, sd-neg) with the category's two typical members as negatives."""
    config, baseline = run.config, load_baseline(name)
    target = run.target(category)
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
    images, costs = run.images(folder, source, config.images, make, own_model=not uses_backend)
    return [ImageSet(f"{name} {category}", name, images, target, costs=costs)]


def imagine_rows(run: CreativeRun, category: str) -> list[ImageSet]:
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

    result = imagine(request, progress, kandinsky=run.loaded())
    images = load_images(result.out, result.paths)
    # as imagine.json records them (rounded), so a rerun that reads them back reports the same costs
    seconds = [round(image.seconds_denoising, 4) + round(image.seconds_asking, 4) for image in result.images]
    costs = {"render-seconds": seconds}
    return [ImageSet(f"imagine {category}", "imagine", images, run.target(category), costs=costs)]


METHODS: dict[str, Callable[[CreativeRun, str], list[ImageSet]]] = {
    "concept": concept_rows,
    "imagine": imagine_rows,
    "plain": plain_rows,
    "kandinsky-neg": lambda run, category: baseline_rows(run, category, "kandinsky-neg"),
    "sd-neg": lambda run, category: baseline_rows(run, category, "sd-neg"),
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


def run_creative(
    config: CreativeConfig,
    model: ModelChoice,
    clip: ClipEmbedder,
    out: Path,
    on_task: TaskProgress | None = None,
    batch_options: dict[str, Any] | None = None,
    force: bool = False,
) -> CreativeResult:
    """Run (or resume) the protocol in `out`; write `rows.csv`, `summary.csv`, `metrics.json` and `summary.png`.

    The concepts train as a batch plan (`batch_options` go to `run_plan`: `ray`, `address`, `max_parallel`).
    """
    run = CreativeRun(config, model, Path(out), on_task or no_progress, force)
    judge_name = check_creative(config, model)
    trained, reused = run.train(batch_options or {})
    sets = [s for category in config.categories for method in config.methods for s in METHODS[method](run, category)]
    judge = load_judge(judge_name, run.models.prior(model), None)
    rows = evaluate_image_sets(clip, sets, judge=judge)
    summary = creative_summary(rows, sets, Evaluator(clip))
    files = write_results(run.out, rows, summary, clip.name, judge, config)
    return CreativeResult(rows, summary, trained, reused, files, judge.record())


def write_results(
    out: Path,
    rows: list[EvaluationRow],
    summary: list[EvaluationRow],
    clip_name: str,
    judge: Judge,
    config: CreativeConfig,
) -> dict[str, Path]:
    files = {name: out / name for name in ("rows.csv", "summary.csv", "metrics.json", "summary.png")}
    write_text(files["rows.csv"], results_csv(rows))
    write_text(files["summary.csv"], results_csv(summary))
    recorded = {"protocol": "creative", "clip": clip_name, "judge": judge.record(), "config": asdict(config)}
    recorded |= {"summary": results_json(summary, clip_name)["rows"], "rows": results_json(rows, clip_name)["rows"]}
    write_json(files["metrics.json"], recorded)
    save_metrics_chart(summary, files["summary.png"], f"Creative generation ({clip_name}, judge {judge.name})")
    return files
