"""The paper's evaluation protocol in one call: train, render, run the baselines, score, write the summary.

Five categories, three pairs of negatives each, five training seeds: 75 concepts of 32 images each, and each
baseline with 160 images per pair. Every finished piece is kept on disk, so a rerun skips it (resumable).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conceptlab.engine.batch.plan import Job, Plan
from conceptlab.engine.batch.runner import BatchEvent, run_plan
from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.errors import ConceptLabError, UsageError
from conceptlab.engine.evaluation.baselines import load_baseline
from conceptlab.engine.evaluation.chart import save_metrics_chart
from conceptlab.engine.evaluation.evaluate import (
    EvaluationRow,
    ImageSet,
    RenderClock,
    baseline_image_set,
    baseline_images,
    category_target,
    concept_image_set,
    evaluate_image_sets,
    record_costs,
    recorded_costs,
    render_concept_images,
    results_csv,
    results_json,
)
from conceptlab.engine.evaluation.metrics import (
    METRIC_NAMES,
    ClipEmbedder,
    ConceptMetrics,
    EvaluationTarget,
    pool_metric,
)
from conceptlab.engine.evaluation.request import TaskProgress, no_progress
from conceptlab.engine.io.atomic import write_json, write_text
from conceptlab.engine.io.images import load_images, render_source, save_renders
from conceptlab.engine.models.cache import ModelCache
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.models.plugins import resolve_model
from conceptlab.engine.rendering.render import render_settings

PAPER_NEGATIVE_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "pet": (("cat", "dog"), ("hamster", "rabbit"), ("parrot", "goldfish")),
    "plant": (("cactus", "fern"), ("tree", "flower"), ("rose", "moss")),
    "fruit": (("apple", "banana"), ("orange", "mango"), ("grape", "pear")),
    "furniture": (("chair", "table"), ("sofa", "bed"), ("desk", "lamp")),
    "musical instrument": (("guitar", "piano"), ("violin", "drum"), ("flute", "trumpet")),
}
"""Our three pairs of negatives per category (the paper does not list its own)."""


@dataclass(frozen=True)
class ProtocolConfig:
    pairs: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=lambda: dict(PAPER_NEGATIVE_PAIRS))
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    images_per_concept: int = 32
    images_per_pair: int = 160
    """Images per baseline and pair of negatives."""
    train_steps: int | None = None
    """None: `create`'s default (2,500, the official code's)."""
    baselines: tuple[str, ...] = ("kandinsky-neg", "sd-neg")
    sd_model: str | None = None
    size: int | None = None
    render_steps: int | None = None
    prior_steps: int | None = None
    """Prior sampling steps when rendering (None: the render default, 25)."""
    image_seed: int = 0
    """Image i of every concept and baseline is rendered from seed `image_seed + i`."""


def paper_protocol(quick: bool = False, **changes) -> ProtocolConfig:
    """The paper's protocol; `quick`: one pair (pet: cat, dog), one seed, 8 images, few steps (a smoke run)."""
    if not quick:
        return ProtocolConfig(**changes)
    pairs = {"pet": PAPER_NEGATIVE_PAIRS["pet"][:1]}
    quick_values = dict(pairs=pairs, seeds=(0,), images_per_concept=8, images_per_pair=8, train_steps=10)
    return ProtocolConfig(**{**quick_values, "render_steps": 2, "prior_steps": 5, **changes})


@dataclass(frozen=True)
class ProtocolResult:
    rows: list[EvaluationRow]
    summary: list[EvaluationRow]
    trained: int
    reused: int
    files: dict[str, Path]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def already_rendered(folder: Path, source: dict[str, Any], force: bool) -> bool:
    """Whether `folder` already holds the renders that `source` describes.

    A folder without its record was interrupted before the last image and is rendered again. Renders of
    something else (a retrained concept, other settings) are the user's earlier results: kept, and refused,
    unless `force`, which clears them.
    """
    recorded = render_source(folder)
    if recorded is None:
        return False
    if recorded == source:
        return True
    if not force:
        raise UsageError(
            f"{folder} holds renders of another concept or other settings; add --force to render them again."
        )
    shutil.rmtree(folder)
    return False


def _target(category: str, pair: tuple[str, ...]) -> EvaluationTarget:
    return category_target(category, tuple(pair), None, "the protocol")


def concept_name(category: str, pair: tuple[str, ...], seed: int) -> str:
    return f"{slug(category)}-{'-'.join(map(slug, pair))}-seed{seed}"


def training_plan(config: ProtocolConfig, model: ModelChoice, out: Path) -> Plan:
    """One `create` job per category, pair of negatives and seed: the batch runner trains them, here or on Ray."""
    model_options = {"model": model.model, "device": model.device, "dtype": model.dtype}
    named = {"backend": model.backend, "revision": model.revision}
    named |= {"decoder": model.decoder, "decoder_revision": model.decoder_revision}
    model_options |= {key: value for key, value in named.items() if value}
    steps = {"steps": config.train_steps} if config.train_steps else {}
    jobs = tuple(
        Job(
            name,
            "create",
            {"category": category, "neg": list(pair), "seed": seed, "token": f"<{name}>", "images": False}
            | {"adaptive": False, **steps, **model_options},
            out=f"concepts/{name}",
        )
        for category, pairs in config.pairs.items()
        for pair in pairs
        for seed in config.seeds
        for name in [concept_name(category, pair, seed)]
    )
    return Plan(jobs, out, out, {job.name: () for job in jobs})


def training_events(on_task: TaskProgress) -> Callable[[BatchEvent], None]:
    """The batch runner's events as the protocol's task bars: one bar per concept in training."""
    bars: dict[str, Callable[[int], None]] = {}

    def on_event(event: BatchEvent) -> None:
        if event.what == "progress":
            if event.job not in bars:
                bars[event.job] = on_task(f"train {event.job}", event.total)
            bars[event.job](event.done - 1)

    return on_event


class ProtocolRun:
    """One protocol run in `out`: models loaded once, every step skipped when its output is already there."""

    def __init__(
        self, config: ProtocolConfig, model: ModelChoice, out: Path, on_task: TaskProgress | None, force: bool
    ):
        self.config, self.model, self.out, self.force = config, model, out, force
        self.backend, _ = resolve_model(model.model, model.backend)
        self.on_task = on_task or no_progress
        self.models = ModelCache()
        self.trained = self.reused = 0
        self.concepts: dict[str, Path] = {}
        self.train_seconds: dict[str, float] = {}

    def train(self, batch_options: dict[str, Any]) -> None:
        """Train every concept of the protocol (reusing those trained before) through the batch runner."""
        plan = training_plan(self.config, self.model, self.out)
        events = training_events(self.on_task)
        result = run_plan(plan, self.model.model, on_event=events, force=self.force, **batch_options)
        if result.failed:
            first = result.records[result.failed[0]]
            raise ConceptLabError(
                f"{len(result.failed)} concept(s) did not train ({first.name}: {first.error}); "
                "the concepts that trained are kept."
            )
        self.trained = sum(record.status == "done" for record in result.records.values())
        self.reused = len(result.records) - self.trained
        self.concepts = {name: self.out / (record.concept or "") for name, record in result.records.items()}
        self.train_seconds = {name: record.seconds for name, record in result.records.items()}

    def settings(self):
        config = self.config
        return render_settings(
            self.backend, size=config.size, steps=config.render_steps, prior_steps=config.prior_steps
        )

    def _model_source(self) -> dict[str, Any]:
        source = {"model": self.model.model, "backend": self.backend.name, "revision": self.model.revision}
        named = {"decoder": self.model.decoder, "decoder_revision": self.model.decoder_revision}
        return source | {key: value for key, value in named.items() if value}

    def concept_set(self, category: str, pair: tuple[str, ...], seed: int) -> ImageSet:
        name = concept_name(category, pair, seed)
        images_dir = self.out / "images" / name
        count = self.config.images_per_concept
        concept = load_concept(self.concepts[name])
        settings = self.settings()
        source = {"concept": concept.sha256, "count": count, "first_seed": self.config.image_seed}
        source |= {"render": asdict(settings), **self._model_source()}
        if not already_rendered(images_dir, source, self.force):
            loaded = self.models.prior(self.model)
            decoder = self.models.decoder(loaded, self.model.decoder, self.model.decoder_revision)
            clock = RenderClock(self.on_task(f"render {name}", count))
            images = render_concept_images(concept, loaded, decoder, count, self.config.image_seed, settings, clock)
            record_costs(images_dir, {"render-seconds": clock.seconds_per_image})
            save_renders(images, images_dir, source)
        costs = {**recorded_costs(images_dir), "train-seconds": [self.train_seconds[name]]}
        return concept_image_set(concept, load_images(images_dir), _target(category, pair), costs)

    def baseline_set(self, baseline_name: str, category: str, pair: tuple[str, ...]) -> ImageSet:
        baseline = load_baseline(baseline_name)
        name = f"{slug(category)}-{'-'.join(map(slug, pair))}"
        folder = self.out / "baselines" / baseline_name / name
        count = self.config.images_per_pair
        uses_backend = baseline.uses_backend
        config = self.config
        source = {"baseline": baseline_name, "category": category, "negatives": list(pair), "count": count}
        source |= {"first_seed": config.image_seed, "render_steps": config.render_steps}
        source |= {"prior_steps": config.prior_steps, "size": config.size if uses_backend else None}
        source |= self._model_source() if uses_backend else {"model": config.sd_model}
        if not already_rendered(folder, source, self.force):
            clock = RenderClock(self.on_task(f"{baseline_name} {name}", count))
            images = baseline_images(
                baseline,
                _target(category, pair),
                count,
                config.image_seed,
                self.model,
                self.models,
                model=config.sd_model,
                size=config.size if uses_backend else None,
                steps=config.render_steps,
                prior_steps=config.prior_steps,
                on_image=clock,
            )
            record_costs(folder, {"render-seconds": clock.seconds_per_image})
            save_renders(images, folder, source)
        costs = recorded_costs(folder)
        return baseline_image_set(baseline_name, load_images(folder), _target(category, pair), costs)


def summarize(rows: list[EvaluationRow]) -> list[EvaluationRow]:
    """One row per (category, method): every image of its concepts or pairs pooled (the paper's table)."""
    groups: dict[tuple[str, str], list[EvaluationRow]] = {}
    for row in rows:
        groups.setdefault((row.metrics.category, row.method), []).append(row)
    summary = []
    for (category, method), members in groups.items():
        metrics = {
            metric: pool_metric(metric, [m.metrics.metrics[metric] for m in members if metric in m.metrics.metrics])
            for metric in METRIC_NAMES
            if any(metric in m.metrics.metrics for m in members)
        }
        negatives = tuple(dict.fromkeys(word for m in members for word in m.metrics.negatives))
        summary.append(EvaluationRow(method, ConceptMetrics(method, category, negatives, metrics, {})))
    return summary


def run_protocol(
    config: ProtocolConfig,
    model: ModelChoice,
    clip: ClipEmbedder,
    out: Path,
    on_task: TaskProgress | None = None,
    batch_options: dict[str, Any] | None = None,
    force: bool = False,
) -> ProtocolResult:
    """Run (or resume) the protocol in `out`; write `rows.csv`, `summary.csv`, `metrics.json` and `summary.png`.

    The concepts train as a batch plan (`batch_options` go to `run_plan`: `ray`, `address`, `max_parallel`).
    What is already there is reused; what was made with other settings is refused unless `force` (then redone).
    """
    for name in config.baselines:
        load_baseline(name)  # an unknown baseline fails before any training
    run = ProtocolRun(config, model, Path(out), on_task, force)
    run.train(batch_options or {})
    sets = [
        run.concept_set(category, pair, seed)
        for category, pairs in config.pairs.items()
        for pair in pairs
        for seed in config.seeds
    ]
    sets += [
        run.baseline_set(baseline, category, pair)
        for baseline in config.baselines
        for category, pairs in config.pairs.items()
        for pair in pairs
    ]
    rows = evaluate_image_sets(clip, sets)
    summary = summarize(rows)
    files = {name: run.out / name for name in ("rows.csv", "summary.csv", "metrics.json", "summary.png")}
    write_text(files["rows.csv"], results_csv(rows))
    write_text(files["summary.csv"], results_csv(summary))
    write_json(
        files["metrics.json"],
        {
            "clip": clip.name,
            "summary": results_json(summary, clip.name)["rows"],
            "rows": results_json(rows, clip.name)["rows"],
        },
    )
    save_metrics_chart(summary, files["summary.png"], f"ConceptLab protocol ({clip.name})")
    return ProtocolResult(rows, summary, run.trained, run.reused, files)
