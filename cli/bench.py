"""`conceptlab bench`: per-step time and peak memory of `create`, ours (eager and compiled) against the official step.

conceptlab bench
conceptlab bench --stacks kandinsky-2.1 --repeats 5 --out bench.json
conceptlab bench --stacks tiny --json
conceptlab bench --full --device cuda
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli import options
from conceptlab.cli.output import print_json, spinner, stdout
from conceptlab.cli.parsing import integer_list, word_list
from conceptlab.engine.benchmark.request import BenchRequest, bench

BENCH_EXAMPLES = """
[bold]Examples[/]

  conceptlab bench                                   [dim]# reduced depth, real widths; a few minutes on a CPU[/]

  conceptlab bench --stacks kandinsky-2.1 --out bench.json   [dim]# also write the report as JSON[/]

  conceptlab bench --stacks tiny --json | jq .stacks   [dim]# the report as JSON on stdout[/]

  conceptlab bench --full --device cuda              [dim]# full depth on a GPU[/]
"""


RENDER_MODEL = "tiny"
"""The render and oracle rows run on the tiny world."""
TIMED_ORACLES = (("clip-zeroshot", None), ("blip2", "tiny"))
"""The oracles timed there: clip-zeroshot and the tiny BLIP-2."""


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


def bench_command(
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
) -> None:
    """Time the create step (ours vs the official code's) on random models of the real widths."""
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
