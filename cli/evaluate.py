"""`conceptlab evaluate` (alias `eval`): CLIP metrics for concepts, folders of images and baselines.

conceptlab evaluate runs/new-pet/new-pet.safetensors --baseline kandinsky-neg --baseline sd-neg
conceptlab eval --images renders/ --category pet --neg cat,dog --json
conceptlab eval --protocol paper --model kandinsky-2.1 --out eval/paper
conceptlab eval --protocol creative --quick --model tiny --out eval/creative
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from conceptlab.cli import options
from conceptlab.cli.output import print_json, show_table, shown, stderr, stdout
from conceptlab.cli.parsing import number_list, word_list
from conceptlab.cli.progress import task_progress
from conceptlab.engine.errors import UsageError
from conceptlab.engine.evaluation.baselines import load_baseline
from conceptlab.engine.evaluation.chart import save_metrics_chart
from conceptlab.engine.evaluation.evaluate import (
    EvaluationRow,
    results_csv,
    results_json,
)
from conceptlab.engine.evaluation.evaluators import evaluating_clip
from conceptlab.engine.evaluation.metrics import LOWER_IS_BETTER, METRIC_NAMES
from conceptlab.engine.evaluation.protocols.creative import check_creative, creative_protocol, run_creative
from conceptlab.engine.evaluation.protocols.paper import paper_protocol, run_protocol
from conceptlab.engine.evaluation.request import EvaluateRequest, evaluate
from conceptlab.engine.io.atomic import refuse_existing, write_text
from conceptlab.engine.io.figures import figure_format
from conceptlab.engine.models.loading import ModelChoice

EVALUATE_EXAMPLES = """
[bold]Examples[/]

  conceptlab evaluate runs/new-pet/new-pet.safetensors --baseline kandinsky-neg --baseline sd-neg

  conceptlab eval --images renders/pets --category pet --neg cat,dog --csv pets.csv --plot pets.png

  conceptlab eval child.safetensors --images child/ --parent-images a/ --parent-images b/ --weights 0.5,0.5

  conceptlab eval --protocol paper --model kandinsky-2.1 --out eval/paper      [dim]# the paper's table[/]

  conceptlab eval --protocol paper --quick --model tiny --out eval/quick      [dim]# offline, in seconds[/]

  conceptlab eval --protocol paper --out eval/paper --ray ray://head:10001    [dim]# trains the 75 on a cluster[/]

  conceptlab eval --protocol creative --quick --model tiny --out eval/creative  [dim]# the follow-up's table[/]

  conceptlab eval --images renders/pets --category pet --judge blip2 --plot pets.pdf   [dim]# validity too[/]

Rows are concepts, folders and baselines; columns are each metric's mean ± std over images (n).
"""


def _cell(row: EvaluationRow, metric: str) -> str:
    summary = row.metrics.metrics.get(metric)
    if not summary or not summary.n:
        return "—"
    if math.isnan(summary.std):
        return f"{summary.mean:.3f}"
    return f"{summary.mean:.3f}±{summary.std:.3f}"


METRIC_COLUMN_WIDTH = 15
NAME_COLUMNS_WIDTH = 40


def print_table(rows: list[EvaluationRow], clip_name: str, judge: dict | None = None, plain: bool = False) -> None:
    """The rows with every metric they have: in as many tables side by side as a terminal's width needs; in one
    table at its full width where stdout is a pipe or a file, or as TSV with `plain`."""
    metrics = [metric for metric in METRIC_NAMES if any(metric in row.metrics.metrics for row in rows)]
    judged = f", judge {judge['name']}" if judge else ""
    if not plain:  # TSV is the table alone
        stdout.print(
            f"CLIP metrics ({clip_name}{judged}): mean ± std over n images (vendi, variance: of the whole set)",
            highlight=False,
            markup=False,
        )
    fits = stdout.is_terminal and not plain  # a pipe, a file or TSV take every column at once
    per_table = max(1, (stdout.width - NAME_COLUMNS_WIDTH) // METRIC_COLUMN_WIDTH) if fits else max(1, len(metrics))
    for start in range(0, len(metrics), per_table):
        _print_metrics_table(rows, metrics[start : start + per_table], start == 0, plain)


def _print_metrics_table(rows: list[EvaluationRow], metrics: list[str], with_count: bool, plain: bool) -> None:
    table = Table()
    for column in ("row", "category"):
        table.add_column(column, style="bold" if column == "row" else None, overflow="fold", min_width=8)
    for metric in metrics:
        table.add_column(metric + (" ↓" if metric in LOWER_IS_BETTER else " ↑"), justify="right", no_wrap=True)
    if with_count:
        table.add_column("n", justify="right", no_wrap=True)
    for row in rows:
        cells = [_cell(row, metric) for metric in metrics]
        cells += [str(row.metrics.metrics["positive"].n)] if with_count else []
        table.add_row(shown(row.metrics.name), shown(row.metrics.category or ""), *cells)
    show_table(table, plain)


def write_outputs(rows: list[EvaluationRow], csv_path: Path | None, plot: Path | None, title: str) -> None:
    """The `--csv` table and the `--plot` chart, each where asked."""
    if csv_path:
        write_text(csv_path, results_csv(rows))
        stderr.print(f"wrote {csv_path}", highlight=False, markup=False)
    if plot:
        save_metrics_chart(rows, plot, title)
        stderr.print(f"wrote {plot}", highlight=False, markup=False)


PROTOCOL_FIXES = {
    "category": "--category",
    "neg": "--neg",
    "vocab": "--vocab",
    "count": "-n",
    "parent_images": "--parent-images",
    "weights": "--weights",
}
"""Options the protocol decides itself (its categories, negative pairs, vocabularies and image counts)."""


def check_protocol_options(context: typer.Context, protocol: str, ray: str | None, max_parallel: int | None) -> None:
    """Refuse, rather than ignore, an option that the protocol does not take."""
    given = [
        flag
        for name, flag in PROTOCOL_FIXES.items()
        if (source := context.get_parameter_source(name)) is not None and source.name == "COMMANDLINE"
    ]
    if given:
        raise UsageError(f"--protocol {protocol} sets its own {', '.join(given)}; drop them (see README: evaluate).")
    if max_parallel is not None and ray is None:
        raise UsageError("--max-parallel limits trainings on Ray; add --ray or drop it (without Ray they run in turn).")


@dataclass(frozen=True)
class ProtocolOutputs:
    out: Path | None
    as_json: bool
    csv_path: Path | None
    plot: Path | None
    force: bool
    plain: bool = False


def print_files(trained: int, reused: int, files: dict[str, Path]) -> None:
    stdout.print(f"trained {trained} concept(s), reused {reused}", highlight=False)
    for path in files.values():
        stdout.print(f"  {path}", highlight=False, markup=False)


@dataclass(frozen=True)
class Protocol:
    """What differs between `--protocol paper` and `--protocol creative`; everything else is `run_protocol_command`."""

    name: str
    build: Callable[..., Any]
    run: Callable[..., Any]
    title: str
    check: Callable[[Any, ModelChoice], Any] | None = None
    """Refuses what cannot run, before the evaluating CLIP loads."""


PROTOCOLS = {
    "paper": Protocol("paper", paper_protocol, run_protocol, "CLIP metrics"),
    "creative": Protocol("creative", creative_protocol, run_creative, "Creative generation", check_creative),
}


def run_protocol_command(
    protocol: Protocol,
    quick: bool,
    choice: ModelChoice,
    clip: tuple[str | None, str | None],
    outputs: ProtocolOutputs,
    options_: dict,
    batch_options: dict,
) -> None:
    """Run a whole protocol, then write and print its summary (the creative one's with its judge)."""
    if outputs.out is None:
        raise UsageError(f"--protocol {protocol.name} needs --out DIR (where concepts, images and the summary go).")
    refuse_existing([outputs.csv_path, outputs.plot], outputs.force, "file")
    config = protocol.build(quick, **{key: value for key, value in options_.items() if value is not None})
    if protocol.check:
        protocol.check(config, choice)
    evaluator = evaluating_clip(clip[0], choice, revision=clip[1])
    with task_progress() as on_task:
        result = protocol.run(config, choice, evaluator, outputs.out, on_task, batch_options, outputs.force)
    write_outputs(result.summary, outputs.csv_path, outputs.plot, f"{protocol.title} ({evaluator.name})")
    judge = getattr(result, "judge", None)  # only the creative protocol has a judge
    if outputs.as_json:
        print_json(results_json(result.summary, evaluator.name, judge))
        return
    print_table(result.summary, evaluator.name, judge, outputs.plain)
    print_files(result.trained, result.reused, result.files)


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
    count: Annotated[
        int, typer.Option("-n", help="Images to render per concept and per baseline row.")
    ] = EvaluateRequest.count,
    seed: Annotated[
        int, typer.Option(help="Seed of the first rendered image; image i uses seed + i.")
    ] = EvaluateRequest.seed,
    size: Annotated[int | None, typer.Option(help="Side of rendered images in pixels (default: the model's).")] = None,
    steps: Annotated[
        int | None, typer.Option(help="Denoising steps of rendered images (default: the model's).")
    ] = None,
    model: options.ConceptModelOpt = None,
    backend: options.BackendOpt = None,
    revision: options.RevisionOpt = None,
    decoder: options.DecoderOpt = None,
    decoder_revision: options.DecoderRevisionOpt = None,
    clip: options.ClipOpt = None,
    clip_revision: options.ClipRevisionOpt = None,
    judge: Annotated[
        str | None,
        typer.Option(
            help="Also ask an oracle (blip2, clip-zeroshot, ...) 'Is this a {category}?' and 'What kind of "
            "{category} is this?': validity and vqa-novelty."
        ),
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="Run a whole protocol instead: 'paper' (75 concepts and both baselines) or 'creative' "
            "(4 categories × concept, plain, kandinsky-neg, sd-neg, 100 images each)."
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="With --protocol: one category, 8 images, few steps (a smoke run).")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="With --protocol: folder of the run (resumable).")
    ] = None,
    ray: options.ProtocolRayOpt = None,
    max_parallel: options.MaxParallelOpt = None,
    device: options.DeviceOpt = "auto",
    dtype: options.DtypeOpt = "auto",
    as_json: options.JsonOpt = False,
    plain: options.PlainOpt = False,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write the table as CSV to this file.")] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also write the figure (bars per metric, error bars from std): .png, .svg or .pdf."),
    ] = None,
    force: Annotated[
        bool, options.force_option("existing --csv and --plot files (with --protocol: also what other settings made)")
    ] = False,
) -> None:
    """Score concepts, image folders and baselines: CLIP similarity, novelty, typicality, diversity, Vendi, variance,
    a judge's validity and vqa-novelty, cost, parents."""
    concepts, folders, baselines = concepts or [], images or [], baseline or []
    if plot is not None:
        figure_format(plot)
    for name in baselines:
        load_baseline(name)  # an unknown baseline fails before anything loads
    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise UsageError(f"Unknown protocol {protocol!r}; the protocols are 'paper' and 'creative'.")
        if concepts or folders:
            raise UsageError(f"--protocol {protocol} trains its own concepts; drop the concept files and --images.")
        if judge and protocol == "paper":
            raise UsageError("--judge belongs to --protocol creative and plain evaluate; drop it for the paper's.")
        check_protocol_options(context, protocol, ray, max_parallel)
        extra = {"size": size, "render_steps": steps, "sd_model": sd_model, "image_seed": seed}
        extra |= {"baselines": tuple(baselines)} if baselines else {}
        extra |= {"judge": judge} if judge else {}
        choice = ModelChoice.for_concepts([], model, backend, device, dtype, revision, decoder, decoder_revision)
        batch = {"ray": ray is not None, "address": options.ray_address(ray)}
        outputs = ProtocolOutputs(out, as_json, csv_path, plot, force, plain)
        clips = (clip, clip_revision)
        return run_protocol_command(
            PROTOCOLS[protocol], quick, choice, clips, outputs, extra, {**batch, "max_parallel": max_parallel}
        )
    if quick or out or ray or max_parallel:
        raise UsageError(
            "--quick, --out, --ray and --max-parallel belong to --protocol paper or creative; add one or drop them."
        )
    refuse_existing([csv_path, plot], force, "file")
    request = EvaluateRequest(
        concepts=tuple(concepts),
        images=tuple(folders),
        category=category,
        negatives=word_list(neg),
        vocab=vocab,
        parent_images=tuple(parent_images or ()),
        parent_weights=number_list("--weights", weights),
        baselines=tuple(baselines),
        sd_model=sd_model,
        count=count,
        seed=seed,
        size=size,
        steps=steps,
        model=model,
        backend=backend,
        revision=revision,
        device=device,
        dtype=dtype,
        decoder=decoder,
        decoder_revision=decoder_revision,
        clip=clip,
        judge=judge,
        clip_revision=clip_revision,
    )
    with task_progress() as on_task:
        result = evaluate(request, on_task=on_task)
    for note in result.notes:
        stderr.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    write_outputs(list(result.rows), csv_path, plot, f"CLIP metrics ({result.clip})")
    if as_json:
        print_json(results_json(result.rows, result.clip, result.judge))
    else:
        print_table(list(result.rows), result.clip, result.judge, plain)
