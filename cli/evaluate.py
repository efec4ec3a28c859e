"""`conceptlab evaluate` (alias `eval`): CLIP metrics for concepts, folders of images and baselines.

conceptlab evaluate runs/new-pet/new-pet.safetensors --baseline kandinsky-neg --baseline sd-neg
conceptlab eval --images renders/ --category pet --neg cat,dog --json
conceptlab eval --protocol paper --model kandinsky-2.1 --out eval/paper
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
from rich.table import Table

from conceptlab.cli import options
from conceptlab.cli.output import description_column, print_json, progress_bar, spinner, stderr, stdout
from conceptlab.cli.parsing import number_list, word_list
from conceptlab.cli.progress import image_progress
from conceptlab.engine.adaptive.vocabulary import known_members, read_vocabulary
from conceptlab.engine.concept.file import Concept, load_concept
from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.baselines import BaselineRequest, load_baseline
from conceptlab.engine.evaluation.chart import save_metrics_chart
from conceptlab.engine.evaluation.evaluate import (
    EvaluationRow,
    ImageSet,
    check_outputs_free,
    concept_negatives,
    evaluate_image_sets,
    render_concept_images,
    results_csv,
    results_json,
    target_for,
    write_text,
)
from conceptlab.engine.evaluation.evaluators import default_clip, load_clip
from conceptlab.engine.evaluation.metrics import METRIC_NAMES, EvaluationTarget
from conceptlab.engine.io.images import load_images
from conceptlab.engine.models.devices import resolve_device, resolve_dtype
from conceptlab.engine.models.loading import ModelChoice, load_decoder, load_prior
from conceptlab.engine.protocols.paper import TaskProgress, paper_protocol, run_protocol
from conceptlab.engine.rendering.render import RenderSettings, render_settings
from conceptlab.engine.training.evolve import recorded_parent_folders

EVALUATE_EXAMPLES = """
[bold]Examples[/]

  conceptlab evaluate runs/new-pet/new-pet.safetensors --baseline kandinsky-neg --baseline sd-neg

  conceptlab eval --images renders/pets --category pet --neg cat,dog --csv pets.csv --plot pets.png

  conceptlab eval child.safetensors --images child/ --parent-images a/ --parent-images b/ --weights 0.5,0.5

  conceptlab eval --protocol paper --model kandinsky-2.1 --out eval/paper      [dim]# the paper's table[/]

  conceptlab eval --protocol paper --quick --model tiny --out eval/quick      [dim]# offline, in seconds[/]

  conceptlab eval --protocol paper --out eval/paper --ray ray://head:10001    [dim]# trains the 75 on a cluster[/]

Rows are concepts, folders and baselines; columns are each metric's mean ± std over images (n).
"""


def _vocabulary(path: Path | None, category: str | None) -> tuple[str, ...]:
    return read_vocabulary(path) if path else known_members(category or "")


def _parents(folders: list[Path], weights: tuple[float, ...] | None, metadata: dict) -> dict:
    """Parent name -> (weight, images): weights from --weights, else the concept's recorded parents, else equal.

    Without --parent-images, an evolved concept's parents are found where `evolve` left their images.
    """
    if not folders:
        if weights:
            raise UsageError("--weights is given without --parent-images; add one --parent-images DIR per parent.")
        recorded = recorded_parent_folders(metadata)
        if recorded is None and metadata.get("parents"):
            stderr.print(
                "note: parent similarity is left out: this machine has not rendered the parents' images "
                "(evolve caches them); give --parent-images DIR per parent to measure it.",
                highlight=False,
                soft_wrap=True,
            )
        return {label: (weight, load_images(folder)) for label, (weight, folder) in (recorded or {}).items()}
    recorded = [float(parent.get("weight", 0)) for parent in metadata.get("parents") or []]
    chosen = weights or (tuple(recorded) if len(recorded) == len(folders) else None)
    chosen = chosen or tuple(1 / len(folders) for _ in folders)
    if len(chosen) != len(folders):
        raise UsageError(f"--weights has {len(chosen)} values for {len(folders)} --parent-images; give one each.")
    return {folder.name: (weight, load_images(folder)) for folder, weight in zip(folders, chosen, strict=True)}


def _folder_sets(
    concepts: list[Path], folders: list[Path], category: str | None, negatives: tuple[str, ...], vocab: Path | None
) -> list[ImageSet]:
    """Rows scored on given images: one concept's target on one folder, or each folder against --category."""
    if concepts and (len(concepts) > 1 or len(folders) > 1):
        raise UsageError("--images with a concept takes one concept and one folder; run evaluate once per concept.")
    if concepts:
        concept = load_concept(concepts[0])
        meta = concept.metadata
        chosen = category or meta.get("category")
        target = target_for(chosen, negatives or concept_negatives(meta), _vocabulary(vocab, chosen), str(concepts[0]))
        return [ImageSet(concept.token, "conceptlab", load_images(folders[0]), target, concept.sha256)]
    target = target_for(category, negatives, _vocabulary(vocab, category), "--images")
    return [ImageSet(folder.name, "images", load_images(folder), target) for folder in folders]


def _with_parents(sets: list[ImageSet], parents: dict) -> list[ImageSet]:
    if not parents:
        return sets
    if len(sets) != 1:
        raise UsageError("--parent-images applies to one row; give one concept or one --images folder.")
    (only,) = sets
    target = EvaluationTarget(only.target.category, only.target.negatives, only.target.vocabulary, parents)
    return [ImageSet(only.name, only.method, only.images, target)]


def _cell(row: EvaluationRow, metric: str) -> str:
    summary = row.metrics.metrics.get(metric)
    if not summary or not summary.n:
        return "—"
    return f"{summary.mean:.3f}±{summary.std:.3f}"


def print_table(rows: list[EvaluationRow], clip_name: str) -> None:
    shown = [metric for metric in METRIC_NAMES if any(metric in row.metrics.metrics for row in rows)]
    table = Table(title=f"CLIP metrics ({clip_name}): mean ± std over n images", title_justify="left")
    for column in ("row", "category"):
        table.add_column(column, style="bold" if column == "row" else None, overflow="fold", min_width=8)
    for metric in shown:
        table.add_column(metric + (" ↓" if metric == "negative" else " ↑"), justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    for row in rows:
        cells = [_cell(row, metric) for metric in shown]
        name, category = escape(row.metrics.name), escape(row.metrics.category or "")
        table.add_row(name, category, *cells, str(row.metrics.metrics["positive"].n))
    stdout.print(table)


def write_outputs(rows: list[EvaluationRow], clip_name: str, csv_path: Path | None, plot: Path | None) -> None:
    if csv_path:
        write_text(csv_path, results_csv(rows))
        stderr.print(f"wrote {csv_path}", highlight=False, markup=False)
    if plot:
        save_metrics_chart(rows, plot, f"CLIP metrics ({clip_name})")
        stderr.print(f"wrote {plot}", highlight=False, markup=False)


class Renderer:
    """Loads the run's prior and decoder once, on first use, for concepts and same-model baselines."""

    def __init__(self, choice: ModelChoice, count: int, seed: int, size: int | None, steps: int | None):
        self.choice, self.count, self.seed, self.size, self.steps = choice, count, seed, size, steps
        self._models: tuple | None = None

    def models(self) -> tuple:
        if self._models is None:
            with spinner("Loading the prior and the decoder…"):
                loaded = load_prior(self.choice)
                self._models = (loaded, load_decoder(loaded))
        return self._models

    def settings(self) -> RenderSettings:
        loaded, _ = self.models()
        return render_settings(loaded.backend, size=self.size, steps=self.steps)

    def concept_images(self, concept: Concept) -> list:
        loaded, decoder = self.models()
        with image_progress(self.count, f"Rendering {concept.token}") as on_image:
            return render_concept_images(concept, loaded, decoder, self.count, self.seed, self.settings(), on_image)


def _model_choice(concepts: list[Concept], model: str | None, backend, device, dtype, revision) -> ModelChoice:
    """Without --model, the model the first concept was trained against (else the default backend)."""
    if model is None and concepts:
        first = concepts[0].metadata
        model, backend = first.get("model") or options.DEFAULT_MODEL, backend or first.get("backend")
    return ModelChoice(model or options.DEFAULT_MODEL, backend, device, dtype, revision)


def _rendered_set(
    renderer: Renderer, path: Path, concept: Concept, category: str | None, negatives: tuple[str, ...], vocab
) -> ImageSet:
    chosen = category or concept.metadata.get("category")
    target = target_for(chosen, negatives or concept_negatives(concept.metadata), _vocabulary(vocab, chosen), str(path))
    return ImageSet(concept.token, "conceptlab", renderer.concept_images(concept), target, concept.sha256)


def _baseline_sets(
    names: list[str], targets: list[EvaluationTarget], renderer: Renderer, sd_model: str | None
) -> list[ImageSet]:
    """One row per baseline and distinct (category, negatives) of the other rows, rendered with a progress bar."""
    distinct = list({(t.category, t.negatives): t for t in targets}.values())
    sets = []
    for baseline in [load_baseline(name) for name in names]:
        same_model = getattr(baseline, "uses_backend", False)
        loaded, decoder = renderer.models() if same_model else (None, None)
        for target in distinct:
            request = BaselineRequest(
                target.category,
                target.negatives,
                renderer.count,
                renderer.seed,
                renderer.choice,
                None if same_model else sd_model,
                renderer.size,
                renderer.steps,
                loaded=loaded,
                decoder=decoder,
            )
            with image_progress(request.count, f"{baseline.name}: {target.category}") as on_image:
                shots = baseline.render(replace(request, on_image=on_image))
            sets.append(ImageSet(f"{baseline.name} {','.join(target.negatives)}", baseline.name, shots, target))
    return sets


@contextmanager
def task_progress() -> Iterator[TaskProgress]:
    """Yield `on_task(description, total)` for the protocol: one bar per running task on stderr."""
    progress = progress_bar(description_column(), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())

    def on_task(description: str, total: int):
        task = progress.add_task(description, total=total)

        def on_item(index: int) -> None:
            progress.update(task, completed=index + 1)
            if index + 1 >= total:
                progress.remove_task(task)

        return on_item

    with progress:
        yield on_task


PROTOCOL_FIXES = {
    "category": "--category",
    "neg": "--neg",
    "vocab": "--vocab",
    "count": "-n",
    "parent_images": "--parent-images",
    "weights": "--weights",
}
"""Options the protocol decides itself (its categories, negative pairs, vocabularies and image counts)."""


def check_protocol_options(context: typer.Context, ray: str | None, max_parallel: int | None) -> None:
    """Refuse, rather than ignore, an option that `--protocol paper` does not take."""
    given = [
        flag
        for name, flag in PROTOCOL_FIXES.items()
        if (source := context.get_parameter_source(name)) is not None and source.name == "COMMANDLINE"
    ]
    if given:
        raise UsageError(f"--protocol paper sets its own {', '.join(given)}; drop them (see README: evaluate).")
    if max_parallel is not None and ray is None:
        raise UsageError("--max-parallel limits trainings on Ray; add --ray or drop it (without Ray they run in turn).")


@dataclass(frozen=True)
class ProtocolOutputs:
    out: Path | None
    as_json: bool
    csv_path: Path | None
    plot: Path | None
    force: bool


def run_paper_protocol(
    quick: bool, choice: ModelChoice, clip: str | None, outputs: ProtocolOutputs, options_: dict, batch_options: dict
) -> None:
    if outputs.out is None:
        raise UsageError("--protocol paper needs --out DIR (where concepts, images and the summary go).")
    check_outputs_free([outputs.csv_path, outputs.plot], outputs.force)
    config = paper_protocol(quick, **{key: value for key, value in options_.items() if value is not None})
    torch_device = resolve_device(choice.device)
    evaluator = load_clip(clip or default_clip(choice), torch_device, resolve_dtype(choice.dtype, torch_device))
    with task_progress() as on_task:
        result = run_protocol(config, choice, evaluator, outputs.out, on_task, batch_options, outputs.force)
    write_outputs(result.summary, evaluator.name, outputs.csv_path, outputs.plot)
    if outputs.as_json:
        print_json(results_json(result.summary, evaluator.name))
        return
    print_table(result.summary, evaluator.name)
    stdout.print(f"trained {result.trained} concept(s), reused {result.reused}", highlight=False)
    for path in result.files.values():
        stdout.print(f"  {path}", highlight=False, markup=False)


def evaluate_command(
    context: typer.Context,
    concepts: Annotated[
        list[Path] | None, typer.Argument(help="Concept .safetensors files (their images are rendered).")
    ] = None,
    images: Annotated[
        list[Path] | None,
        typer.Option("--images", help="Folder of images to score instead of rendering (repeatable)."),
    ] = None,
    category: Annotated[str | None, typer.Option(help="Category to measure against (default: the concept's).")] = None,
    neg: Annotated[
        str | None, typer.Option("--neg", help="Comma-separated negatives (default: the concept's, adaptive too).")
    ] = None,
    vocab: Annotated[
        Path | None, typer.Option(help="Known members for novelty, one a line (default: built-in list).")
    ] = None,
    parent_images: Annotated[
        list[Path] | None, typer.Option("--parent-images", help="Folder of a parent's images (repeatable).")
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="Comma-separated weight per --parent-images (default: recorded or equal).")
    ] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option("--baseline", help="Also render and score a baseline: kandinsky-neg or sd-neg (repeatable)."),
    ] = None,
    sd_model: Annotated[
        str | None,
        typer.Option(
            help="Model of the sd-neg baseline: SD hub id or folder (default stabilityai/stable-diffusion-2-1)."
        ),
    ] = None,
    count: Annotated[int, typer.Option("-n", help="Images to render per concept and per baseline row.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the first rendered image; image i uses seed + i.")] = 0,
    size: Annotated[int | None, typer.Option(help="Side of rendered images in pixels (default: the model's).")] = None,
    steps: Annotated[
        int | None, typer.Option(help="Denoising steps of rendered images (default: the model's).")
    ] = None,
    model: options.ConceptModelOpt = None,
    backend: options.BackendOpt = None,
    revision: options.RevisionOpt = None,
    clip: Annotated[
        str | None,
        typer.Option(help="Evaluating CLIP: hub id, folder or evaluator name (default openai/clip-vit-large-patch14)."),
    ] = None,
    protocol: Annotated[
        str | None, typer.Option(help="Run a whole protocol instead: 'paper' (75 concepts and both baselines).")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="With --protocol: one pair (pet: cat, dog), one seed, 8 images, few steps.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="With --protocol: folder of the run (resumable).")
    ] = None,
    ray: options.ProtocolRayOpt = None,
    max_parallel: options.MaxParallelOpt = None,
    device: options.DeviceOpt = "auto",
    dtype: options.DtypeOpt = "auto",
    as_json: options.JsonOpt = False,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write the table as CSV to this file.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Also write grouped bars per category (positive, negative) as PNG.")
    ] = None,
    force: Annotated[
        bool, options.force_option("existing --csv and --plot files (with --protocol: also what other settings made)")
    ] = False,
) -> None:
    """Score concepts, image folders and baselines with CLIP: positive, negative, novelty, diversity, parents."""
    concepts, folders, baselines = concepts or [], images or [], baseline or []
    for name in baselines:
        load_baseline(name)  # an unknown baseline fails before anything loads
    if protocol is not None:
        if protocol != "paper":
            raise UsageError(f"Unknown protocol {protocol!r}; the one protocol is 'paper'.")
        if concepts or folders:
            raise UsageError("--protocol paper trains its own concepts; drop the concept files and --images.")
        check_protocol_options(context, ray, max_parallel)
        extra = {"size": size, "render_steps": steps, "sd_model": sd_model, "image_seed": seed}
        if baselines:
            extra["baselines"] = tuple(baselines)
        choice = ModelChoice(model or options.DEFAULT_MODEL, backend, device, dtype, revision)
        batch = {"ray": ray is not None, "address": None if ray in (None, "local") else ray}
        outputs = ProtocolOutputs(out, as_json, csv_path, plot, force)
        return run_paper_protocol(quick, choice, clip, outputs, extra, {**batch, "max_parallel": max_parallel})
    if quick or out or ray or max_parallel:
        raise UsageError(
            "--quick, --out, --ray and --max-parallel belong to --protocol paper; add --protocol paper or drop them."
        )
    check_outputs_free([csv_path, plot], force)
    if count < 1:
        raise UsageError(f"-n must be at least 1 (got {count}).")
    if not concepts and not folders and not baselines:
        raise UsageError("Nothing to evaluate; give concept files, --images DIR, --baseline or --protocol paper.")
    negatives = word_list(neg)
    loaded_concepts = [load_concept(path) for path in concepts]
    sets = _folder_sets(concepts, folders, category, negatives, vocab) if folders else []
    recorded = loaded_concepts[0].metadata if len(concepts) == 1 else {}
    choice = _model_choice(loaded_concepts, model, backend, device, dtype, revision)
    renderer = Renderer(choice, count, seed, size, steps)
    if concepts and not folders:
        sets = [
            _rendered_set(renderer, path, concept, category, negatives, vocab)
            for path, concept in zip(concepts, loaded_concepts, strict=True)
        ]
    sets = _with_parents(sets, _parents(parent_images or [], number_list("--weights", weights), recorded))
    targets = [s.target for s in sets] or [target_for(category, negatives, _vocabulary(vocab, category), "--baseline")]
    sets += _baseline_sets(baselines, targets, renderer, sd_model)
    torch_device = resolve_device(device)
    evaluator = load_clip(clip or default_clip(choice), torch_device, resolve_dtype(dtype, torch_device))
    rows = evaluate_image_sets(evaluator, sets)
    write_outputs(rows, evaluator.name, csv_path, plot)
    if as_json:
        print_json(results_json(rows, evaluator.name))
    else:
        print_table(rows, evaluator.name)
