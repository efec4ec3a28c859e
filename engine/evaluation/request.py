"""`conceptlab evaluate` in one call: a frozen request in, scored rows (and notes for the user) out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conceptlab.engine.concept.file import Concept, load_concept
from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.baselines import load_baseline
from conceptlab.engine.evaluation.chart import save_metrics_chart
from conceptlab.engine.evaluation.evaluate import (
    EvaluationRow,
    ImageSet,
    Parents,
    RenderClock,
    baseline_image_set,
    baseline_images,
    category_target,
    concept_image_set,
    concept_target,
    evaluate_image_sets,
    recorded_costs,
    recorded_parents,
    render_concept_images,
    results_csv,
    with_parents,
)
from conceptlab.engine.evaluation.evaluators import evaluating_clip
from conceptlab.engine.evaluation.judge import check_judge, load_judge
from conceptlab.engine.evaluation.metrics import EvaluationTarget
from conceptlab.engine.io.atomic import refuse_existing, write_text
from conceptlab.engine.io.figures import figure_format
from conceptlab.engine.io.images import load_images, scored_image_files
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.models.model_cache import ModelCache
from conceptlab.engine.options import COMMAND_LINE_ONLY, JOB_ONLY, check_bounds, renamed
from conceptlab.engine.rendering.render import render_settings

TaskProgress = Callable[[str, int], Callable[[int], None]]
"""`on_task(description, total)` returns `on_item(index)`, called after each item of that task."""

PARENTS_NOT_HERE = (
    "parent similarity is left out: this machine has not rendered the parents' images "
    "(evolve caches them); give --parent-images DIR per parent to measure it."
)


def no_progress(_description: str, _total: int) -> Callable[[int], None]:
    return lambda _index: None


@dataclass(frozen=True)
class EvaluateRequest:
    """`conceptlab evaluate`: one field per option (plan keys derive from them, see `conceptlab.engine.options`)."""

    concepts: tuple[Path, ...] = ()
    images: tuple[Path, ...] = field(default=(), metadata=COMMAND_LINE_ONLY)
    """Folders to score instead of rendering."""
    category: str | None = None
    negatives: tuple[str, ...] = renamed("neg", default=())
    vocab: Path | None = None
    parent_images: tuple[Path, ...] = field(default=(), metadata=COMMAND_LINE_ONLY)
    parent_weights: tuple[float, ...] | None = field(default=None, metadata={**COMMAND_LINE_ONLY, "option": "weights"})
    baselines: tuple[str, ...] = field(default=(), metadata={**COMMAND_LINE_ONLY, "option": "baseline"})
    sd_model: str | None = field(default=None, metadata=COMMAND_LINE_ONLY)
    count: int = renamed("n", default=32)
    seed: int = 0
    size: int | None = None
    steps: int | None = field(default=None, metadata=JOB_ONLY)
    """Decoder steps; `JOB_ONLY`: in `[plan]`, `steps` would be the training's."""
    model: str | None = None
    """None: the model the first concept was trained against."""
    backend: str | None = None
    revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    decoder: str | None = None
    """None: the decoder the first concept records, else the backend's."""
    decoder_revision: str | None = None
    clip: str | None = None
    judge: str | None = None
    """A `conceptlab.oracles` entry that answers validity and vqa-novelty questions (None: those are left out)."""
    clip_revision: str | None = None
    csv: Path | None = field(default=None, metadata=COMMAND_LINE_ONLY)
    """Also write the table as CSV here."""
    plot: Path | None = field(default=None, metadata=COMMAND_LINE_ONLY)
    """Also write the figure here (.png, .svg or .pdf)."""
    force: bool = field(default=False, metadata=COMMAND_LINE_ONLY)
    """Write over an existing `csv` or `plot`."""

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.plot is not None:
            figure_format(self.plot)
        if self.count < 1:
            raise UsageError(f"-n must be at least 1 (got {self.count}).")
        if not self.concepts and not self.images and not self.baselines:
            raise UsageError("Nothing to evaluate; give concept files, --images DIR, --baseline or --protocol paper.")

    def model_choice(self, concepts: Sequence[Concept]) -> ModelChoice:
        model = (self.model, self.backend, self.device, self.dtype, self.revision)
        return ModelChoice.for_concepts(concepts, *model, self.decoder, self.decoder_revision)


@dataclass(frozen=True)
class EvaluateResult:
    rows: tuple[EvaluationRow, ...]
    clip: str
    """The evaluating CLIP's name."""
    notes: tuple[str, ...] = ()
    """What the user should know about the rows (a metric left out, and why)."""
    judge: dict[str, Any] | None = None
    """The judge and its questions, when one answered."""
    written: tuple[Path, ...] = ()
    """The `csv` and `plot` files written."""


def evaluate(
    request: EvaluateRequest, *, cache: ModelCache | None = None, on_task: TaskProgress | None = None
) -> EvaluateResult:
    """Score the request's concepts (rendered), folders and baselines with one CLIP.

    Every row's target is checked before anything renders; models load once, on first use.
    """
    for name in request.baselines:
        load_baseline(name)  # an unknown baseline fails before anything loads
    refuse_existing([request.csv, request.plot], request.force, "file")
    cache, on_task = cache or ModelCache(), on_task or no_progress
    concepts = [load_concept(path) for path in request.concepts]
    choice = request.model_choice(concepts)
    targets = _row_targets(request, concepts)
    parents, notes = _parents(request, concepts)
    targets = _with_parents(targets, parents)
    if request.judge:
        categories = [target.category for target in targets] or [request.category or ""]
        check_judge(request.judge, categories, request.vocab)
    if request.images:
        sets, skipped = _folder_sets(request, concepts, targets)
        notes += skipped
    else:
        sets = []
        for concept, target in zip(concepts, targets, strict=True):
            images, costs = _rendered(request, concept, choice, cache, on_task)
            sets.append(concept_image_set(concept, images, target, costs))
    baseline_targets = targets or [category_target(request.category, request.negatives, request.vocab, "--baseline")]
    sets += _baseline_sets(request, baseline_targets, choice, cache, on_task)
    clip = evaluating_clip(request.clip, choice, cache, request.clip_revision)
    judge = load_judge(request.judge, cache.prior(choice), request.vocab) if request.judge else None
    rows = evaluate_image_sets(clip, sets, judge=judge)
    written = write_tables(rows, request.csv, request.plot, f"CLIP metrics ({clip.name})")
    return EvaluateResult(tuple(rows), clip.name, notes, judge.record() if judge else None, written)


def write_tables(
    rows: Sequence[EvaluationRow], csv_path: Path | None, plot: Path | None, title: str
) -> tuple[Path, ...]:
    """The `--csv` table and the `--plot` chart, each where asked; the paths written."""
    if csv_path:
        write_text(csv_path, results_csv(rows))
    if plot:
        save_metrics_chart(rows, plot, title)
    return tuple(path for path in (csv_path, plot) if path)


def _row_targets(request: EvaluateRequest, concepts: list[Concept]) -> list[EvaluationTarget]:
    """One target per row: each concept's, or one shared by every --images folder against --category."""
    if request.images and concepts and (len(concepts) > 1 or len(request.images) > 1):
        raise UsageError("--images with a concept takes one concept and one folder; run evaluate once per concept.")
    if concepts:
        return [
            concept_target(concept, request.category, request.negatives, request.vocab, str(path))
            for path, concept in zip(request.concepts, concepts, strict=True)
        ]
    target = category_target(request.category, request.negatives, request.vocab, "--images")
    return [target for _ in request.images]


def _parents(request: EvaluateRequest, concepts: list[Concept]) -> tuple[Parents, tuple[str, ...]]:
    """Parent name -> (weight, images): weights from --weights, else the concept's recorded parents, else equal.

    Without --parent-images, an evolved concept's parents are found where `evolve` left their images.
    """
    recorded = concepts[0].metadata if len(concepts) == 1 else {}
    folders, weights = request.parent_images, request.parent_weights
    if not folders:
        if weights:
            raise UsageError("--weights is given without --parent-images; add one --parent-images DIR per parent.")
        found = recorded_parents(recorded)
        notes = (PARENTS_NOT_HERE,) if found is None and recorded.get("parents") else ()
        return found or {}, notes
    recorded_weights = [float(parent.get("weight", 0)) for parent in recorded.get("parents") or []]
    chosen = weights or (tuple(recorded_weights) if len(recorded_weights) == len(folders) else None)
    chosen = chosen or tuple(1 / len(folders) for _ in folders)
    if len(chosen) != len(folders):
        raise UsageError(f"--weights has {len(chosen)} values for {len(folders)} --parent-images; give one each.")
    pairs = zip(folders, chosen, strict=True)
    return {folder.name: (weight, load_images(folder, scored_image_files(folder)[0])) for folder, weight in pairs}, ()


def _with_parents(targets: list[EvaluationTarget], parents: Parents) -> list[EvaluationTarget]:
    if parents and len(targets) != 1:
        raise UsageError("--parent-images applies to one row; give one concept or one --images folder.")
    return [with_parents(target, parents) for target in targets]


def _folder_sets(
    request: EvaluateRequest, concepts: list[Concept], targets: list[EvaluationTarget]
) -> tuple[list[ImageSet], tuple[str, ...]]:
    """Rows scored on given images: one concept's target on one folder, or each folder against --category; and a
    note per folder whose grids, strips or plots were left out."""
    images, notes = {}, []
    for folder in request.images:
        files, skipped = scored_image_files(folder)
        images[folder] = load_images(folder, files)
        if skipped:
            notes.append(f"{folder}: skipped {skipped} grid/strip/plot file(s) the toolkit wrote; scored {len(files)}.")
    if concepts:
        folder = request.images[0]
        image_set = concept_image_set(concepts[0], images[folder], targets[0], recorded_costs(folder))
        return [image_set], tuple(notes)
    sets = [
        ImageSet(folder.name, "images", images[folder], target, costs=recorded_costs(folder))
        for folder, target in zip(request.images, targets, strict=True)
    ]
    return sets, tuple(notes)


def _rendered(
    request: EvaluateRequest, concept: Concept, choice: ModelChoice, cache: ModelCache, on_task: TaskProgress
) -> tuple[list[Any], dict[str, list[float]]]:
    """The concept's images and what they cost ("render-seconds", per image)."""
    loaded = cache.prior(choice)
    settings = render_settings(loaded.backend, size=request.size, steps=request.steps)
    decoder = cache.decoder(loaded, choice.decoder, choice.decoder_revision)
    clock = RenderClock(on_task(f"Rendering {concept.token}", request.count))
    images = render_concept_images(concept, loaded, decoder, request.count, request.seed, settings, clock)
    return images, {"render-seconds": clock.seconds_per_image}


def _baseline_sets(
    request: EvaluateRequest,
    targets: list[EvaluationTarget],
    choice: ModelChoice,
    cache: ModelCache,
    on_task: TaskProgress,
) -> list[ImageSet]:
    """One row per baseline and distinct (category, negatives) of the other rows."""
    distinct = list({(target.category, target.negatives): target for target in targets}.values())
    sets = []
    for baseline in [load_baseline(name) for name in request.baselines]:
        for target in distinct:
            on_image = RenderClock(on_task(f"{baseline.name}: {target.category}", request.count))
            images = baseline_images(
                baseline,
                target,
                request.count,
                request.seed,
                choice,
                cache,
                model=request.sd_model,
                size=request.size,
                steps=request.steps,
                on_image=on_image,
            )
            sets.append(
                baseline_image_set(baseline.name, images, target, {"render-seconds": on_image.seconds_per_image})
            )
    return sets
