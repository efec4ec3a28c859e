"""One option schema: a plan's keys for each kind of job are that command's own option names, with `_` for `-`."""

import importlib
from pathlib import Path

import pytest
import typer

from conceptlab.cli.app import app
from conceptlab.engine.batch.breed import BreedRequest
from conceptlab.engine.batch.plan import JOB_KEYS
from conceptlab.engine.errors import UsageError
from conceptlab.engine.models.loading import ModelChoice
from conceptlab.engine.options import option_kinds, plan_keys
from conceptlab.engine.training.config import COMMAND_OPTIONS, CreateConfig
from conceptlab.engine.training.request import EvolveRequest

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


@pytest.mark.parametrize(
    ("command", "request_class"),
    [
        ("sample", "conceptlab.engine.rendering.sample:SampleRequest"),
        ("embed", "conceptlab.engine.rendering.embed:EmbedRequest"),
        ("imagine", "conceptlab.engine.imagine.request:ImagineRequest"),
        ("breed", "conceptlab.engine.batch.breed:BreedRequest"),
        ("convert", "conceptlab.engine.concept.convert:ConvertRequest"),
        ("gallery", "conceptlab.engine.gallery.request:GalleryRequest"),
        ("batch", "conceptlab.engine.batch.runner:BatchRequest"),
        ("pick", "conceptlab.engine.imagine.pick:PickRequest"),
    ],
)
def test_every_option_of_a_one_request_command_is_a_field_of_its_request_under_the_same_name(command, request_class):
    module, name = request_class.split(":")
    fields = option_kinds(getattr(importlib.import_module(module), name))
    assert _option_names(command) - set(fields) == set()


def test_training_commands_take_exactly_their_config_fields_besides_model_and_run_options():
    model = set(plan_keys(ModelChoice))
    for run in ("create", "mix", "evolve"):
        config = set(plan_keys(CreateConfig, COMMAND_OPTIONS[run]))
        assert _option_names(run) - model - config <= COMMAND_LINE_ONLY | {"parents"}


def test_an_evolve_request_refuses_a_training_option_evolve_does_not_take():
    with pytest.raises(UsageError, match="evolve takes no negatives"):
        EvolveRequest((Path("a.safetensors"),), ModelChoice("tiny"), {"negatives": ("cat",)})


def test_breed_gives_its_jobs_only_options_that_evolve_or_evaluate_take():
    request = BreedRequest((Path("a"), Path("b")), steps=5, images_per_parent=2, image_size=64, clip="tiny")
    assert set(request.job_options()) <= set(JOB_KEYS["evolve"]) | set(JOB_KEYS["evaluate"])
    assert request.job_options()["steps"] == 5
