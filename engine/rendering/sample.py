"""`sample`: render prompts that use one or more learned concepts, and write the images and a captioned grid."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import PIL.Image
import PIL.ImageDraw
import torch

from conceptlab.engine.concept.file import Concept, check_concept_fits, load_concept
from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.atomic import refuse_existing
from conceptlab.engine.io.images import write_png
from conceptlab.engine.models.backend import DecoderStack
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice
from conceptlab.engine.models.model_cache import ModelCache
from conceptlab.engine.models.offload import IDLE_DEVICE, prior_and_decoder_residency
from conceptlab.engine.options import COMMAND_LINE_ONLY, JOB_ONLY, check_bounds, check_seeds
from conceptlab.engine.portability.routes import category_word, route_for
from conceptlab.engine.prior.tokens import concept_token
from conceptlab.engine.rendering.render import RenderSettings, prior_image_embeds, render_prompts, render_settings
from conceptlab.engine.rendering.via import check_route_width, route_settings

CAPTION_HEIGHT = 16


@dataclass(frozen=True)
class SampleRequest:
    """`conceptlab sample`: one field per option (plan keys derive from them, see `conceptlab.engine.options`)."""

    concepts: tuple[Path, ...]
    prompt: str
    n: int = 4
    seed: int = 42
    size: int | None = None
    steps: int | None = field(default=None, metadata=JOB_ONLY)
    """Decoder steps. This and the prior's settings are `JOB_ONLY`: in `[plan]` they would be the training's."""
    guidance: float | None = None
    prior_steps: int | None = field(default=None, metadata=JOB_ONLY)
    prior_guidance: float | None = field(default=None, metadata=JOB_ONLY)
    decoder_prompt: str | None = None
    negative_prompt: str | None = None
    """None: the decoder's negative is the zero image's embedding (official); a prompt (even ""): the prior's output."""
    decoder: str | None = None
    decoder_revision: str | None = None
    grid: bool = True
    offload: bool | None = None
    via: str | None = None
    """Render through another model (a `conceptlab.routes` name) instead of the backend's decoder."""
    via_model: str | None = None
    """The route's model (None: the one it uses for the concept's image space)."""
    ip_scale: float | None = None
    noise_level: int | None = None
    model: str | None = None
    """None: the model the first concept was trained against."""
    backend: str | None = None
    revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    out: Path | None = field(default=None, metadata=COMMAND_LINE_ONLY)
    """None: `samples/` beside the first concept."""
    force: bool = field(default=False, metadata=COMMAND_LINE_ONLY)

    def render_choices(self) -> dict[str, Any]:
        """The render settings asked for (None: the backend's recommendation, else the default)."""
        names = ("size", "steps", "guidance", "prior_steps", "prior_guidance", "decoder_prompt")
        return {name: getattr(self, name) for name in names}


@dataclass(frozen=True)
class SampleResult:
    prompt: str
    """The prompt as written with each concept's token in place (what the file names and caption show)."""
    seeds: tuple[int, ...]
    images: tuple[Path, ...]
    grid: Path | None


PROMPT_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
"""A brace pair to keep (`{{`, `}}`), a field (`{}`, `{0}`, anything else between braces) or a lone brace."""


def prompt_fields(prompt: str) -> list[str]:
    """The concept fields of `prompt` in order, read literally (never by `str.format`, whose format specs would
    let `{0:>200000000}` allocate gigabytes): '' for `{}`, '0' for `{0}`; one line for anything else in braces."""
    names = []
    for match in PROMPT_FIELD.finditer(prompt):
        text, name = match.group(0), match.group(1)
        if text in ("{{", "}}"):
            continue
        if name is None or not (name == "" or (name.isascii() and name.isdigit())):
            raise UsageError(
                f"--prompt {prompt!r}: {text[:20]!r} is not a concept's place; use {{}} or {{0}}, {{1}} "
                "(and {{ or }} for a brace)."
            )
        names.append(name)
    if "" in names and any(names):
        raise UsageError(f"--prompt {prompt!r} mixes {{}} with {{0}}, {{1}}; number every field or none.")
    return names


def substitute_fields(prompt: str, tokens: Sequence[str]) -> str:
    """`prompt` with each field replaced by its token (`{}` in order, `{i}` the i-th) and `{{`, `}}` by braces."""
    automatic = iter(tokens)

    def replace(match: re.Match[str]) -> str:
        text, name = match.group(0), match.group(1)
        if text in ("{{", "}}"):
            return text[0]
        return next(automatic) if name == "" else tokens[int(name)]

    return PROMPT_FIELD.sub(replace, prompt)


def fill_prompt(prompt: str, tokens: Sequence[str]) -> str:
    """Put the concepts' tokens into `prompt`: `{}` (in order) or `{0}`, `{1}`..., or the tokens written as is."""
    fields = prompt_fields(prompt)
    if not fields:
        if not any(re.search(_whole_token(token), prompt) for token in tokens):
            raise UsageError(f"--prompt {prompt!r} has no {{}} and no concept token; write e.g. 'a plush toy {{}}'.")
        return prompt
    for name in fields:
        if name and not int(name) < len(tokens):
            raise UsageError(
                f"--prompt uses {{{name}}} but {len(tokens)} concept(s) were given; use {{0}} to {{{len(tokens) - 1}}}."
            )
    if fields.count("") > len(tokens):
        raise UsageError(
            f"--prompt {prompt!r} has {fields.count('')} {{}} for {len(tokens)} concept(s); give one each."
        )
    return substitute_fields(prompt, tokens)


def check_sample_request(concepts: Sequence[Concept], prompt: str, n: int, seed: int) -> str:
    """Validate what needs no model (concepts, prompt, count, seed); return the prompt with the tokens in place."""
    if not concepts:
        raise UsageError("Give at least one concept file.")
    if n <= 0:
        raise UsageError(f"-n {n}: give a positive number of images.")
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer (got {seed}).")
    check_seeds("the last seed (--seed + -n - 1)", [seed + n - 1])
    return fill_prompt(prompt, [concept.token for concept in concepts])


def check_size(decoder: DecoderStack, size: int, option: str = "--size") -> None:
    multiple = decoder.size_multiple
    if size <= 0 or size % multiple:
        raise UsageError(
            f"{option} {size}: this decoder needs a positive multiple of {multiple} (e.g. {multiple * 8})."
        )


def model_prompt(prompt: str, concepts: Sequence[Concept], tokens: Sequence[str]) -> str:
    """The prompt the model reads: `{}` fields, or the concepts' own tokens as written, become `tokens`."""
    if prompt_fields(prompt):
        return substitute_fields(prompt, tokens)
    written = {}
    for concept, token in zip(concepts, tokens, strict=True):
        written.setdefault(concept.token, token)  # a token written twice stands for the first concept with it
    pattern = "|".join(_whole_token(name) for name in sorted(written, key=len, reverse=True))
    return re.sub(pattern, lambda match: written[match.group(0)], prompt)


def _whole_token(name: str) -> str:
    """A pattern for `name` as a whole token: a token `e` is not the `e` inside "the" (a word character at either end
    must not touch another; `<x>` has none to guard)."""
    before = r"(?<!\w)" if re.match(r"\w", name[:1]) else ""
    after = r"(?!\w)" if re.match(r"\w", name[-1:]) else ""
    return f"{before}{re.escape(name)}{after}"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "sample"


def output_paths(out: Path, display_prompt: str, seeds: Sequence[int]) -> tuple[list[Path], Path]:
    """One file per image, and the grid named by its first seed and count, so other seeds never collide with it."""
    name = slug(display_prompt)
    images = [out / f"{name}-seed{seed}-{index}.png" for index, seed in enumerate(seeds)]
    return images, out / f"{name}-seed{seeds[0]}-n{len(seeds)}-grid.png"


def grid_image(images: Sequence[PIL.Image.Image], caption: str) -> PIL.Image.Image:
    """The images in a near-square grid under a one-line caption."""
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    width, height = images[0].size
    draw_probe = PIL.ImageDraw.Draw(PIL.Image.new("RGB", (1, 1)))
    caption_width = int(draw_probe.textlength(caption)) + 8
    grid = PIL.Image.new("RGB", (max(columns * width, caption_width), rows * height + CAPTION_HEIGHT), "white")
    PIL.ImageDraw.Draw(grid).text((4, 2), caption, fill="black")
    for index, image in enumerate(images):
        grid.paste(image, ((index % columns) * width, CAPTION_HEIGHT + (index // columns) * height))
    return grid


def render_samples(
    concepts: Sequence[Concept],
    prompt: str,
    loaded: LoadedPrior,
    decoder: DecoderStack,
    n: int = 4,
    seed: int = 42,
    settings: RenderSettings | None = None,
    out: Path | str = "samples",
    force: bool = False,
    *,
    negative_prompt: str | None = None,
    grid: bool = True,
    offload: bool | None = None,
    on_image: Callable[[int], None] | None = None,
) -> SampleResult:
    """Render `n` images of `prompt` (seeds `seed`, `seed + 1`, ...) with the concepts' tokens in place.

    Writes `<prompt>-seed<S>-<i>.png` per image and `<prompt>-seed<seed>-n<n>-grid.png` (with `grid`) under `out`;
    never replaces a file without `force`. `offload` (None: only when the models would not all fit on the GPU) keeps
    one model at a time on the device. The loaded prior's tokenizer gains the concepts (see `concept_token`).
    """
    settings = settings or RenderSettings()
    display_prompt = check_sample_request(concepts, prompt, n, seed)
    check_size(decoder, settings.size)
    for concept in concepts:
        check_concept_fits(concept, loaded.info, source=f"concept {concept.token}")
    seeds = tuple(range(seed, seed + n))
    image_paths, grid_path = output_paths(Path(out), display_prompt, seeds)
    refuse_existing([*image_paths, grid_path] if grid else image_paths, force, "--out")

    stack = loaded.stack
    tokens = [concept_token(stack.tokenizer, stack.text_encoder, c.sha256, c.vector) for c in concepts]
    images = render_prompts(
        stack,
        decoder,
        [model_prompt(prompt, concepts, tokens)] * n,
        list(seeds),
        settings,
        negative_prompt,
        on_image=on_image,
        before_phase=prior_and_decoder_residency(loaded, decoder, offload).use,
    )
    for image, path in zip(images, image_paths, strict=True):
        write_png(path, image)
    if grid:
        write_png(grid_path, grid_image(images, display_prompt))
    return SampleResult(display_prompt, seeds, tuple(image_paths), grid_path if grid else None)


def sample(
    request: SampleRequest, *, cache: ModelCache | None = None, on_image: Callable[[int], None] | None = None
) -> SampleResult:
    """`conceptlab sample` in one call: check the request, load (or reuse from `cache`) the models, render, write.

    Everything that needs no model is checked before any weights are read. The decoder waits on the CPU between
    phases unless `offload` is False.
    """
    check_bounds(request)
    concepts = [load_concept(path) for path in request.concepts]
    check_sample_request(concepts, request.prompt, request.n, request.seed)
    if request.via is not None:
        return _sample_via(request, concepts, cache or ModelCache(), on_image)
    _refuse_route_options(request)
    chosen = request.render_choices()
    RenderSettings(**{key: value for key, value in chosen.items() if value is not None})
    cache = cache or ModelCache()
    model = (request.model, request.backend, request.device, request.dtype, request.revision)
    choice = ModelChoice.for_concepts(concepts, *model, request.decoder, request.decoder_revision)
    loaded = cache.prior(choice)
    for path, concept in zip(request.concepts, concepts, strict=True):
        check_concept_fits(concept, loaded.info, source=str(path))
    place = None if request.offload is False else IDLE_DEVICE
    decoder = cache.decoder(loaded, choice.decoder, choice.decoder_revision, place=place)
    return render_samples(
        concepts,
        request.prompt,
        loaded,
        decoder,
        request.n,
        request.seed,
        render_settings(loaded.backend, **chosen),
        request.out or request.concepts[0].parent / "samples",
        request.force,
        negative_prompt=request.negative_prompt,
        grid=request.grid,
        offload=request.offload,
        on_image=on_image,
    )


def _refuse_route_options(request: SampleRequest) -> None:
    """Route options without --via, or decoder options with it, are refused, never ignored."""
    if request.via is None:
        given = [name for name in ("via_model", "ip_scale", "noise_level") if getattr(request, name) is not None]
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} applies to --via routes only; add --via NAME.")
        return
    given = [name for name in ("decoder", "decoder_revision", "decoder_prompt") if getattr(request, name) is not None]
    if given:
        raise UsageError(f"--{given[0].replace('_', '-')} is the decoder's; --via {request.via} renders without it.")


def _sample_via(
    request: SampleRequest, concepts: list[Concept], cache: ModelCache, on_image: Callable[[int], None] | None
) -> SampleResult:
    """`sample --via`: the prior's image embedding per seed, rendered by the route's model instead of the decoder.

    The route and the concept's image space are checked, and the outputs refused, before any weights load.
    """
    if len(concepts) != 1:
        raise UsageError(f"--via renders one concept at a time ({len(concepts)} given); give one concept file.")
    _refuse_route_options(request)
    concept, path = concepts[0], request.concepts[0]
    route, default_model = route_for(concept, request.via, str(path))
    model = request.via_model or default_model
    chosen = {"size": request.size, "steps": request.steps, "guidance": request.guidance}
    settings = route_settings(route, model, **chosen, ip_scale=request.ip_scale, noise_level=request.noise_level)
    display_prompt = check_sample_request(concepts, request.prompt, request.n, request.seed)
    seeds = tuple(range(request.seed, request.seed + request.n))
    caption = f"{display_prompt} via {route.name}"
    image_paths, grid_path = output_paths(Path(request.out or path.parent / "samples"), caption, seeds)
    refuse_existing([*image_paths, grid_path] if request.grid else image_paths, request.force, "--out")

    loaded, embeds = _prior_embeds(request, concept, cache, seeds)
    stack = loaded.stack
    pipeline = cache.other(
        ("route", route.name, model, str(stack.device), stack.dtype),
        lambda: route.load(model, stack.device, stack.dtype),
    )
    check_route_width(route, model, pipeline, int(stack.prior.config.embedding_dim))
    text_prompt = model_prompt(request.prompt, concepts, [category_word(concept)])
    images = []
    for index, (image_embeds, seed) in enumerate(zip(embeds, seeds, strict=True)):
        images.append(pipeline.render(text_prompt, image_embeds, seed, settings))
        if on_image:
            on_image(index)
    for image, image_path in zip(images, image_paths, strict=True):
        write_png(image_path, image)
    if request.grid:
        write_png(grid_path, grid_image(images, caption))
    return SampleResult(display_prompt, seeds, tuple(image_paths), grid_path if request.grid else None)


def _prior_embeds(
    request: SampleRequest, concept: Concept, cache: ModelCache, seeds: Sequence[int]
) -> tuple[LoadedPrior, list[torch.Tensor]]:
    """The prior's image embedding of the prompt with the concept, one `[1, dim]` row per seed (as `embed` writes)."""
    choice = (request.model, request.backend, request.device, request.dtype, request.revision)
    loaded = cache.prior(ModelChoice.for_concepts([concept], *choice))
    check_concept_fits(concept, loaded.info, source=str(request.concepts[0]))
    settings = render_settings(loaded.backend, prior_steps=request.prior_steps, prior_guidance=request.prior_guidance)
    stack = loaded.stack
    token = concept_token(stack.tokenizer, stack.text_encoder, concept.sha256, concept.vector)
    prompt = model_prompt(request.prompt, [concept], [token])
    return loaded, [prior_image_embeds(stack, [prompt], seed, settings, request.negative_prompt)[0] for seed in seeds]
