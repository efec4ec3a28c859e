"""The studio's requests, built the way the command line builds them: each form becomes the argument list of the
matching command, parsed by that command's own options and handed to the builder the command itself calls
(`create_request`, `evolve_request`, ...). So a job started from the page is, field for field, the frozen request
`conceptlab ARGS` would run, and the page can show that command line. Paths are names under `--root`, confined.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import typer

from conceptlab.cli.create import create_request, resume_request
from conceptlab.cli.evaluate import evaluate_request
from conceptlab.cli.evolve import evolve_request
from conceptlab.cli.imagine import imagine_request, pick_request
from conceptlab.cli.sample import sample_request
from conceptlab.engine.errors import UsageError
from conceptlab.engine.studio.paths import confined

BUILDERS: dict[str, Callable[[click.Context], Any]] = {
    "create": create_request,
    "evolve": evolve_request,
    "imagine": imagine_request,
    "pick": pick_request,
    "evaluate": evaluate_request,
    "sample": sample_request,
}


@functools.cache
def _commands() -> dict[str, click.Command]:
    from conceptlab.cli.app import app  # the app registers `studio`, whose module imports this one lazily

    return typer.main.get_command(app).commands


def command_request(argv: Sequence[str]) -> Any:
    """The frozen request `conceptlab ARGV` builds, without running it (`--resume` gives the `ResumeRequest`)."""
    command, *arguments = argv
    try:
        context = _commands()[command].make_context(command, list(arguments))
    except click.ClickException as problem:
        raise UsageError(problem.format_message()) from None
    builder = resume_request if context.params.get("resume_dir") is not None else BUILDERS[command]
    return builder(context)


def command_line(argv: Sequence[str]) -> str:
    """The command line the page shows beside a job: what to type for the same request."""
    return shlex.join(["conceptlab", *argv])


def _given(pairs: Sequence[tuple[str, Any]]) -> list[str]:
    """`--option value` for each value given (None and "" are left out; True is the flag alone)."""
    argv: list[str] = []
    for option, value in pairs:
        if value is None or value == "" or value is False:
            continue
        argv += [option] if value is True else [option, str(value)]
    return argv


def _whole(value: float | None) -> int | None:
    """A number box's value as the integer option it stands for (0 or empty: left to the default)."""
    return int(value) if value else None


def create_argv(
    root: Path,
    name: str,
    *,
    category: str,
    neg: str = "",
    adaptive: bool = False,
    oracle: str = "",
    steps: float = 200,
    seed: float = 0,
    every: float = 50,
    style: bool = False,
    gradual: bool = False,
    image_steps: float | None = None,
    model: str = "",
) -> list[str]:
    out = confined(root, name)
    flags = ["--adaptive" if adaptive else "--no-adaptive"]
    pairs = [("--category", category.strip()), ("--neg", neg.strip()), ("--oracle", oracle if adaptive else "")]
    pairs += [("--steps", int(steps)), ("--seed", int(seed)), ("--every", int(every)), ("--style", style)]
    pairs += [("--gradual", gradual), ("--image-steps", _whole(image_steps)), ("--model", model)]
    return ["create", *_given(pairs), *flags, "--out", str(out)]


def resume_argv(root: Path, run: str) -> list[str]:
    return ["create", "--resume", str(confined(root, run))]


def imagine_argv(
    root: Path, name: str, *, category: str, n: float = 2, seed: float = 0, model: str = "", oracle: str = ""
) -> list[str]:
    pairs = [("--category", category.strip()), ("-n", int(n)), ("--seed", int(seed)), ("--model", model)]
    return ["imagine", *_given([*pairs, ("--oracle", oracle)]), "--out", str(confined(root, name))]


def pick_argv(root: Path, run: str, seeds: Sequence[int], name: str) -> list[str]:
    chosen = ",".join(str(seed) for seed in seeds)
    return ["pick", str(confined(root, run)), "--seeds", chosen, "--out", str(confined(root, name))]


def evolve_argv(
    root: Path,
    name: str,
    parents: Sequence[str],
    *,
    weights: Sequence[float] = (),
    steps: float = 100,
    seed: float = 0,
    images_per_parent: float = 3,
    image_steps: float | None = None,
    model: str = "",
) -> list[str]:
    folders = [str(confined(root, parent)) for parent in parents]
    pairs = [("--weights", ",".join(f"{weight:g}" for weight in weights)), ("--steps", int(steps))]
    pairs += [("--every", int(steps)), ("--seed", int(seed)), ("--images-per-parent", int(images_per_parent))]
    pairs += [("--image-steps", _whole(image_steps)), ("--model", model)]
    return ["evolve", *folders, *_given(pairs), "--out", str(confined(root, name))]


def evaluate_argv(
    root: Path,
    name: str,
    concepts: Sequence[str],
    folders: Sequence[str] = (),
    *,
    category: str = "",
    n: float = 4,
    seed: float = 0,
) -> list[str]:
    """Concepts are rendered and scored; image folders (imagine runs, picked or uploaded sets) are scored as they
    are, against `category` (evaluate's own rules on mixing the two apply)."""
    paths = [str(confined(root, concept)) for concept in concepts]
    images = [argument for folder in folders for argument in ("--images", str(confined(root, folder)))]
    folder = confined(root, name)
    files = ["--csv", str(folder / "metrics.csv"), "--plot", str(folder / "metrics.png")]
    options = _given([("--category", category.strip()), ("-n", int(n)), ("--seed", int(seed))])
    return ["evaluate", *paths, *images, *options, *files]


def sample_argv(root: Path, concept: str, *, prompt: str, n: float = 2, seed: float = 42, name: str) -> list[str]:
    pairs = [("--prompt", prompt), ("-n", int(n)), ("--seed", int(seed))]
    return ["sample", str(confined(root, concept)), *_given(pairs), "--out", str(confined(root, name))]
