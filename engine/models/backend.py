"""What a backend provides to the engine. Backends live in plugins and are found through entry points."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

BACKEND_GROUP = "conceptlab.backends"
"""The entry-point group backends register under."""


@dataclass
class PriorStack:
    """The diffusion prior and the CLIP models around it, loaded on one device in one dtype."""

    tokenizer: Any
    text_encoder: Any
    prior: Any
    scheduler: Any
    image_encoder: Any
    image_processor: Any
    device: torch.device
    dtype: torch.dtype

    @property
    def embedding_dim(self) -> int:
        return int(self.text_encoder.get_input_embeddings().embedding_dim)


@dataclass
class DecoderStack:
    """The decoder side of a backend (image embedding in, pixels out), loaded on one device in one dtype.

    `pipeline` is the diffusers decoder pipeline itself (`KandinskyV22Pipeline`, `KandinskyPipeline`), loaded with
    `from_pretrained`; rendering calls it, so our images are diffusers' images.
    """

    pipeline: Any
    device: torch.device
    dtype: torch.dtype
    source: str | None = None
    """The hub id, backend name or local folder it was loaded from (what a concept records as its decoder)."""
    revision: str | None = None

    @property
    def image_embedding_dim(self) -> int:
        """Width of the image embeddings the decoder takes (the prior's output width must match).

        A 2.2 UNet (`image_proj`) projects the image embedding from `encoder_hid_dim`; a 2.1 UNet
        (`text_image_proj`) takes its text (M-CLIP, `encoder_hid_dim` wide) and image embeddings
        `cross_attention_dim` wide, as diffusers' `TextImageProjection` is built.
        """
        unet = self.pipeline.unet.config
        if unet.encoder_hid_dim_type == "image_proj":
            return int(unet.encoder_hid_dim)
        return int(unet.cross_attention_dim)

    @property
    def size_multiple(self) -> int:
        """Image sizes must be multiples of this: the MoVQ scale factor squared and the UNet's downsampling."""
        movq_scale = self.pipeline.movq_scale_factor
        unet_scale = 2 ** (len(self.pipeline.unet.config.block_out_channels) - 1)
        return math.lcm(movq_scale * movq_scale, movq_scale * unet_scale)


@dataclass(frozen=True)
class ModelInfo:
    """What a concept was trained against; recorded in its file so a mismatch is caught on load."""

    backend: str
    model: str
    revision: str | None
    embedding_dim: int
    text_encoder_fingerprint: str


@runtime_checkable
class Backend(Protocol):
    """A family of models (Kandinsky 2.1, 2.2, the tiny test world) the engine can train against."""

    name: str
    default_model: str
    recommended_learning_rate: float
    default_oracle: str
    """The oracle `create --adaptive` asks unless `--oracle` names another."""
    default_decoder: str
    recommended_render: dict[str, Any]
    """Render settings (field names of `RenderSettings`) this backend prefers to the general defaults; may be empty."""
    default_constraint_encoder: str
    """`mclip` (the decoder's own text encoder embeds the constraints, as the official code does on 2.1) or `prior`
    (the prior's CLIP `text_embeds`), unless `--constraint-encoder` says otherwise."""
    known_words: Mapping[str, tuple[str, ...]] | None
    """The members of each category this backend's models were trained to know, where that is a closed list (the
    tiny world's); None: the built-in lists. The clip-zeroshot oracle chooses among them unless `--vocab` is given."""
    evaluation_clip: str
    """The evaluator (a `conceptlab.evaluators` name) that scores this backend's images unless `--clip` names
    another: "clip", the paper's CLIP, unless the backend brings a CLIP of its own (the tiny backend does)."""
    default_for: tuple[str, ...]
    """What it is the default model of, when --model is left out: "concepts" (training and rendering concepts),
    "imagine"; one installed plugin claims each (`plugins.declared_default`)."""
    decoder_step_callback: bool
    """Whether its decoder pipeline takes diffusers' `callback_on_step_end`, which `imagine` steers through."""
    imagine_oracle: str
    """The oracle `imagine` asks with this backend unless `--oracle` names another."""
    default_sd: str | None
    """The Stable Diffusion weights a baseline of the settings role "sd" runs for this backend; None: its own
    default."""

    def first_use(self) -> str | None:
        """What a first use builds before anything loads (a locally built model), while it is not built; else None."""
        ...

    def load_prior(
        self, model: str, device: torch.device, dtype: torch.dtype, revision: str | None = None
    ) -> PriorStack:
        """Load the prior stack from a hub id or a local folder; raise `BackendError` with one line if absent."""
        ...

    def load_decoder(
        self, model: str | None, device: torch.device, dtype: torch.dtype, revision: str | None = None
    ) -> DecoderStack:
        """Load the decoder (`None`: `default_decoder`) from a hub id or a local folder, like `load_prior`."""
        ...

    def constraint_embedder(self, decoder: DecoderStack, device: torch.device) -> Callable[[list[str]], torch.Tensor]:
        """Prompts -> `[n, dim]` embeddings (on `device`) from the decoder's text encoder (2.1's M-CLIP), for
        `--constraint-encoder mclip`; raise `UsageError` with one line if the backend has none."""
        ...


def text_encoder_fingerprint(text_encoder: Any) -> str:
    """A short hash of the token-embedding matrix, robust to the dtype the model was loaded in.

    Rows are rounded to bfloat16 first: weights stored in float16 and loaded as float32, float16 or bfloat16
    all give the same bytes, while a different text encoder (another model, another vocabulary) does not.
    """
    return embedding_fingerprint(text_encoder.get_input_embeddings().weight)


def embedding_fingerprint(weight: torch.Tensor) -> str:
    """`text_encoder_fingerprint` of a token-embedding matrix."""
    weight = weight.detach()
    sample = weight[:: max(1, weight.shape[0] // 64)][:64].float().cpu().to(torch.bfloat16)
    digest = hashlib.sha256(str(tuple(weight.shape)).encode())
    digest.update(sample.view(torch.int16).numpy().tobytes())
    return digest.hexdigest()[:16]


def model_info(backend: Backend, model: str, revision: str | None, stack: PriorStack) -> ModelInfo:
    return ModelInfo(
        backend=backend.name,
        model=model,
        revision=revision,
        embedding_dim=stack.embedding_dim,
        text_encoder_fingerprint=text_encoder_fingerprint(stack.text_encoder),
    )
