"""`evaluate` as library calls: score sets of images with one CLIP and write the results (JSON, CSV, chart)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    prompt_for,
)
from conceptlab.engine.io.images import load_images
from conceptlab.engine.models.backend import DecoderStack
from conceptlab.engine.models.cache import ModelCache
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice
from conceptlab.engine.prior.tokens import concept_token
from conceptlab.engine.rendering.render import RenderSettings, render_prompts
from conceptlab.engine.training.evolve import recorded_parent_folders

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


@dataclass(frozen=True)
class EvaluationRow:
    method: str
    metrics: ConceptMetrics
    sha256: str | None = None

    def as_json(self) -> dict[str, Any]:
        identity = {"sha256": self.sha256} if self.sha256 else {}
        return {"method": self.method, **identity, **self.metrics.as_json()}


def evaluate_image_sets(
    clip: ClipEmbedder, sets: Sequence[ImageSet], on_row: Callable[[EvaluationRow], None] | None = None
) -> list[EvaluationRow]:
    evaluator = Evaluator(clip)
    rows = []
    for image_set in sets:
        metrics = evaluator.evaluate(image_set.name, image_set.images, image_set.target)
        row = EvaluationRow(image_set.method, metrics, image_set.sha256)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


def results_json(rows: Sequence[EvaluationRow], clip_name: str) -> dict[str, Any]:
    return {"clip": clip_name, "rows": [row.as_json() for row in rows]}


def results_csv(rows: Sequence[EvaluationRow]) -> str:
    """One line per row; for each metric its mean, std and n (empty where a row has no such metric)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["name", "method", "category", "negatives"]
    header += [f"{metric}_{field}" for metric in METRIC_NAMES for field in ("mean", "std", "n")]
    writer.writerow(header)
    for row in rows:
        line = [row.metrics.name, row.method, row.metrics.category, ";".join(row.metrics.negatives)]
        for metric in METRIC_NAMES:
            summary = row.metrics.metrics.get(metric)
            line += [f"{summary.mean:.6f}", f"{summary.std:.6f}", summary.n] if summary and summary.n else ["", "", ""]
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


def concept_image_set(concept: Concept, images: Sequence[Any], target: EvaluationTarget) -> ImageSet:
    return ImageSet(concept.token, "conceptlab", images, target, concept.sha256)


def baseline_image_set(baseline: str, images: Sequence[Any], target: EvaluationTarget) -> ImageSet:
    return ImageSet(f"{baseline} {','.join(target.negatives)}", baseline, images, target)


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
