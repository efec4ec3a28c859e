"""One option schema: a plan's keys for each kind of job are that command's own option names, with `_` for `-`."""

import pytest
import typer

from conceptlab.cli.app import app
from conceptlab.engine.batch.plan import JOB_KEYS

COMMAND_LINE_ONLY = {"out", "force", "resume", "offload"}
"""Where a command writes, whether it replaces files, resuming, offloading: a batch decides these for its jobs."""
EVALUATE_ONLY = {"images", "parent_images", "weights", "baseline", "sd_model"}
"""evaluate's folders to score, its parents' folders and baselines: the batch's evaluate job renders its concepts."""
REPORTING_ONLY = {"json", "plain", "csv", "plot", "protocol", "quick", "ray", "max_parallel"}
"""Output formats and evaluate's whole-protocol mode: a job writes metrics.json and rows.csv itself."""


def _option_names(command_name: str) -> set[str]:
    """The command's options by their long name (`--image-seeds` -> image_seeds, `-n` -> n), arguments by name."""
    command = typer.main.get_command(app).commands[command_name]
    names = set()
    for parameter in command.params:
        if parameter.param_type_name == "argument":
            names.add(parameter.name)
            continue
        long = [opt for opt in parameter.opts if opt.startswith("--")] or parameter.opts
        names.add(long[0].lstrip("-").replace("-", "_"))
    return names


@pytest.mark.parametrize("run", ["create", "mix", "evolve", "sample", "evaluate"])
def test_every_plan_key_is_an_option_of_its_command_under_the_same_name(run):
    plan_keys = set(JOB_KEYS[run])
    options = _option_names(run)
    assert plan_keys - options == set()


@pytest.mark.parametrize("run", ["create", "mix", "evolve", "sample", "evaluate"])
def test_every_option_of_a_command_is_a_plan_key_unless_the_batch_decides_it(run):
    left_out = _option_names(run) - set(JOB_KEYS[run])
    assert left_out <= COMMAND_LINE_ONLY | EVALUATE_ONLY | REPORTING_ONLY


def test_sample_and_evaluate_plans_say_steps_as_their_command_lines_do():
    assert "steps" in JOB_KEYS["sample"] and "steps" in JOB_KEYS["evaluate"]
    assert "render_steps" not in JOB_KEYS["sample"] | JOB_KEYS["evaluate"]
