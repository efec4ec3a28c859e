"""Evolutionary generation: a child concept trained against images of its parents (the paper's `L_mix`).

`L = 1 - sum_i w_i mean_c cos(E_im(c), P(E_y(v)))` over each parent's images `c`. With unit image embeddings,
`mean_c cos(c, x) = (mean_c c) . x / |x|`, so each parent is one constraint row: the mean of its images' unit
CLIP embeddings; the engine's objective with no positive clamp is then exactly `L`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from conceptlab.engine.concept.file import Concept, check_concept_fits, load_concept
from conceptlab.engine.concept.lineage import lineage_record, parent_record
from conceptlab.engine.errors import UsageError
from conceptlab.engine.io.atomic import write_atomically
from conceptlab.engine.io.cache import cache_root
from conceptlab.engine.io.images import image_files, load_images, save_images
from conceptlab.engine.models.backend import DecoderStack, PriorStack
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, load_decoder, load_prior
from conceptlab.engine.models.offload import IDLE_DEVICE, Residency, prior_and_decoder_residency
from conceptlab.engine.prior.tokens import add_placeholder_token, check_new_token
from conceptlab.engine.rendering.render import RenderSettings, render_prompts, render_settings
from conceptlab.engine.rendering.sample import check_size
from conceptlab.engine.training.config import evolve_config
from conceptlab.engine.training.constraints import ImageConstraints
from conceptlab.engine.training.create import CreateResult, RunCallbacks, create
from conceptlab.engine.training.run_folder import RunFolder, default_run_dir

PARENT_PROMPT = "a photo of a {}"
PARENT_SEED_BASE = 1000
"""Parent images use seeds 1000, 1001, ...: fixed, and apart from the checkpoint images' 42 and 500."""


@dataclass
class Parent:
    """A parent as the child sees it: a label, its images' unit CLIP embeddings, and what the child records."""

    label: str
    embeds: torch.Tensor
    record: dict[str, Any]
    lineage: dict[str, Any]
    concept: Concept | None = None


@torch.inference_mode()
def image_embeddings(stack: PriorStack, images: list[Image.Image]) -> torch.Tensor:
    """Unit CLIP image embeddings `[n, dim]` (float32, CPU) from the backend's image encoder."""
    pixels = stack.image_processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
    embeds = stack.image_encoder(pixels.pixel_values.to(stack.device, stack.image_encoder.dtype)).image_embeds
    return F.normalize(embeds.float(), dim=-1).cpu()


def _render_key(loaded: LoadedPrior, decoder: DecoderStack | None, settings: RenderSettings, count: int) -> str:
    """What a parent's images depend on besides the parent: the prior (with its revision and text encoder), the
    decoder (its pipeline class and where it was loaded from), the render settings and the image count."""
    info = loaded.info
    pipeline = decoder.pipeline if decoder is not None else None
    decoder_identity = [type(pipeline).__name__, getattr(pipeline, "name_or_path", None)]
    description = json.dumps([asdict(info), decoder_identity, asdict(settings), count], sort_keys=True)
    return hashlib.sha256(description.encode()).hexdigest()[:12]


def concept_parent_embeds(
    loaded: LoadedPrior,
    decoder: DecoderStack,
    concept: Concept,
    count: int,
    settings: RenderSettings,
    on_image: Callable[[int], None] | None = None,
    before_phase: Callable[[str], None] | None = None,
) -> torch.Tensor:
    """Render `count` images of `concept` and embed them, cached by the concept's sha256, the models and the render
    settings. `before_phase` (a residency's `use`) puts the model each phase needs on the device."""
    folder = cache_root() / "parents" / f"{concept.sha256[:32]}-{_render_key(loaded, decoder, settings, count)}"
    cached = folder / "embeds.safetensors"
    if cached.exists():
        return load_safetensors(cached.read_bytes())["embeds"]
    token = f"<parent-{concept.sha256[:12]}>"
    if token not in loaded.stack.tokenizer.get_vocab():
        add_placeholder_token(loaded.stack.tokenizer, loaded.stack.text_encoder, token, concept.vector)
    seeds = [PARENT_SEED_BASE + index for index in range(count)]
    prompts = [PARENT_PROMPT.format(token)] * count
    images = render_prompts(
        loaded.stack, decoder, prompts, seeds, settings, on_image=on_image, before_phase=before_phase
    )
    if before_phase:
        before_phase("prior")  # the image encoder belongs with the prior
    embeds = image_embeddings(loaded.stack, images)
    save_images(images, folder, prefix="image-")
    write_atomically(cached, save_safetensors({"embeds": embeds.contiguous()}))
    return embeds


def _folder_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in image_files(folder):
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read_parent_concepts(paths: list[Path]) -> list[Concept | None]:
    """Load every concept parent (None for image folders) and refuse parents of different backends or widths."""
    if not paths:
        raise UsageError("evolve needs at least one parent: concept files or folders of images.")
    concepts = [None if path.is_dir() else load_concept(path) for path in paths]
    kinds = {(c.metadata.get("backend"), c.embedding_dim) for c in concepts if c is not None}
    if len(kinds) > 1:
        described = " vs ".join(f"{backend} (width {width})" for backend, width in sorted(kinds, key=str))
        raise UsageError(f"Parents were trained for different models: {described}; evolve parents of one backend.")
    return concepts


def _unique_labels(names: list[str]) -> list[str]:
    labels = []
    for name in names:
        label, index = name, 2
        while label in labels:
            label, index = f"{name}-{index}", index + 1
        labels.append(label)
    return labels


def gather_parents(
    loaded: LoadedPrior,
    decoder: DecoderStack | None,
    paths: list[Path],
    concepts: list[Concept | None],
    weights: tuple[float, ...],
    count: int,
    settings: RenderSettings,
    on_parent: Callable[[str, int, int], None] | None = None,
    residency: Residency | None = None,
) -> list[Parent]:
    """Each parent's image embeddings (rendered and cached for concepts, read for folders) and its records.

    Every concept parent is checked against the model before any is rendered; with a `residency`, only the model
    at work is on the GPU while they are.
    """
    for path, concept in zip(paths, concepts, strict=True):
        if concept is not None:
            check_concept_fits(concept, loaded.info, source=str(path))
    labels = _unique_labels([c.token if c else path.name for path, c in zip(paths, concepts, strict=True)])
    parents = []
    for label, path, concept, weight in zip(labels, paths, concepts, weights, strict=True):
        if concept is not None:

            def report(index: int, label: str = label) -> None:
                if on_parent:
                    on_parent(label, index + 1, count)

            before_phase = residency.use if residency else None
            embeds = concept_parent_embeds(loaded, decoder, concept, count, settings, report, before_phase)
            record = parent_record(concept, weight, path)
            parents.append(Parent(label, embeds, record, lineage_record(concept), concept))
        else:
            images = load_images(path)
            sha = _folder_sha256(path)
            record = {"token": label, "sha256": sha, "weight": weight, "path": str(path), "kind": "images"}
            lineage = {"token": label, "kind": "images", "images": len(images), "parents": [], "lineage": []}
            parents.append(Parent(label, image_embeddings(loaded.stack, images), record, lineage))
    return parents


def _default_model(concepts: list[Concept | None], model: ModelChoice) -> ModelChoice:
    """Without `--model` (`model.model` None), the model the concept parents were trained against."""
    made = [concept for concept in concepts if concept is not None]
    if model.model is None and not made:
        raise UsageError("All parents are image folders; say which prior to train with --model.")
    given = (model.model, model.backend, model.device, model.dtype, model.revision)
    return ModelChoice.for_concepts(made, *given, model.decoder, model.decoder_revision)


def _shared_category(concepts: list[Concept | None]) -> str | None:
    categories = {concept.metadata.get("category") for concept in concepts if concept is not None}
    return categories.pop() if len(categories) == 1 else None


def evolve(
    paths: list[Path],
    model: ModelChoice,
    *,
    weights: tuple[float, ...] | None = None,
    token: str | None = None,
    initializer: str | None = None,
    out: Path | None = None,
    force: bool = False,
    render: RenderSettings | None = None,
    callbacks: RunCallbacks | None = None,
    loaded: LoadedPrior | None = None,
    decoder: DecoderStack | None = None,
    offload: bool | None = None,
    **settings: Any,
) -> CreateResult:
    """Train a child of `paths` (concept files or image folders) and record its parents and their lineage.

    `model.model` None means the concept parents' own model. `settings` are `CreateConfig` fields
    (steps, seed, images_per_parent, ...). `loaded` and `decoder`, when given, are used instead of loading
    `model` (a batch reuses them across jobs). `offload` is `create`'s, for the parents' images too.
    """
    paths = [Path(path) for path in paths]
    concepts = read_parent_concepts(paths)
    labels = tuple(_unique_labels([c.token if c else p.name for p, c in zip(paths, concepts, strict=True)]))
    category = _shared_category(concepts)
    first = next((c for c in concepts if c is not None), None)
    digest = hashlib.sha256("".join(c.sha256 if c else p.name for p, c in zip(paths, concepts, strict=True)).encode())
    config = evolve_config(
        labels,
        weights,
        initializer=initializer or category or (first.metadata.get("initializer") if first else None) or "object",
        token=token or f"<evo-{digest.hexdigest()[:8]}>",
        category=category,
        **settings,
    )
    folder = RunFolder(Path(out) if out else default_run_dir(config.token), config.token)
    folder.check(force)
    choice = _default_model(concepts, model) if loaded is None or model.model is None else model
    loaded = loaded or load_prior(choice)
    check_new_token(loaded.stack.tokenizer, config.token)
    settings_used = render or render_settings(loaded.backend, size=config.image_size, steps=config.image_steps)
    if decoder is None and (first is not None or config.images):
        place = None if offload is False else IDLE_DEVICE
        decoder = load_decoder(loaded, choice.decoder, choice.decoder_revision, place=place)
    if decoder is not None:
        check_size(decoder, settings_used.size, "--image-size")
    parents = gather_parents(
        loaded,
        decoder,
        paths,
        concepts,
        config.normalized_weights,
        config.images_per_parent,
        settings_used,
        callbacks.on_parent_image if callbacks else None,
        prior_and_decoder_residency(loaded, decoder, offload) if decoder else None,
    )
    record = {"parents": [p.record for p in parents], "lineage": [p.lineage for p in parents]}
    return create(
        config,
        loaded,
        out=folder.path,
        force=force,
        callbacks=callbacks,
        render=settings_used,
        constraints=ImageConstraints({p.label: p.embeds.mean(dim=0) for p in parents}, loaded.stack.device),
        extra_metadata=record,
        decoder=decoder,
        offload=offload,
    )


def recorded_parent_folders(metadata: dict[str, Any]) -> dict[str, tuple[float, Path]] | None:
    """Label -> (weight, image folder) for each recorded parent, from this machine's render cache (concept
    parents) or the recorded folder (image parents); None when any parent's images are not here."""
    found: dict[str, tuple[float, Path]] = {}
    labels = _unique_labels([parent["token"] for parent in metadata.get("parents") or []])
    for label, parent in zip(labels, metadata.get("parents") or [], strict=True):
        if parent.get("kind") == "images":
            folder = Path(parent.get("path", ""))
        else:
            cached = sorted((cache_root() / "parents").glob(f"{parent['sha256'][:32]}-*/embeds.safetensors"))
            folder = cached[0].parent if cached else Path()
        if not folder.is_dir() or folder == Path():
            return None
        found[label] = (float(parent["weight"]), folder)
    return found or None
