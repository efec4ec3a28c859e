"""Breeding: a population of concepts over generations, each generation a batch plan of evolve and evaluate jobs.

Generation g picks pairs from the population, evolves a child of each pair, scores the children with `evaluate`,
and keeps the fittest `population` of parents and children. Fitness is novelty (1 - the highest similarity to known
members of the category) plus positive similarity (still a member of the category): new, but still a pet.
Each generation's plan holds the earlier generations' jobs too, so a rerun reuses all that finished.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conceptlab.engine.batch.jobs import METRICS_FILE
from conceptlab.engine.batch.plan import SHARED_KEYS, Job, Plan, topological_order
from conceptlab.engine.batch.runner import BatchEvent, BatchResult, ray_options, run_plan
from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.errors import ConceptLabError, UsageError
from conceptlab.engine.io.atomic import write_json
from conceptlab.engine.models import loading
from conceptlab.engine.options import TRAINING_STEPS, check_bounds, renamed

BREED_FILE = "breed.json"


@dataclass(frozen=True)
class BreedConfig:
    population: int = 8
    generations: int = 3
    children: int | None = None
    """Children per generation (None: as many as the population)."""
    seed: int = 0
    """Seeds the choice of pairs, and each child's training (seed + its number)."""
    category: str | None = None
    """None: the seeds' shared category."""
    eval_images: int = 8
    job_options: dict[str, Any] = field(default_factory=dict)
    """Options of every evolve and evaluate job that takes them (model, steps, images_per_parent, ...)."""

    def __post_init__(self) -> None:
        if self.population < 2:
            raise UsageError(f"--population must be at least 2 to make pairs (got {self.population}).")
        if self.generations < 1:
            raise UsageError(f"--generations must be at least 1 (got {self.generations}).")
        if self.children is not None and self.children < 1:
            raise UsageError(f"--children must be at least 1 (got {self.children}).")
        if self.eval_images < 2:
            raise UsageError(f"-n must be at least 2 to measure diversity (got {self.eval_images}).")


@dataclass(frozen=True)
class Member:
    name: str
    concept: str
    """The concept file: relative to the breed's folder for children, as given for seeds."""
    generation: int
    parents: tuple[str, ...]
    novelty: float
    positive: float

    @property
    def fitness(self) -> float:
        return round(self.novelty + self.positive, 6)


@dataclass(frozen=True)
class BreedResult:
    out: Path
    populations: list[list[Member]]
    """The population after each generation (index 0: the seeds)."""
    batches: list[BatchResult]


def _seed_name(path: Path, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.") or "seed"
    unique, index = f"seed-{name}"[:60], 2
    while unique in taken:
        unique, index = f"seed-{name}-{index}"[:60], index + 1
    taken.add(unique)
    return unique


def _shared_category(seeds: list[Path], chosen: str | None) -> str:
    if chosen:
        return chosen
    categories = {load_concept(path).metadata.get("category") for path in seeds}
    if len(categories) != 1 or None in categories:
        raise UsageError("The seeds do not share one category; say which to score against with --category.")
    return categories.pop()


def pick_pairs(population: list[Member], count: int, rng: random.Random) -> list[tuple[Member, Member]]:
    """`count` pairs of distinct members, every pair used once before any is used twice."""
    pairs = list(itertools.combinations(population, 2))
    rng.shuffle(pairs)
    return [pairs[index % len(pairs)] for index in range(count)]


class Breeder:
    """Grows one plan, generation by generation, and runs it with the batch runner."""

    def __init__(self, seeds: list[Path], config: BreedConfig, out: Path, run_options: dict[str, Any]):
        self.config, self.out, self.run_options = config, out, run_options
        self.category = _shared_category(seeds, config.category)
        self.jobs: list[Job] = []
        self.rng = random.Random(config.seed)
        taken: set[str] = set()
        self.seed_paths = {_seed_name(path, taken): str(path.resolve()) for path in seeds}

    def _options(self, run: str) -> dict[str, Any]:
        return {key: value for key, value in self.config.job_options.items() if key in SHARED_KEYS[run]}

    def _score_job(self, generation: int, concepts: list[str]) -> Job:
        name = f"score-g{generation}"
        options = {**self._options("evaluate"), "concepts": concepts, "n": self.config.eval_images}
        return Job(name, "evaluate", {**options, "category": self.category}, (), name)

    def _run(self, on_event: Callable[[BatchEvent], None] | None) -> BatchResult:
        plan = Plan(tuple(self.jobs), self.out, self.out, self._dependencies())
        topological_order(plan)
        return run_plan(plan, on_event=on_event, **self.run_options)

    def _dependencies(self) -> dict[str, tuple[str, ...]]:
        names = {job.name for job in self.jobs}
        return {job.name: tuple(r for r in job.references if r in names) for job in self.jobs}

    def _scores(self, batch: BatchResult, generation: int) -> dict[str, tuple[float, float]]:
        record = batch.records[f"score-g{generation}"]
        if not record.finished:
            failed = [r for r in batch.records.values() if r.status == "failed"]
            cause = f"{failed[0].name}: {failed[0].error}" if failed else record.error
            raise ConceptLabError(
                f"Generation {generation} did not finish ({cause}); run breed again to retry (finished jobs are kept)."
            )
        rows = json.loads((self.out / f"score-g{generation}" / METRICS_FILE).read_text(encoding="utf-8"))["rows"]
        job = next(j for j in self.jobs if j.name == f"score-g{generation}")
        return {
            name: (row["metrics"]["novelty"]["mean"], row["metrics"]["positive"]["mean"])
            for name, row in zip(job.options["concepts"], rows, strict=True)
        }

    def seed_population(self, on_event) -> tuple[list[Member], BatchResult]:
        self.jobs.append(self._score_job(0, list(self.seed_paths.values())))
        batch = self._run(on_event)
        scores = self._scores(batch, 0)
        members = [Member(name, path, 0, (), *scores[path]) for name, path in self.seed_paths.items()]
        return sorted(members, key=lambda m: -m.fitness)[: self.config.population], batch

    def generation(self, number: int, population: list[Member], on_event) -> tuple[list[Member], BatchResult]:
        count = self.config.children or self.config.population
        pairs = pick_pairs(population, count, self.rng)
        children = []
        for index, (first, second) in enumerate(pairs):
            name = f"g{number}-{index + 1:02d}"
            parents = [self._reference(first), self._reference(second)]
            seed = self.config.seed + number * 1000 + index
            options = {**self._options("evolve"), "parents": parents, "seed": seed}
            self.jobs.append(Job(name, "evolve", options, (), name))
            children.append((name, first, second))
        self.jobs.append(self._score_job(number, [name for name, _, _ in children]))
        batch = self._run(on_event)
        scores = self._scores(batch, number)
        made = [
            Member(name, batch.records[name].concept or "", number, (a.name, b.name), *scores[name])
            for name, a, b in children
            if batch.records[name].finished
        ]
        return sorted([*population, *made], key=lambda m: -m.fitness)[: self.config.population], batch

    def _reference(self, member: Member) -> str:
        return self.seed_paths.get(member.name, member.name)


def breed(
    seeds: list[Path],
    config: BreedConfig,
    out: Path,
    run_options: dict[str, Any],
    on_event: Callable[[BatchEvent], None] | None = None,
) -> BreedResult:
    """Breed `config.generations` generations from the concept files `seeds`; `run_options` go to `run_plan`
    (default_model, ray, address, max_parallel, force). Writes `breed.json` with every generation's population."""
    if len(seeds) < 2:
        raise UsageError("breed needs at least two seed concepts to pair.")
    missing = [str(path) for path in seeds if not path.is_file()]
    if missing:
        raise UsageError(f"No concept file at {missing[0]}; give .safetensors files made by create, mix or evolve.")
    breeder = Breeder(seeds, config, out, run_options)
    population, batch = breeder.seed_population(on_event)
    populations, batches = [population], [batch]
    for number in range(1, config.generations + 1):
        population, batch = breeder.generation(number, population, on_event)
        populations.append(population)
        batches.append(batch)
    record = {
        "category": breeder.category,
        "config": {**asdict(config)},
        "generations": [[{**asdict(m), "fitness": m.fitness} for m in members] for members in populations],
    }
    write_json(out / BREED_FILE, record)
    return BreedResult(out, populations, batches)


@dataclass(frozen=True)
class BreedRequest:
    """`conceptlab breed`: one field per option."""

    seeds: tuple[Path, ...]
    population: int = BreedConfig.population
    generations: int = BreedConfig.generations
    children: int | None = None
    category: str | None = None
    steps: int | None = field(default=None, metadata=TRAINING_STEPS)
    """Each child's training steps (None: evolve's)."""
    images_per_parent: int | None = None
    eval_images: int = renamed("n", default=BreedConfig.eval_images)
    images: bool = True
    seed: int = BreedConfig.seed
    image_size: int | None = None
    image_steps: int | None = None
    decoder: str | None = None
    decoder_revision: str | None = None
    clip: str | None = None
    clip_revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    out: Path = Path("runs/breed")
    ray: str | None = None
    """None: here, one job after another; `local`: a local Ray started for the run; else a cluster's address."""
    max_parallel: int | None = None
    force: bool = False
    default_model: str = field(default_factory=loading.default_model)
    """The model of jobs that name none and read no concept (the batch's)."""

    def __post_init__(self) -> None:
        check_bounds(self)
        self.config()  # refuses a population, generation count or -n that cannot breed before any job runs

    def job_options(self) -> dict[str, Any]:
        """The options every evolve and evaluate job takes (as recorded in breed.json: those given, in this order)."""
        options: dict[str, Any] = {"device": self.device, "dtype": self.dtype, "images": self.images}
        options |= {"steps": self.steps} if self.steps else {}
        options |= {"images_per_parent": self.images_per_parent} if self.images_per_parent else {}
        named = {"image_size": self.image_size, "image_steps": self.image_steps, "decoder": self.decoder}
        named |= {"clip": self.clip, "decoder_revision": self.decoder_revision, "clip_revision": self.clip_revision}
        return options | {key: value for key, value in named.items() if value is not None}

    def config(self) -> BreedConfig:
        return BreedConfig(
            self.population,
            self.generations,
            self.children,
            self.seed,
            self.category,
            self.eval_images,
            self.job_options(),
        )

    def run_options(self) -> dict[str, Any]:
        """`run_plan`'s options."""
        options = {"default_model": self.default_model, **ray_options(self.ray)}
        return options | {"max_parallel": self.max_parallel, "force": self.force}

    @property
    def total_jobs(self) -> int:
        """The seeds' scoring, then each generation's children and their scoring."""
        return 1 + self.generations * ((self.children or self.population) + 1)


def run_breed(request: BreedRequest, on_event: Callable[[BatchEvent], None] | None = None) -> BreedResult:
    """`conceptlab breed` in one call."""
    return breed(list(request.seeds), request.config(), request.out, request.run_options(), on_event)
