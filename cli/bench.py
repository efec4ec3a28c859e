"""`conceptlab bench`: per-step time and peak memory of `create`, ours (eager and compiled) against the official step.

conceptlab bench
conceptlab bench --stacks kandinsky-2.1 --repeats 5 --out bench.json
conceptlab bench --stacks tiny --json
conceptlab bench --full --device cuda
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from conceptlab.cli import options
from conceptlab.cli.output import print_json, spinner, stdout
from conceptlab.cli.parsing import integer_list, word_list
from conceptlab.engine.adaptive.oracle import OracleOptions, load_oracle
from conceptlab.engine.errors import UsageError
from conceptlab.engine.imagine.benchmark import time_imagine, time_loaded
from conceptlab.engine.io.atomic import refuse_existing, write_json
from conceptlab.engine.models.backend import PriorStack
from conceptlab.engine.models.devices import dtype_name, resolve_device, resolve_dtype
from conceptlab.engine.models.loading import ModelChoice, load_decoder, load_prior
from conceptlab.engine.rendering.render import render_prompts, render_settings
from conceptlab.engine.training.benchmark import (
    BenchSettings,
    ConstraintFactory,
    StackFactory,
    StackReport,
    bench_report,
    benchmark_stack,
    time_oracle,
    time_render,
)

BENCH_EXAMPLES = """
[bold]Examples[/]

  conceptlab bench                                   [dim]# reduced depth, real widths; a few minutes on a CPU[/]

  conceptlab bench --stacks kandinsky-2.1 --out bench.json   [dim]# also write the report as JSON[/]

  conceptlab bench --stacks tiny --json | jq .stacks   [dim]# the report as JSON on stdout[/]

  conceptlab bench --full --device cuda              [dim]# full depth on a GPU[/]
"""


STACK_NAMES = ("kandinsky-2.1", "kandinsky-2.2", "tiny")
"""The real-width stacks of `conceptlab.plugins.real_width` (imported when a benchmark runs) and the tiny world."""


def _depth(name: str, full: bool, text_layers: int, prior_layers: int) -> dict[str, int | str]:
    if name == "tiny":
        return {"text_encoder_layers": 2, "prior_layers": 2, "cut": "none (the tiny world, 64 wide)"}
    from conceptlab.plugins.real_width import REAL_WIDTH_STACKS

    shape = REAL_WIDTH_STACKS[name]
    mclip = shape.constraint_text["num_hidden_layers"] if shape.constraint_text else None
    if full:
        depth = {"text_encoder_layers": shape.text_layers, "prior_layers": shape.prior_layers, "cut": "none (full)"}
        return depth | ({"mclip_layers": mclip} if mclip else {})
    cut = f"text {text_layers}/{shape.text_layers}, prior {prior_layers}/{shape.prior_layers} layers"
    depth = {"text_encoder_layers": text_layers, "prior_layers": prior_layers, "cut": cut}
    if mclip:
        depth |= {"mclip_layers": text_layers, "cut": f"{cut}, M-CLIP {text_layers}/{mclip}"}
    return depth


def _ratio_text(ratio: dict) -> str:
    verdict = "[bold red]unstable[/] (the interval holds 1.0)" if ratio["unstable"] else ""
    return (
        f"[bold]{ratio['median']:.2f}x[/] (95% interval {ratio['low']:.2f} to {ratio['high']:.2f}, "
        f"{ratio['pairs']} paired steps) {verdict}"
    )


def _table(reports: list[StackReport], settings: BenchSettings, memory_kind: str) -> None:
    for report in reports:
        stdout.print(f"[bold]{report.name}[/] (random weights, real widths; depth: {report.depth['cut']})")
        stdout.print(f"  {'':<10}{'dtype':>10}{'ms/step':>10}{'peak MB':>10}{'2500 steps':>12}  constraints")
        for side, part in report.sides.items():
            compiled = f", compile {part.compile_s:.0f} s" if part.compile_s is not None else ""
            stdout.print(
                f"  {side:<10}{part.dtype:>10}{part.step_ms:>10.0f}{part.peak_memory_mb:>10.0f}"
                f"{part.create_estimate_s / 60:>8.1f} min  {part.constraint_encoder}{compiled}"
            )
        for side, ratio in report.ratios.items():
            stdout.print(f"  baseline / {side} with {settings.negatives} negatives: {_ratio_text(ratio)}")
        counts = list(report.sides["ours"].step_ms_by_negatives)
        stdout.print("  ms/step by negatives " + "".join(f"{c:>8}" for c in counts) + "   last/first")
        for side in ("baseline", "ours"):
            values = report.sides[side].step_ms_by_negatives.values()
            line = "".join(f"{v:>8.0f}" for v in values)
            stdout.print(f"  {side:<21}{line}   {report.growth(side):.2f}x")
    stdout.print(f"  memory: {memory_kind}")


def _builders(name: str, cut: dict) -> tuple[StackFactory, ConstraintFactory]:
    """The stack of `name` and the official constraint encoder for it (2.1: M-CLIP, cut like the text encoder)."""
    from conceptlab.plugins.real_width import REAL_WIDTH_STACKS, build_constraint_encoder, build_real_width_stack
    from conceptlab.plugins.tiny.backend import TinyBackend

    if name == "tiny":
        return (lambda device, dtype: TinyBackend().load_prior("tiny", device, dtype)), (lambda _: None)
    shape = REAL_WIDTH_STACKS[name]

    def build(device: torch.device, dtype: torch.dtype) -> PriorStack:
        return build_real_width_stack(shape, device, dtype, **cut)

    return build, lambda stack: build_constraint_encoder(shape, stack, layers=cut.get("text_layers"))


def _render_and_oracle(device: torch.device, dtype: torch.dtype, repeats: int) -> tuple[dict, dict]:
    """On the tiny world: one render (its recommended size and steps) and one call of each oracle on 2 images."""
    loaded = load_prior(ModelChoice(model="tiny", device=str(device), dtype=dtype_name(dtype)))
    decoder = load_decoder(loaded)
    settings = render_settings(loaded.backend)
    render = {
        "model": "tiny",
        "size": settings.size,
        "steps": settings.steps,
        "ms_per_image": time_render(loaded.stack, decoder, settings, device, repeats),
    }
    images = render_prompts(loaded.stack, decoder, ["a photo of a cat", "a photo of a dog"], [0, 1], settings)
    oracle = {"model": "tiny", "images_per_call": len(images)}
    for name, oracle_options in (("clip-zeroshot", OracleOptions()), ("blip2", OracleOptions(model="tiny"))):
        timed = load_oracle(name, loaded, oracle_options)
        oracle[f"{name}_ms_per_call"] = time_oracle(timed, images, device, repeats)
    return render, oracle


def _render_table(render: dict, oracle: dict) -> None:
    size, steps, milliseconds = render["size"], render["steps"], render["ms_per_image"]
    stdout.print(f"[bold]tiny world[/] render {size} px, {steps} steps: {milliseconds:.0f} ms/image")
    calls = ", ".join(
        f"{key.removesuffix('_ms_per_call')} {value:.0f} ms"
        for key, value in oracle.items()
        if key.endswith("_ms_per_call")
    )
    stdout.print(f"  oracle per call on {oracle['images_per_call']} images: {calls}")


def _imagine_row(model: str, device: torch.device, dtype: torch.dtype, repeats: int, full: bool) -> dict:
    """A model imagine loads, or a random real-width one (`sd3.5-real-width`, `sdxl-real-width`: built here, depth
    cut unless --full)."""
    from conceptlab.plugins.real_width_sd import REAL_WIDTH_IMAGINE, real_width_imagine

    if model not in REAL_WIDTH_IMAGINE:
        return time_imagine(model, str(device), dtype_name(dtype), repeats)
    request, loaded, oracle = real_width_imagine(model, device, dtype, full)
    return {
        **time_loaded(request, loaded, oracle, "vilt (random, real width)", repeats),
        "depth": "full" if full else "cut",
    }


def bench_command(
    stacks: Annotated[
        str, typer.Option(help="Comma-separated stacks: kandinsky-2.1, kandinsky-2.2 (real widths), tiny.")
    ] = "kandinsky-2.1,kandinsky-2.2",
    full: Annotated[bool, typer.Option("--full", help="Full depth (for a GPU); default cuts the depth.")] = False,
    text_layers: Annotated[int, typer.Option(help="Text-encoder layers when the depth is cut.")] = 1,
    prior_layers: Annotated[int, typer.Option(help="Prior layers when the depth is cut.")] = 1,
    repeats: Annotated[
        int, typer.Option(help="Interleaved rounds (one step of each side each): medians and paired ratios.")
    ] = BenchSettings.repeats,
    warmup: Annotated[int, typer.Option(help="Untimed steps before timing.")] = 1,
    negatives: Annotated[int, typer.Option(help="Negatives in the main comparison.")] = 3,
    negative_counts: Annotated[str, typer.Option(help="Negative counts of the growth sweep.")] = "1,4,16,64",
    sweep_repeats: Annotated[int, typer.Option(help="Timed steps per negative count, after one warm-up.")] = 7,
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
    names = list(word_list(stacks))
    unknown = [name for name in names if name not in STACK_NAMES]
    if unknown or not names:
        raise UsageError(f"--stacks: unknown {', '.join(unknown) or 'none given'}; use {', '.join(STACK_NAMES)}.")
    if min(repeats, sweep_repeats, text_layers, prior_layers, negatives) < 1 or warmup < 0:
        raise UsageError("--repeats, --sweep-repeats, --negatives and the layer counts must be at least 1.")
    refuse_existing([out], force, "--out file")
    counts = integer_list("--negative-counts", negative_counts)
    if min(counts) < 1:
        raise UsageError(f"--negative-counts must all be at least 1 (got {negative_counts}), e.g. 1,4,16,64.")
    settings = BenchSettings(repeats, warmup, negatives, counts, sweep_repeats, compiled=compiled)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    reports = []
    with spinner("Benchmarking…") as status:
        for name in names:
            depth = _depth(name, full, text_layers, prior_layers)
            cut = {} if full else {"text_layers": text_layers, "prior_layers": prior_layers, "vision_layers": 1}

            build, constraints = _builders(name, cut)
            reports.append(
                benchmark_stack(name, build, depth, torch_device, torch_dtype, settings, status.update, constraints)
            )
        timings = _render_and_oracle(torch_device, torch_dtype, repeats) if render else (None, None)
        imagine_rows = [
            _imagine_row(model, torch_device, torch_dtype, repeats, full) for model in word_list(imagine_models)
        ]
    report = bench_report(reports, torch_device, settings, *timings)
    report["imagine"] = imagine_rows
    if out:
        write_json(out, report)
    if as_json:
        print_json(report)
        return
    _table(reports, settings, report["memory_kind"])
    if render:
        _render_table(*timings)
    for row in imagine_rows:
        stdout.print(
            f"[bold]imagine[/] {row['model']} ({row['steps']} steps, {row['asks_per_image']} asks, {row['oracle']}): "
            f"plain {row['plain_s_per_image']:.3f} s/image, imagine {row['imagine_s_per_image']:.3f} s/image, "
            f"[bold]{row['ratio']:.2f}x[/]"
        )
    if out:
        stdout.print(f"  json: {out}")
