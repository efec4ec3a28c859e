"""Option types shared by every command, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.engine.models.loading import DEFAULT_MODEL

__all__ = ["DEFAULT_MODEL"]

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Backend name (tiny, kandinsky-2.1, kandinsky-2.2: its default weights), a hub id or a local folder.",
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(help="Backend for a hub id or folder given to --model (tiny, kandinsky-2.1, kandinsky-2.2)."),
]
RevisionOpt = Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit) of --model.")]
DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
DtypeOpt = Annotated[
    str, typer.Option(help="auto (float32 on CPU, bfloat16/float16 on CUDA), float32, float16 or bfloat16.")
]
SeedOpt = Annotated[int, typer.Option(help="Seed of every random draw: the same seed gives the same concept.")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder to write (default: runs/<token>).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the outputs of an earlier run in --out.")]
TokenOpt = Annotated[
    str | None, typer.Option(help="Placeholder token to learn (default: <new-CATEGORY> or <WORD-WORD>).")
]
InitOpt = Annotated[
    str | None,
    typer.Option("--init", help="Word the token starts from (default: the category / first word)."),
]
StepsOpt = Annotated[int, typer.Option(help="Optimization steps.")]
LearningRateOpt = Annotated[
    float | None,
    typer.Option("--lr", help="AdamW learning rate (default: the backend's; 1e-4 for Kandinsky)."),
]
EveryOpt = Annotated[int, typer.Option(help="Write a checkpoint concept every N steps.")]
PriorStepsOpt = Annotated[int, typer.Option(help="Prior sampling steps per training step.")]
PriorGuidanceOpt = Annotated[float, typer.Option(help="Classifier-free guidance of the prior.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ImagesOpt = Annotated[
    bool, typer.Option("--images/--no-images", help="Render the concept at every checkpoint (loads the decoder).")
]
ImageSeedsOpt = Annotated[str, typer.Option(help="Seeds of the checkpoint images, comma-separated.")]
OffloadOpt = Annotated[
    bool | None,
    typer.Option(
        "--offload/--no-offload",
        help="Keep only the model at work (prior, decoder or oracle) on the GPU; default: only when they would "
        "not all fit. --no-offload keeps everything resident.",
        show_default=False,
    ),
]
ResumeOpt = Annotated[
    Path | None,
    typer.Option(
        "--resume",
        help="Continue the interrupted run in this folder, with its own settings (only --device/--dtype may be given).",
    ),
]
