"""`conceptlab bench`: per-step time and peak memory of `create`, ours (eager and compiled) against the official step.

conceptlab bench
conceptlab bench --stacks kandinsky-2.1 --repeats 5 --out bench.json
conceptlab bench --stacks tiny --json
conceptlab bench --full --device cuda
conceptlab bench --gpu-check
conceptlab bench --gpu-check --quick --device cpu --out gpu-check.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli import options
from conceptlab.cli.output import print_json, shown, spinner, stdout
from conceptlab.cli.parsing import integer_list, word_list
from conceptlab.engine.benchmark.gpu_check import GpuCheckRequest, run_gpu_check
from conceptlab.engine.benchmark.request import BenchRequest, bench
from conceptlab.engine.errors import UsageError

BENCH_EXAMPLES = """
[bold]Examples[/]

  conceptlab bench                                   [dim]# reduced depth, real widths; a few minutes on a CPU[/]

  conceptlab bench --stacks kandinsky-2.1 --out bench.json   [dim]# also write the report as JSON[/]

  conceptlab bench --stacks tiny --json | jq .stacks   [dim]# the report as JSON on stdout[/]

  conceptlab bench --full --device cuda              [dim]# full depth on a GPU[/]

  conceptlab bench --gpu-check                       [dim]# every GPU number in one run (make gpu-check)[/]
"""


RENDER_MODEL = "tiny"
"""The render and oracle rows run on the tiny world."""
TIMED_ORACLES = (("clip-zeroshot", None), ("blip2", "tiny"))
"""The oracles timed there: clip-zeroshot and the tiny BLIP-2."""
GPU_CHECK_STACKS = ("kandinsky-2.1", "kandinsky-2.2")
GPU_CHECK_CREATE = ("kandinsky-2.2", "clip-zeroshot")
"""The adaptive create of --gpu-check: the 2.2 world of the real widths, asking the oracle that uses its own CLIP."""
GPU_CHECK_OUT = Path("runs/gpu-check.json")
BENCH_ONLY = (
    "stacks",
    "full",
    "text_layers",
    "prior_layers",
    "repeats",
    "warmup",
    "negatives",
    "negative_counts",
    "sweep_repeats",
    "compiled",
    "render",
    "imagine_models",
)
"""What --gpu-check decides itself (its rows, depth, rounds and subjects)."""


def _ratio_text(ratio: dict) -> str:
    verdict = "[bold red]unstable[/] (the interval holds 1.0)" if ratio["unstable"] else ""
    return (
        f"[bold]{ratio['median']:.2f}x[/] (95% interval {ratio['low']:.2f} to {ratio['high']:.2f}, "
        f"{ratio['pairs']} paired steps) {verdict}"
    )


def _table(report: dict) -> None:
    for stack in report["stacks"]:
        stdout.print(f"[bold]{stack['name']}[/] (random weights, real widths; depth: {stack['depth']['cut']})")
        stdout.print(f"  {'':<10}{'dtype':>10}{'ms/step':>10}{'peak MB':>10}{'2500 steps':>12}  constraints")
        for side in [side for side in ("baseline", "ours", "compiled") if side in stack]:
            part = stack[side]
            compiled = f", compile {part['compile_s']:.0f} s" if part["compile_s"] is not None else ""
            stdout.print(
                f"  {side:<10}{part['dtype']:>10}{part['step_ms']:>10.0f}{part['peak_memory_mb']:>10.0f}"
                f"{part['create_estimate_s'] / 60:>8.1f} min  {part['constraint_encoder']}{compiled}"
            )
        for side, ratio in stack["ratio"].items():
            negatives = report["settings"]["negatives"]
            stdout.print(f"  baseline / {side} with {negatives} negatives: {_ratio_text(ratio)}")
        counts = list(stack["ours"]["step_ms_by_negatives"])
        stdout.print("  ms/step by negatives " + "".join(f"{c:>8}" for c in counts) + "   last/first")
        for side in ("baseline", "ours"):
            line = "".join(f"{v:>8.0f}" for v in stack[side]["step_ms_by_negatives"].values())
            stdout.print(f"  {side:<21}{line}   {stack['negatives_growth'][side]:.2f}x")
    stdout.print(f"  memory: {report['memory_kind']}")


def _render_table(render: dict, oracle: dict) -> None:
    size, steps, milliseconds = render["size"], render["steps"], render["ms_per_image"]
    stdout.print(f"[bold]tiny world[/] render {size} px, {steps} steps: {milliseconds:.0f} ms/image")
    calls = ", ".join(
        f"{key.removesuffix('_ms_per_call')} {value:.0f} ms"
        for key, value in oracle.items()
        if key.endswith("_ms_per_call")
    )
    stdout.print(f"  oracle per call on {oracle['images_per_call']} images: {calls}")


def _imagine_table(rows: list[dict]) -> None:
    for row in rows:
        stdout.print(
            f"[bold]imagine[/] {row['model']} ({row['steps']} steps, {row['asks_per_image']} asks, {row['oracle']}): "
            f"plain {row['plain_s_per_image']:.3f} s/image, imagine {row['imagine_s_per_image']:.3f} s/image, "
            f"[bold]{row['ratio']:.2f}x[/]"
        )


def _gpu_check_table(report: dict) -> None:
    machine = report["machine"]
    stdout.print(
        f"[bold]gpu-check[/] on {machine['gpu'] or machine['device']} (torch {machine['torch']}, "
        f"CUDA {machine['cuda']}, driver {machine['driver']}){' [dim]quick[/]' if report['quick'] else ''}"
    )
    stdout.print(f"  {'row':<22}{'subject':<24}{'status':<9}{'seconds':>9}{'budget':>8}  result")
    for row in report["rows"]:
        seconds = f"{row['seconds']:>9.1f}" if "seconds" in row else f"{'':>9}"
        stdout.print(
            f"  {row['row']:<22}{shown(row.get('name') or '')[:23]:<24}{row['status']:<9}{seconds}"
            f"{row['budget_s']:>8.0f}  {_row_result(row)}"
        )
    total = report["total"]
    stdout.print(
        f"  total {total['seconds']:.0f} s (row budgets {total['row_budgets_s']:.0f} s, "
        f"limit {total['budget_s']:.0f} s on one H100); memory: {report['memory_kind']}"
    )


def _row_result(row: dict) -> str:
    """One line of what a row measured (or why it did not run)."""
    if row["status"] != "ran":
        return shown(row.get("reason", ""))
    cut = " [yellow]cut by budget[/]" if row.get("cut_by_budget") else ""
    if row["row"] == "create_step":
        steps = ", ".join(f"{side} {row[side]['steps_per_s']:.1f}" for side in ("baseline", "ours", "compiled"))
        ratio = row["ratio"]["compiled"]
        return (
            f"steps/s {steps}; baseline/compiled {ratio['median']:.2f}x ({ratio['low']:.2f}-{ratio['high']:.2f}); "
            f"compile {row['compiled']['compile_s']:.0f} s{cut}"
        )
    if row["row"].startswith("adaptive_create"):
        return (
            f"{row['steps']} steps: train {row['training_s']:.1f} s, render {row['render_s']:.1f} s, oracle "
            f"{row['oracle_s']:.1f} s; offload {row['offload']}; peak {row['peak_memory_mb']:.0f} MB{cut}"
        )
    return (
        f"{row['preview']} preview: plain {row['plain_s_per_image']:.2f} s/image, imagine "
        f"{row['imagine_s_per_image']:.2f} s/image ({row['ratio']:.2f}x){cut}"
    )


def _check_gpu_check_options(context: typer.Context) -> None:
    """Refuse, rather than ignore, a bench option --gpu-check decides itself."""
    given = [
        parameter.opts[0]
        for parameter in context.command.params
        if parameter.name in BENCH_ONLY
        and (source := context.get_parameter_source(parameter.name)) is not None
        and source.name == "COMMANDLINE"
    ]
    if given:
        raise UsageError(f"--gpu-check runs its own rows; drop {', '.join(given)}.")


def gpu_check_command(quick: bool, device: str, dtype: str, out: Path | None, force: bool, as_json: bool) -> None:
    """`--gpu-check`: one request, one engine call, the table (or the report as JSON)."""
    stack, oracle = GPU_CHECK_CREATE
    request = GpuCheckRequest(
        quick=quick,
        device=device,
        dtype=dtype,
        out=out or GPU_CHECK_OUT,
        force=force,
        stacks=GPU_CHECK_STACKS,
        create_stack=stack,
        oracle=oracle,
    )
    with spinner("GPU check…") as status:
        report = run_gpu_check(request, status.update)
    if as_json:
        print_json(report)
        return
    _gpu_check_table(report)
    stdout.print(f"  json: {request.out}")


def bench_command(
    context: typer.Context,
    stacks: Annotated[
        str, typer.Option(help="Comma-separated stacks: kandinsky-2.1, kandinsky-2.2 (real widths), tiny.")
    ] = "kandinsky-2.1,kandinsky-2.2",
    full: Annotated[bool, typer.Option("--full", help="Full depth (for a GPU); default cuts the depth.")] = False,
    text_layers: Annotated[
        int, typer.Option(help="Text-encoder layers when the depth is cut.")
    ] = BenchRequest.text_layers,
    prior_layers: Annotated[int, typer.Option(help="Prior layers when the depth is cut.")] = BenchRequest.prior_layers,
    repeats: Annotated[
        int, typer.Option(help="Interleaved rounds (one step of each side each): medians and paired ratios.")
    ] = BenchRequest.repeats,
    warmup: Annotated[int, typer.Option(help="Untimed steps before timing.")] = BenchRequest.warmup,
    negatives: Annotated[int, typer.Option(help="Negatives in the main comparison.")] = BenchRequest.negatives,
    negative_counts: Annotated[str, typer.Option(help="Negative counts of the growth sweep.")] = "1,4,16,64",
    sweep_repeats: Annotated[
        int, typer.Option(help="Timed steps per negative count, after one warm-up.")
    ] = BenchRequest.sweep_repeats,
    compiled: Annotated[
        bool, typer.Option("--compiled/--no-compiled", help="Also time the compiled step (compiles first: minutes).")
    ] = True,
    device: options.DeviceOpt = "auto",
    dtype: options.DtypeOpt = "auto",
    render: Annotated[
        bool, typer.Option("--render/--no-render", help="Also time a render and each oracle call (tiny world).")
    ] = True,
    imagine_models: Annotated[
        str,
        typer.Option(
            "--imagine",
            help="Models for an imagine row, plain vs imagine s/image (make bench: tiny,tiny-sdxl,tiny-sd3; "
            "sd3.5-real-width, sdxl-real-width: random real widths, 8 steps at 256 px, cut depth unless --full).",
        ),
    ] = "",
    as_json: options.JsonOpt = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the report as JSON to this file.")] = None,
    force: Annotated[bool, options.force_option("an existing --out file")] = False,
    gpu_check: Annotated[
        bool,
        typer.Option(
            "--gpu-check",
            help="Every GPU number in one run (create step, adaptive create, imagine rows, the machine), within "
            "8 minutes on one H100; writes runs/gpu-check.json unless --out.",
        ),
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="With --gpu-check: depth cut, few rounds, small sizes (a CPU).")
    ] = False,
) -> None:
    """Time the create step (ours vs the official code's) on random models of the real widths."""
    if gpu_check:
        _check_gpu_check_options(context)
        gpu_check_command(quick, device, dtype, out, force, as_json)
        return
    if quick:
        raise UsageError("--quick goes with --gpu-check; add --gpu-check or drop --quick.")
    request = BenchRequest(
        stacks=word_list(stacks),
        full=full,
        text_layers=text_layers,
        prior_layers=prior_layers,
        repeats=repeats,
        warmup=warmup,
        negatives=negatives,
        negative_counts=integer_list("--negative-counts", negative_counts),
        sweep_repeats=sweep_repeats,
        compiled=compiled,
        device=device,
        dtype=dtype,
        render=render,
        imagine_models=word_list(imagine_models),
        out=out,
        force=force,
        render_model=RENDER_MODEL,
        oracles=TIMED_ORACLES,
    )
    with spinner("Benchmarking…") as status:
        report = bench(request, status.update)
    if as_json:
        print_json(report)
        return
    _table(report)
    if render:
        _render_table(report["render"], report["oracle"])
    _imagine_table(report["imagine"])
    if out:
        stdout.print(f"  json: {out}")
