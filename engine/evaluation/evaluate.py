"""`evaluate` as library calls: score sets of images with one CLIP and write the results (JSON, CSV, chart)."""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conceptlab.engine.adaptive.vocabulary import known_members, read_vocabulary
from conceptlab.engine.concept.file import Concept, check_concept_fits
from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.baselines import Baseline, BaselineRequest
from conceptlab.engine.evaluation.metrics import (
    METRIC_NAMES,
    ClipEmbedder,
    ConceptMetrics,
    EvaluationTarget,
    Evaluator,
    RowJudge,
    prompt_for,
)
from conceptlab.engine.evaluation.timing_record import TIMING_FILE, read_timing
from conceptlab.engine.io.atomic import write_json
from conceptlab.engine.io.images import load_images
from conceptlab.engine.models.backend import DecoderStack
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice
from conceptlab.engine.models.model_cache import ModelCache
from conceptlab.engine.prior.tokens import concept_token
from conceptlab.engine.rendering.render import RenderSettings, render_prompts
from conceptlab.engine.training.evolve import recorded_parent_folders

Costs = Mapping[str, Sequence[float]]
"""Metric name ("render-seconds", "train-seconds") -> seconds measured while making a row's images."""
Parents = dict[str, tuple[float, Sequence[Any]]]
"""Parent label -> (weight, its images): what a row's parent similarity is measured against."""


@dataclass(frozen=True)
class ImageSet:
    """Images to score as one row: a concept's, a baseline's or a folder's."""

    name: str
    method: str
    """What made the images (conceptlab, kandinsky-neg, sd-neg, a folder): the chart's bar groups."""
    images: Sequence[Any]
    target: EvaluationTarget
    sha256: str | None = None
    """The concept's, for a concept's row: what names it exactly (tokens repeat across seeds)."""
    costs: Costs = field(default_factory=dict)
    """Seconds it took, where measured: "render-seconds" per image, "train-seconds" per concept (one per run)."""


@dataclass(frozen=True)
class EvaluationRow:
    method: str
    metrics: ConceptMetrics
    sha256: str | None = None

    def as_json(self) -> dict[str, Any]:
        identity = {"sha256": self.sha256} if self.sha256 else {}
        return {"method": self.method, **identity, **self.metrics.as_json()}


def evaluate_image_sets(
    clip: ClipEmbedder,
    sets: Sequence[ImageSet],
    on_row: Callable[[EvaluationRow], None] | None = None,
    judge: RowJudge | None = None,
) -> list[EvaluationRow]:
    evaluator = Evaluator(clip, judge)
    rows = []
    for image_set in sets:
        metrics = evaluator.evaluate(image_set.name, image_set.images, image_set.target, image_set.costs)
        row = EvaluationRow(image_set.method, metrics, image_set.sha256)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


CLIP_FIELD = "clip"
"""The results' key naming the CLIP that scored them (a field of metrics.json, not the evaluator of that name)."""


def results_json(
    rows: Sequence[EvaluationRow], clip_name: str, judge: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The rows with the evaluating CLIP's name and, when one answered, the judge and its questions."""
    return {CLIP_FIELD: clip_name, **({"judge": dict(judge)} if judge else {}), "rows": [row.as_json() for row in rows]}


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6f}"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP, CSV injection)."""


def inert_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a leading `'` (OWASP's advice), and
    a carriage return (which the writer would not quote) is written as `\\r`. Only text goes through here; the
    numbers the table computes are written as numbers."""
    return (f"'{text}" if text.startswith(FORMULA_STARTS) else text).replace("\r", "\\r")


def results_csv(rows: Sequence[EvaluationRow]) -> str:
    """One line per row; for each metric its mean, std and n (empty where a row has no such metric, and the std of
    a set-level metric such as vendi)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["name", "method", "category", "negatives"]
    header += [f"{metric}_{field}" for metric in METRIC_NAMES for field in ("mean", "std", "n")]
    writer.writerow(header)
    for row in rows:
        text = [row.metrics.name, row.method, row.metrics.category, ";".join(row.metrics.negatives)]
        line: list[str | int] = [inert_cell(cell) for cell in text]
        for metric in METRIC_NAMES:
            summary = row.metrics.metrics.get(metric)
            line += [_number(summary.mean), _number(summary.std), summary.n] if summary and summary.n else ["", "", ""]
        writer.writerow(line)
    return buffer.getvalue()


def concept_negatives(metadata: dict[str, Any]) -> tuple[str, ...]:
    """The given and adaptive negatives a concept records (`[{word, step}]`), in the order they were added."""
    return tuple(entry["word"] for entry in metadata.get("negatives") or [] if isinstance(entry, dict))


def target_for(
    category: str | None,
    negatives: tuple[str, ...],
    vocabulary: tuple[str, ...],
    source: str,
) -> EvaluationTarget:
    """A row's target; `source` names where the category should have come from, for the error."""
    if not category or not category.strip():
        raise UsageError(f"{source} has no category to measure against; give --category, e.g. --category pet.")
    return EvaluationTarget(category.strip(), negatives, vocabulary)


def category_target(
    category: str | None, negatives: tuple[str, ...], vocabulary_file: Path | str | None, source: str
) -> EvaluationTarget:
    """A row's target with its novelty vocabulary: the file's words, else the category's built-in members."""
    vocabulary = read_vocabulary(Path(vocabulary_file)) if vocabulary_file else known_members(category or "")
    return target_for(category, negatives, vocabulary, source)


def concept_target(
    concept: Concept,
    category: str | None,
    negatives: tuple[str, ...],
    vocabulary_file: Path | str | None,
    source: str,
    parents: Parents | None = None,
) -> EvaluationTarget:
    """A concept's target: the given category and negatives, else those the concept records."""
    metadata = concept.metadata
    chosen = category or metadata.get("category")
    target = category_target(chosen, negatives or concept_negatives(metadata), vocabulary_file, source)
    return with_parents(target, parents or {})


def with_parents(target: EvaluationTarget, parents: Parents) -> EvaluationTarget:
    return EvaluationTarget(target.category, target.negatives, target.vocabulary, parents) if parents else target


def recorded_parents(metadata: dict[str, Any]) -> Parents | None:
    """The images of a concept's recorded parents where `evolve` left them; None when this machine lacks any."""
    folders = recorded_parent_folders(metadata)
    if folders is None:
        return None
    return {label: (weight, load_images(folder)) for label, (weight, folder) in folders.items()}


def concept_image_set(
    concept: Concept, images: Sequence[Any], target: EvaluationTarget, costs: Costs | None = None
) -> ImageSet:
    return ImageSet(concept.token, "conceptlab", images, target, concept.sha256, costs or {})


def baseline_image_set(
    baseline: str, images: Sequence[Any], target: EvaluationTarget, costs: Costs | None = None
) -> ImageSet:
    return ImageSet(f"{baseline} {','.join(target.negatives)}", baseline, images, target, costs=costs or {})


def baseline_images(
    baseline: Baseline,
    target: EvaluationTarget,
    count: int,
    seed: int,
    choice: ModelChoice,
    cache: ModelCache,
    *,
    model: str | None = None,
    size: int | None = None,
    steps: int | None = None,
    prior_steps: int | None = None,
    on_image: Callable[[int], None] | None = None,
) -> list[Any]:
    """`count` images of `target` by `baseline`; one on the run's own model (`uses_backend`) reuses its models."""
    same_model = baseline.uses_backend
    loaded = cache.prior(choice) if same_model else None
    request = BaselineRequest(
        target.category,
        target.negatives,
        count,
        seed,
        choice,
        None if same_model else model,
        size,
        steps,
        prior_steps,
        on_image=on_image,
        loaded=loaded,
        decoder=cache.decoder(loaded, choice.decoder, choice.decoder_revision) if loaded else None,
    )
    return baseline.render(request)


def recorded_costs(folder: Path) -> dict[str, list[float]]:
    """The seconds a folder of renders records in `timing.json` (none for a folder without one): `read_timing`."""
    return read_timing(folder)


def record_costs(folder: Path, costs: Mapping[str, Sequence[float]]) -> None:
    write_json(folder / TIMING_FILE, {key: list(values) for key, values in costs.items()})


class RenderClock:
    """Wraps an `on_image` callback and times the whole render: `seconds_per_image` once it is done."""

    def __init__(self, on_image: Callable[[int], None] | None = None):
        self.on_image, self.started, self.images, self.last = on_image, time.perf_counter(), 0, 0.0

    def __call__(self, index: int) -> None:
        self.images, self.last = index + 1, time.perf_counter()
        if self.on_image:
            self.on_image(index)

    @property
    def seconds_per_image(self) -> list[float]:
        """One value, the wall time per image (the prior runs for all images before the first is decoded, so
        the time between images would not say what one image costs)."""
        return [(self.last - self.started) / self.images] if self.images else []


def render_concept_images(
    concept: Concept,
    loaded: LoadedPrior,
    decoder: DecoderStack,
    count: int,
    seed: int,
    settings: RenderSettings,
    on_image: Callable[[int], None] | None = None,
) -> list[Any]:
    """`count` images of "A photo of a S*" (seeds `seed`, `seed + 1`, ...), the paper's images of a concept.

    The concept enters the tokenizer under a name of its own (its sha256), so several concepts that share a token
    (one per training seed) are rendered from one loaded prior.
    """
    check_concept_fits(concept, loaded.info, source=f"concept {concept.token}")
    token = concept_token(loaded.stack.tokenizer, loaded.stack.text_encoder, concept.sha256, concept.vector)
    seeds = list(range(seed, seed + count))
    return render_prompts(loaded.stack, decoder, [prompt_for(token)] * count, seeds, settings, on_image=on_image)
