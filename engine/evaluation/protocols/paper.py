"""The paper's evaluation protocol: train, render, run the baselines, score, write the summary (see `runner`).

Five categories, three pairs of negatives each, five training seeds: 75 concepts of 32 images each, and each
baseline with 160 images per pair. Every finished piece is kept on disk, so a rerun skips it (resumable).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from conceptlab.engine.batch.plan import Job
from conceptlab.engine.evaluation.baselines import baseline_names, load_baseline
from conceptlab.engine.evaluation.evaluate import (
    CLIP_FIELD,
    EvaluationRow,
    ImageSet,
    RenderClock,
    baseline_image_set,
    baseline_images,
    category_target,
    concept_image_set,
    render_concept_images,
)
from conceptlab.engine.evaluation.judge import Judge
from conceptlab.engine.evaluation.metrics import (
    METRIC_NAMES,
    ClipEmbedder,
    ConceptMetrics,
    EvaluationTarget,
    pool_metric,
)
from conceptlab.engine.evaluation.protocols.runner import ProtocolRun, slug
from conceptlab.engine.models.loading import ModelChoice

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
    baselines: tuple[str, ...] = field(default_factory=baseline_names)
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


def _target(category: str, pair: tuple[str, ...]) -> EvaluationTarget:
    return category_target(category, tuple(pair), None, "the protocol")


def concept_name(category: str, pair: tuple[str, ...], seed: int) -> str:
    return f"{slug(category)}-{'-'.join(map(slug, pair))}-seed{seed}"


def training_jobs(config: ProtocolConfig, model: ModelChoice) -> tuple[Job, ...]:
    """One `create` job per category, pair of negatives and seed: the batch runner trains them, here or on Ray."""
    model_options = {"model": model.model, "device": model.device, "dtype": model.dtype}
    named = {"backend": model.backend, "revision": model.revision}
    named |= {"decoder": model.decoder, "decoder_revision": model.decoder_revision}
    model_options |= {key: value for key, value in named.items() if value}
    steps = {"steps": config.train_steps} if config.train_steps else {}
    return tuple(
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


def concept_set(run: ProtocolRun, category: str, pair: tuple[str, ...], seed: int) -> ImageSet:
    config, name = run.config, concept_name(category, pair, seed)
    concept, train_seconds = run.concept(name)
    count, settings = config.images_per_concept, run.settings()
    source = {"concept": concept.sha256, "count": count, "first_seed": config.image_seed}
    source |= {"render": asdict(settings), **run.model_source()}

    def make(clock: RenderClock) -> list:
        loaded, decoder = run.loaded()
        return render_concept_images(concept, loaded, decoder, count, config.image_seed, settings, clock)

    images, costs = run.images(run.out / "images" / name, source, count, f"render {name}", make)
    costs = {**costs, "train-seconds": [train_seconds]}
    return concept_image_set(concept, images, _target(category, pair), costs)


def baseline_set(run: ProtocolRun, baseline_name: str, category: str, pair: tuple[str, ...]) -> ImageSet:
    config, baseline = run.config, load_baseline(baseline_name)
    name = f"{slug(category)}-{'-'.join(map(slug, pair))}"
    count, uses_backend = config.images_per_pair, baseline.uses_backend
    source = {"baseline": baseline_name, "category": category, "negatives": list(pair), "count": count}
    source |= {"first_seed": config.image_seed, "render_steps": config.render_steps}
    source |= {"prior_steps": config.prior_steps, "size": config.size if uses_backend else None}
    source |= run.model_source() if uses_backend else {"model": config.sd_model}

    def make(clock: RenderClock) -> list:
        return baseline_images(
            baseline,
            _target(category, pair),
            count,
            config.image_seed,
            run.model,
            run.models,
            model=config.sd_model,
            size=config.size if uses_backend else None,
            steps=config.render_steps,
            prior_steps=config.prior_steps,
            on_image=clock,
        )

    folder = run.out / "baselines" / baseline_name / name
    images, costs = run.images(folder, source, count, f"{baseline_name} {name}", make, preload=False)
    return baseline_image_set(baseline_name, images, _target(category, pair), costs)


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


class PaperProtocol:
    """`evaluate --protocol paper`: what the runner needs of it."""

    name = "paper"
    title = "CLIP metrics"

    @staticmethod
    def build(quick: bool = False, **changes: Any) -> ProtocolConfig:
        return paper_protocol(quick, **changes)

    @staticmethod
    def check(config: ProtocolConfig, model: ModelChoice) -> None:
        for name in config.baselines:
            load_baseline(name)  # an unknown baseline fails before any training

    @staticmethod
    def jobs(config: ProtocolConfig, model: ModelChoice) -> tuple[Job, ...]:
        return training_jobs(config, model)

    @staticmethod
    def image_sets(run: ProtocolRun) -> list[ImageSet]:
        pairs = [(category, pair) for category, category_pairs in run.config.pairs.items() for pair in category_pairs]
        sets = [concept_set(run, category, pair, seed) for category, pair in pairs for seed in run.config.seeds]
        return sets + [
            baseline_set(run, baseline, category, pair) for baseline in run.config.baselines for category, pair in pairs
        ]

    @staticmethod
    def summarize(rows: list[EvaluationRow], sets: list[ImageSet], clip: ClipEmbedder) -> list[EvaluationRow]:
        return summarize(rows)

    @staticmethod
    def recorded(config: ProtocolConfig, clip_name: str, judge: Judge | None) -> dict[str, Any]:
        return {CLIP_FIELD: clip_name}

    @staticmethod
    def chart_title(clip_name: str, judge: Judge | None) -> str:
        return f"ConceptLab protocol ({clip_name})"


PAPER = PaperProtocol()
