"""`imagine`: sample images whose negative prompt grows as an oracle names what each one is turning into
(VLM-guided adaptive negative prompting, Golan et al., arXiv 2510.10715), with no training.

Writes `OUT/<seed>.png` per image, `OUT/imagine-grid.png` (captioned) and `OUT/imagine.json`, which is rewritten
after every image, so an interrupted run keeps what it finished and a rerun with the same settings skips it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import PIL.Image
import PIL.ImageDraw
import torch

from conceptlab.engine.adaptive.answers import checked_answers
from conceptlab.engine.adaptive.oracle import (
    Oracle,
    OracleOptions,
    Question,
    check_oracle_inputs,
    fit_to_oracle,
    load_oracle,
    oracle_factory,
    oracle_input_size,
    oracle_uses_prior,
)
from conceptlab.engine.adaptive.vocabulary import NoVocabulary
from conceptlab.engine.errors import BackendError, UsageError
from conceptlab.engine.imagine.estimate import StepRecorder
from conceptlab.engine.imagine.models import PipelineModel, resolve_family
from conceptlab.engine.imagine.negatives import NegativeList
from conceptlab.engine.imagine.official import OfficialNegatives
from conceptlab.engine.imagine.record import FORMAT, RECORD, read_imagine_record
from conceptlab.engine.imagine.request import (
    OFFICIAL_PREVIEW,
    TINY_PREVIEW,
    ImageRecord,
    ImagineProgress,
    ImagineRequest,
    ImagineResult,
    ask_steps,
)
from conceptlab.engine.imagine.steering import (
    FLOW_MATCHING,
    FLUX_FAMILY,
    POOLED_NAMES,
    FluxRoute,
    KandinskyRoute,
    Route,
    Settings,
    StableDiffusionRoute,
    shrink_latents,
)
from conceptlab.engine.io.atomic import refuse_existing, write_json
from conceptlab.engine.io.images import finite_images, write_png
from conceptlab.engine.io.lock import RunLock
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, load_decoder, load_prior
from conceptlab.engine.models.plugins import resolve_model
from conceptlab.engine.rendering.render import RenderSettings, render_settings
from conceptlab.engine.rendering.sample import check_size

GRID = "imagine-grid.png"
CAPTION_HEIGHT = 14
PER_RUN_FIELDS = ("n", "seed", "seeds", "out", "force", "device", "dtype")
"""Request fields that do not change an image (which seeds, where, on which device): left out of its settings."""


def imagine_questions(request: ImagineRequest) -> tuple[Question, ...]:
    """The oracle's questions ("What kind of {} is this?" with the category in place), shaped as oracles expect."""
    return tuple(
        Question(request.category, wording=wording, official=request.official) for wording in request.filled_questions()
    )


@dataclass(frozen=True)
class DeviceHost:
    """What an oracle of its own weights needs from the generating model when that is no Kandinsky prior."""

    device: torch.device

    @property
    def stack(self) -> DeviceHost:
        return self


@dataclass
class Loaded:
    """A loaded route and its settings, reusable across calls (`imagine(..., loaded=...)`)."""

    route: Route
    settings: Settings
    oracle_host: Any
    entry: PipelineModel | None


def oracle_choice(request: ImagineRequest, entry: PipelineModel | None) -> tuple[str, str | None]:
    """The oracle's name and weights: what was asked, else the model's default."""
    if entry is not None:
        name = request.oracle or entry.default_oracle
        weights = request.oracle_model or (entry.default_oracle_model if request.oracle is None else None)
        return name, weights
    backend, _ = resolve_model(request.model, request.backend)
    return request.oracle or backend.imagine_oracle, request.oracle_model


def check(request: ImagineRequest) -> tuple[PipelineModel | None, str, str | None]:
    """Everything that needs no weights: the request, the model's family, the oracle and its inputs."""
    request.check()
    entry, _ = resolve_family(request.model, request.backend)
    name, weights = oracle_choice(request, entry)
    if entry is not None and oracle_uses_prior(name):
        raise UsageError(
            f"--oracle {name} uses a Kandinsky prior's CLIP, which {request.model} has not; use --oracle "
            f"{entry.default_oracle}."
        )
    try:
        options = OracleOptions(model=weights, revision=request.oracle_revision)
        for question in imagine_questions(request):
            check_oracle_inputs(name, question, options)
    except NoVocabulary:
        raise UsageError(
            f"--oracle {name} picks from known kinds of a category and knows none of {request.category!r}; use "
            "--oracle vilt (free-text answers) or a category it knows (pet, plant, fruit, ...)."
        ) from None
    _check_official(request, entry, name)
    return entry, name, weights


def _check_official(request: ImagineRequest, entry: PipelineModel | None, oracle: str) -> None:
    """--top-k needs an oracle that ranks its answers; the official decode needs a flow-matching model."""
    if request.top_k > 1 and not hasattr(oracle_factory(oracle), "ask_ranked"):
        raise UsageError(f"--top-k {request.top_k}: {oracle} gives one answer per question; use --oracle vilt.")
    official = request.official or request.preview_mode == OFFICIAL_PREVIEW
    if official and (entry is None or entry.family not in FLOW_MATCHING):
        option = "--preset paper" if request.official else "--preview official"
        raise UsageError(
            f"{option} is the official code's SD3.5 setting: x̂0 = latents − prediction holds for flow matching "
            f"only, which {request.model} is not; use --model sd3.5 (or a FLUX model)."
        )


def resolved_settings(request: ImagineRequest, entry: PipelineModel | None) -> tuple[Settings, RenderSettings | None]:
    """Steps, guidance and size as asked, else the model's; Kandinsky also gets its prior's render settings. Known
    before any weights load."""
    if entry is not None:
        steps, guidance, size = (
            request.steps or entry.steps,
            request.guidance or entry.guidance,
            request.size or entry.size,
        )
        return Settings(steps, guidance, size), None
    backend, _ = resolve_model(request.model, request.backend)
    render = render_settings(backend, size=request.size, steps=request.steps, guidance=request.guidance)
    return Settings(render.steps, render.guidance, render.size), render


def load(request: ImagineRequest, kandinsky: tuple[LoadedPrior, Any] | None = None) -> Loaded:
    """Load the model (and a preview autoencoder) the request names; `kandinsky`: a prior and decoder already
    loaded for a Kandinsky request (a protocol shares them with its other methods)."""
    entry, model = resolve_family(request.model, request.backend)
    settings, render = resolved_settings(request, entry)
    choice = ModelChoice(model=model, backend=request.backend, device=request.device, dtype=request.dtype)
    if entry is None:
        if kandinsky is None:
            prior = load_prior(choice)
            kandinsky = prior, load_decoder(prior)
        prior, decoder = kandinsky
        check_size(decoder, settings.size)
        return Loaded(KandinskyRoute(prior, decoder, render), settings, prior, None)
    device, dtype = choice.placement()
    pipeline = _from_pretrained(entry, entry.reference(model), dtype).to(device)
    pipeline.set_progress_bar_config(disable=True)
    _check_pipeline_size(pipeline, settings.size)
    preview = entry.preview_autoencoder() if request.preview_mode == TINY_PREVIEW else None
    preview_decoder = _tiny_autoencoder(preview, device, dtype) if preview else None
    return Loaded(_route(entry, pipeline, preview_decoder), settings, DeviceHost(device), entry)


def _route(entry: PipelineModel, pipeline: Any, preview_decoder: Any) -> Route:
    if entry.family == FLUX_FAMILY:
        guidance, tokens = getattr(entry, "distilled_guidance", None), getattr(entry, "max_sequence_length", None)
        return FluxRoute(pipeline, guidance, tokens, preview_decoder)
    return StableDiffusionRoute(pipeline, POOLED_NAMES[entry.family], preview_decoder)


def _check_pipeline_size(pipeline: Any, size: int) -> None:
    """Refuse a size the pipeline would round (or reject with an internal error): the record says what is written."""
    scale, processor = getattr(pipeline, "vae_scale_factor", 1), getattr(pipeline, "image_processor", None)
    # SD3 patches the latents (`patch_size`); FLUX packs 2 x 2 latents, which its image processor's factor counts
    multiple = max(scale * getattr(pipeline, "patch_size", 1), getattr(processor, "vae_scale_factor", 1))
    if size % multiple:
        raise UsageError(
            f"--size {size}: this model needs a multiple of {multiple} (e.g. {size - size % multiple or multiple})."
        )


def _from_pretrained(entry: PipelineModel, reference: str, dtype: torch.dtype) -> Any:
    import diffusers

    pipeline_class = getattr(diffusers, entry.family)
    try:
        return pipeline_class.from_pretrained(reference, torch_dtype=dtype, **_absent_components(reference))
    except (OSError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise BackendError(
            f"Could not load {reference!r} as {pipeline_class.__name__} ({reason[:160]}); download it, give a folder "
            "saved with save_pretrained, or try --model tiny-sdxl offline."
        ) from None


def _absent_components(reference: str) -> dict[str, None]:
    """Components a local folder saved as null (a pipeline without T5): diffusers loads them only when named."""
    index = Path(reference) / "model_index.json"
    if not index.is_file():
        return {}
    saved = json.loads(index.read_text(encoding="utf-8"))
    return {name: None for name, value in saved.items() if value == [None, None]}


def _tiny_autoencoder(reference: str, device: torch.device, dtype: torch.dtype) -> Any:
    from diffusers import AutoencoderTiny

    try:
        return AutoencoderTiny.from_pretrained(reference, torch_dtype=dtype).to(device).eval()
    except (OSError, ValueError):
        raise BackendError(
            f"Could not load the preview autoencoder {reference!r}; download it or add --preview full."
        ) from None


def image_settings(request: ImagineRequest, settings: Settings, oracle: str, oracle_model: str | None) -> dict:
    """What decides an image besides its seed: a rerun with other settings must not mix with this one."""
    chosen = {f.name: getattr(request, f.name) for f in fields(request) if f.name not in PER_RUN_FIELDS}
    chosen.update(oracle=oracle, oracle_model=oracle_model, neg=list(request.neg))
    chosen.update(steps=settings.steps, guidance=settings.guidance, size=settings.size)
    chosen.update(question=list(request.question), ask_until=request.window_end, preview=request.preview_mode)
    return chosen


def _earlier_run(out: Path, settings: dict, force: bool) -> dict[int, ImageRecord]:
    """The finished images of an earlier run in `out` with the same settings (none with `force`)."""
    if force or not os.path.lexists(out / RECORD):
        return {}
    earlier = read_imagine_record(out, fix="; choose another --out or add --force")
    if earlier.settings != json.loads(json.dumps(settings, default=str)):
        raise UsageError(
            f"{earlier.path} holds a run with other settings; choose another --out or add --force to redo it."
        )
    return {seed: image for seed, image in earlier.by_seed.items() if image.path.is_file()}


def imagine(
    request: ImagineRequest,
    progress: Callable[[ImagineProgress], None] | None = None,
    *,
    oracle: Oracle | None = None,
    loaded: Loaded | None = None,
    kandinsky: tuple[LoadedPrior, Any] | None = None,
) -> ImagineResult:
    """`conceptlab imagine` in one call: check, load (or use `loaded`), sample each seed, write the files.

    `oracle` replaces the named one (tests and protocols pass their own); `kandinsky` shares an already loaded
    prior and decoder (see `load`). Everything about the outputs (an earlier
    run with other settings, files in the way) is checked before any weights load; a rerun with every image done
    loads nothing."""
    entry, oracle_name, oracle_model = check(request)
    out = request.out_folder
    refuse_not_folder(out)
    seeds = request.image_seeds
    steps = loaded.settings if loaded else resolved_settings(request, entry)[0]
    if oracle is not None:
        oracle_name, oracle_model = getattr(oracle, "name", type(oracle).__name__), None
    settings = image_settings(request, steps, oracle_name, oracle_model)
    _refuse_outputs(out, seeds, _earlier_run(out, settings, request.force), request.force)
    with _claimed(out):
        return _imagine_locked(
            request, progress, settings, steps, (oracle, oracle_name, oracle_model), loaded, kandinsky
        )


def refuse_not_folder(out: Path) -> None:
    """Refuse an --out that is a file (or a link to one) before any weights load."""
    if os.path.lexists(out) and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; give a folder for the images.")


def _refuse_outputs(out: Path, seeds: tuple[int, ...], finished: dict[int, ImageRecord], force: bool) -> list[int]:
    """The seeds still to sample; refuses (unless `force`) image files in the way of those."""
    todo = [seed for seed in seeds if seed not in finished]
    has_record = (out / RECORD).exists() and not force
    refuse_existing([out / f"{seed}.png" for seed in todo] + ([] if has_record else [out / GRID]), force, "--out")
    return todo


@contextmanager
def _claimed(out: Path) -> Iterator[None]:
    """Make `out` and hold its lock (as `create` does): two runs into one folder would each write a record of only
    their own seeds."""
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"Cannot create --out {out}: {error.strerror}.") from None
    try:
        with RunLock(out):
            yield
    except BaseException:
        if made and not any(out.iterdir()):  # refused before writing anything: no empty folder left behind
            out.rmdir()
        raise


def _forget_forced(out: Path) -> None:
    """With --force, the images an earlier run recorded go with its record: none is left unrecorded for the next run
    to stumble on. Only the `<seed>.png` files the (validated) record names in `out` itself are removed."""
    try:
        earlier = read_imagine_record(out)
    except UsageError:
        return
    for image in earlier.images:
        if image.path == out / f"{image.seed}.png" and image.path.is_file():
            image.path.unlink()


def _imagine_locked(
    request: ImagineRequest,
    progress: Callable[[ImagineProgress], None] | None,
    settings: dict,
    steps: Settings,
    chosen: tuple[Oracle | None, str, str | None],
    loaded: Loaded | None,
    kandinsky: tuple[LoadedPrior, Any] | None,
) -> ImagineResult:
    """`imagine` once `out` is made and locked: what an earlier run left is read again under the lock."""
    out, seeds = request.out_folder, request.image_seeds
    oracle, oracle_name, oracle_model = chosen
    finished = _earlier_run(out, settings, request.force)
    todo = _refuse_outputs(out, seeds, finished, request.force)
    if request.force:
        _forget_forced(out)
    if todo:
        loaded = loaded or load(request, kandinsky)
        options = OracleOptions(model=oracle_model, revision=request.oracle_revision)
        oracle = oracle or load_oracle(oracle_name, loaded.oracle_host, options)
    records: dict[int, ImageRecord] = dict(finished)
    for index, seed in enumerate(seeds):
        if seed in records:
            if progress:
                progress(ImagineProgress(index, len(seeds), seed, 0, steps.steps, skipped=True))
            continue
        image, record = sample_one(request, loaded, oracle, seed, out, _step_reporter(progress, index, seeds))
        write_png(record.path, image)
        records[seed] = record
        _write_record(out, settings, records)
    ordered = tuple(records[seed] for seed in seeds)
    write_png(out / GRID, grid_image(ordered, request.filled_prompt()))
    _write_record(out, settings, records)
    return ImagineResult(out, ordered, out / GRID, out / RECORD)


def _step_reporter(
    progress: Callable[[ImagineProgress], None] | None, index: int, seeds: tuple[int, ...]
) -> Callable[[tuple[int, int, tuple[str, ...]]], None]:
    def report(event: tuple[int, int, tuple[str, ...]]) -> None:
        if progress:
            progress(ImagineProgress(index, len(seeds), seeds[index], *event))

    return report


def _write_record(out: Path, settings: dict, records: dict[int, ImageRecord]) -> None:
    images = [records[seed].as_json() for seed in sorted(records)]
    write_json(
        out / RECORD, {"format": FORMAT, "settings": json.loads(json.dumps(settings, default=str)), "images": images}
    )


def sample_one(
    request: ImagineRequest,
    loaded: Loaded,
    oracle: Oracle,
    seed: int,
    out: Path,
    on_step: Callable[[tuple[int, int, tuple[str, ...]]], Any] | None = None,
) -> tuple[PIL.Image.Image, ImageRecord]:
    """One image: at each step of the window, x̂0 is decoded and shown to the oracle; what it names joins the
    negatives, re-encoded into the unconditional branch from the next step on (see `Asking`)."""
    asking = Asking(request, loaded, oracle)
    started = time.perf_counter()
    with asking.recorder.active(), torch.inference_mode():
        output = loaded.route.pipeline(
            **loaded.route.arguments(request.filled_prompt(), seed, asking.negatives.prompt(), loaded.settings),
            output_type="np",
            callback_on_step_end=asking.callback(on_step),
            callback_on_step_end_tensor_inputs=list(loaded.route.tensor_inputs),
        )
    total = time.perf_counter() - started
    negatives, answers = tuple(asking.negatives.entries), tuple(asking.answers)
    record = ImageRecord(seed, out / f"{seed}.png", negatives, answers, total - asking.seconds, asking.seconds)
    return finite_images(output.images, f"The image of seed {seed}")[0], record


class Asking:
    """One image's questions: the window, the previews, the answers and the negative list they grow.

    Ours: x̂0 with the scheduler's own formula, decoded at the oracle's input size, asked every `--ask-every`-th step
    of the window, our cleaner, the negatives re-encoded when they grow. `--preset paper` (the official code): every
    step of the window asked, x̂0 = latents − guided prediction decoded by the full VAE at full size for the oracle's
    own processor, answers kept at steps that `freq` divides, the official cleaner, one entry per answer, the joined
    negatives re-encoded at every step of the window once there are any."""

    def __init__(self, request: ImagineRequest, loaded: Loaded, oracle: Oracle):
        self.request, self.route, self.settings, self.oracle = request, loaded.route, loaded.settings, oracle
        steps = self.settings.steps
        self.window = ask_steps(steps, request.ask_from, request.window_end, request.ask_every, request.official)
        self.stop = int(request.window_end * steps)
        self.questions = imagine_questions(request)
        self.negatives: NegativeList | OfficialNegatives = (
            OfficialNegatives(tuple(request.neg), request.main_object, request.ask_every)
            if request.official
            else NegativeList(request.category, tuple(request.neg), request.max_negatives, request.main_object)
        )
        self.recorder = StepRecorder(self.route.pipeline.scheduler)
        self.answers: list[dict[str, object]] = []
        self.seconds = 0.0
        self._side: list[int | None] = []

    def preview(self) -> PIL.Image.Image:
        """What the oracle sees of x̂0 at this step."""
        if self.request.preview_mode == OFFICIAL_PREVIEW:
            return self.route.official_preview(self.route.spatial(self.recorder.official_estimate()))
        if not self._side:  # asked on the first question: the oracle loads its weights only when it is asked
            self._side.append(oracle_input_size(self.oracle))
        x0 = self.route.spatial(self.recorder.clean_estimate())
        x0 = shrink_latents(x0, self.settings.size, self._side[0])
        return fit_to_oracle(self.route.preview(x0), self._side[0])

    def ask(self, picture: PIL.Image.Image) -> list[str]:
        """Each question's `top_k` answers, rank by rank (the official loop: for each rank, each question)."""
        k = self.request.top_k
        if k == 1:
            known = self.negatives.words
            asked = (self.oracle.ask([picture], question, known) for question in self.questions)
            return [answer for answers in asked for answer in checked_answers(answers, self.oracle)]
        ranked = [
            checked_answers(self.oracle.ask_ranked(picture, question, k), self.oracle) for question in self.questions
        ]
        return [answers[rank] for rank in range(k) for answers in ranked if rank < len(answers)]

    def step(self, tensors: dict[str, torch.Tensor], step: int) -> tuple[dict, list[str]]:
        """The oracle asked at `step` (in the window): the tensors to replace and the words added."""
        raw = self.ask(self.preview())
        self.answers.extend({"step": step, "answer": answer} for answer in raw)
        added = self.negatives.add_answers(raw, step + 1)
        encode = bool(self.negatives.words) if self.request.official else bool(added)
        if encode and step + 1 < self.settings.steps:
            return self.route.with_negative(tensors, self.negatives.prompt()), added
        return {}, added

    def callback(self, on_step: Callable[[tuple[int, int, tuple[str, ...]]], Any] | None) -> Callable[..., dict]:
        steps = self.settings.steps

        def on_step_end(pipeline: Any, step: int, timestep: Any, tensors: dict[str, torch.Tensor]) -> dict:
            started = time.perf_counter()
            update, added = {}, []
            if step in self.window:
                update, added = self.step(tensors, step)
            elif self.request.clear_at_stop and step == self.stop and step + 1 < steps:
                self.negatives.clear(step + 1)
                update = self.route.with_negative(tensors, self.negatives.prompt())
            self.seconds += time.perf_counter() - started
            if on_step:
                on_step((step + 1, steps, tuple(added)))
            return update

        return on_step_end


def grid_image(records: tuple[ImageRecord, ...], caption: str) -> PIL.Image.Image:
    """The images in a row-major grid, each under its seed and negatives, below the prompt."""
    images = [PIL.Image.open(record.path).convert("RGB") for record in records]
    columns = min(4, len(images))
    rows = -(-len(images) // columns)
    width, height = images[0].size
    cell = height + CAPTION_HEIGHT
    grid = PIL.Image.new("RGB", (max(columns * width, 8 * len(caption) + 8), CAPTION_HEIGHT + rows * cell), "white")
    draw = PIL.ImageDraw.Draw(grid)
    draw.text((4, 1), caption, fill="black")
    for index, (image, record) in enumerate(zip(images, records, strict=True)):
        x, y = (index % columns) * width, CAPTION_HEIGHT + (index // columns) * cell
        words = ", ".join(str(entry["word"]) for entry in record.negatives) or "-"
        draw.text((x + 2, y + 1), f"{record.seed}: {words}"[: max(4, width // 6)], fill="black")
        grid.paste(image, (x, y + CAPTION_HEIGHT))
    return grid
