"""The prior stacks the step benchmark times (`conceptlab.benchmark_stacks`): random weights with the real widths
of Kandinsky 2.1 and 2.2, and the tiny world's own prior.

No weights are downloaded or written: the models are built in memory from configs that match the hub's
(`kandinsky-community/kandinsky-2-1-prior` and `-2-2-prior`: `text_encoder/config.json`, `prior/config.json`,
`image_encoder/config.json`; for 2.1 also the decoder's M-CLIP text encoder, XLM-RoBERTa large projected to 768,
"XLM-Roberta-Large-Vit-L-14 - 560M" in ai-forever/Kandinsky-2's README; ours builds to 560.7 M parameters; the
official ConceptLab code re-encodes every constraint through it on every step). Timing and memory depend on the
shapes, not on the values, so a random stack costs what the real one does per step. Depth can be cut
(`text_layers`, `prior_layers`, `vision_layers`) for a CPU; the widths, the vocabulary and the sequence lengths
never are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from diffusers import PriorTransformer, UnCLIPScheduler
from diffusers.pipelines.kandinsky.text_encoder import MCLIPConfig, MultilingualCLIP
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from conceptlab.engine.benchmark.subjects import DepthCut
from conceptlab.engine.errors import UsageError
from conceptlab.engine.models.backend import DecoderStack, PriorStack, model_info
from conceptlab.engine.models.devices import dtype_name
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, load_decoder, load_prior
from conceptlab.engine.models.plugins import load_backend
from conceptlab.plugins.benchmark.create_world import build_decoder
from conceptlab.plugins.tiny.world import build_tokenizer

CLIP_VOCAB_SIZE = 49408
"""Rows of CLIP's token-embedding matrix; what the official code's AdamW updates every step."""


@dataclass(frozen=True)
class StackShape:
    """The architecture of one prior stack: CLIP text encoder, `PriorTransformer`, CLIP image encoder."""

    name: str
    text: dict = field(default_factory=dict)
    prior: dict = field(default_factory=dict)
    vision: dict = field(default_factory=dict)
    constraint_text: dict | None = None
    """The official code's constraint text encoder when it is not the prior's CLIP (2.1: M-CLIP)."""

    @property
    def text_layers(self) -> int:
        return int(self.text["num_hidden_layers"])

    @property
    def prior_layers(self) -> int:
        return int(self.prior["num_layers"])

    @property
    def vision_layers(self) -> int:
        return int(self.vision["num_hidden_layers"])


_PRIOR_COMMON = {"num_attention_heads": 32, "attention_head_dim": 64, "num_layers": 20, "num_embeddings": 77}

REAL_WIDTH_STACKS: dict[str, StackShape] = {
    "kandinsky-2.1": StackShape(
        name="kandinsky-2.1",
        # CLIP ViT-L/14 text tower
        text={
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "projection_dim": 768,
            "hidden_act": "quick_gelu",
        },
        prior={**_PRIOR_COMMON, "embedding_dim": 768},
        # XLM-RoBERTa large (the 2.1 decoder's text_encoder), projected from 1024 to 768 by M-CLIP
        constraint_text={
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "vocab_size": 250002,
            "max_position_embeddings": 514,
            "type_vocab_size": 1,
            "pad_token_id": 1,
            "layer_norm_eps": 1e-5,
            "transformerDimSize": 1024,
            "imageDimSize": 768,
        },
        vision={
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
            "projection_dim": 768,
            "hidden_act": "quick_gelu",
        },
    ),
    "kandinsky-2.2": StackShape(
        name="kandinsky-2.2",
        # CLIP ViT-bigG/14 text tower
        text={
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "num_hidden_layers": 32,
            "num_attention_heads": 20,
            "projection_dim": 1280,
            "hidden_act": "gelu",
        },
        prior={**_PRIOR_COMMON, "embedding_dim": 1280},
        vision={
            "hidden_size": 1664,
            "intermediate_size": 8192,
            "num_hidden_layers": 48,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
            "projection_dim": 1280,
            "hidden_act": "gelu",
        },
    ),
}


def _real_size_tokenizer():
    """A CLIP BPE tokenizer padded to CLIP's 49,408 entries, so a new token gets id 49408 as on the real model."""
    tokenizer = build_tokenizer()
    tokenizer.add_tokens([f"<unused-{index}>" for index in range(CLIP_VOCAB_SIZE - len(tokenizer))])
    return tokenizer


def build_real_width_stack(
    shape: StackShape,
    device: torch.device,
    dtype: torch.dtype,
    *,
    text_layers: int | None = None,
    prior_layers: int | None = None,
    vision_layers: int | None = None,
    seed: int = 0,
) -> PriorStack:
    """Build `shape` with random weights; a `*_layers` of None keeps that model's real depth."""
    tokenizer = _real_size_tokenizer()
    with torch.random.fork_rng(devices=[]), torch.device(device):  # initialised where they run (a GPU: seconds)
        torch.manual_seed(seed)
        text_config = CLIPTextConfig(
            **{**shape.text, "num_hidden_layers": text_layers or shape.text_layers},
            vocab_size=CLIP_VOCAB_SIZE,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=2,  # the legacy value the real Kandinsky prior text encoders ship
            pad_token_id=1,
        )
        text_encoder = CLIPTextModelWithProjection(text_config)
        prior = PriorTransformer(**{**shape.prior, "num_layers": prior_layers or shape.prior_layers})
        # A fresh PriorTransformer has clip_std = 0 and zero positional embeddings (DESIGN.md); give it values.
        torch.nn.init.normal_(prior.positional_embedding, std=0.02)
        torch.nn.init.normal_(prior.prd_embedding, std=0.02)
        prior.clip_std.data.fill_(1.0)
        vision_config = CLIPVisionConfig(**{**shape.vision, "num_hidden_layers": vision_layers or shape.vision_layers})
        image_encoder = CLIPVisionModelWithProjection(vision_config)
    for module in (text_encoder, prior, image_encoder):
        module.to(device=device, dtype=dtype).requires_grad_(False).eval()
    scheduler = UnCLIPScheduler(
        variance_type="fixed_small_log",
        prediction_type="sample",
        num_train_timesteps=1000,
        clip_sample=True,
        clip_sample_range=10.0,
    )
    return PriorStack(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        prior=prior,
        scheduler=scheduler,
        image_encoder=image_encoder,
        image_processor=CLIPImageProcessor(),
        device=device,
        dtype=dtype,
    )


class MclipConstraints:
    """Unit M-CLIP embeddings of prompts, as the official code's `get_normed_embeds` computes them every step.

    The prompts are tokenized with the stack's CLIP tokenizer to the official 77 tokens with their attention
    mask: a stand-in for the XLM-R tokenizer (no vocabulary file is at hand), same shapes, so the same cost.
    """

    def __init__(self, model: MultilingualCLIP, tokenizer):
        self.model, self.tokenizer = model, tokenizer

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        device = next(self.model.parameters()).device
        embeds, _ = self.model(tokens.input_ids.to(device), tokens.attention_mask.to(device))
        return embeds / embeds.norm(p=2, dim=-1, keepdim=True)


def build_constraint_encoder(
    shape: StackShape, stack: PriorStack, *, layers: int | None = None, seed: int = 1
) -> MclipConstraints | None:
    """The official constraint encoder of `shape` with random weights (None: the prior's own CLIP)."""
    if shape.constraint_text is None:
        return None
    config = dict(shape.constraint_text)
    config["num_hidden_layers"] = layers or config["num_hidden_layers"]
    with torch.random.fork_rng(devices=[]), torch.device(stack.device):
        torch.manual_seed(seed)
        model = MultilingualCLIP(MCLIPConfig(**config))
    model.to(device=stack.device, dtype=stack.dtype).requires_grad_(False).eval()
    return MclipConstraints(model, stack.tokenizer)


@dataclass(frozen=True)
class RealWidthStack:
    """A stack of `shape`'s widths with random weights, its depth cut for a CPU unless the run is full."""

    shape: StackShape
    backend: str | None = None
    """The backend whose loading code the stack stands for, when a random decoder of its widths exists (2.2): the
    adaptive `create` of `bench --gpu-check` trains, renders and asks on it."""
    gpu_check_budget_s: float | None = None
    """Seconds on one H100 for `bench --gpu-check`'s step row of this stack (None: the runner's default)."""

    def depth(self, cut: DepthCut | None) -> dict[str, int | str]:
        shape = self.shape
        mclip = shape.constraint_text["num_hidden_layers"] if shape.constraint_text else None
        if cut is None:
            depth = {"text_encoder_layers": shape.text_layers, "prior_layers": shape.prior_layers, "cut": "none (full)"}
            return depth | ({"mclip_layers": mclip} if mclip else {})
        text, prior = cut.text_layers, cut.prior_layers
        line = f"text {text}/{shape.text_layers}, prior {prior}/{shape.prior_layers} layers"
        depth = {"text_encoder_layers": text, "prior_layers": prior, "cut": line}
        if mclip:
            depth |= {"mclip_layers": text, "cut": f"{line}, M-CLIP {text}/{mclip}"}
        return depth

    def build(self, device: torch.device, dtype: torch.dtype, cut: DepthCut | None) -> PriorStack:
        return build_real_width_stack(self.shape, device, dtype, **(asdict(cut) if cut else {}))

    def constraint_encoder(self, stack: PriorStack, cut: DepthCut | None) -> MclipConstraints | None:
        """2.1: M-CLIP, cut like the text encoder; 2.2: none (the prior's CLIP)."""
        return build_constraint_encoder(self.shape, stack, layers=cut.text_layers if cut else None)

    def world(self, device: torch.device, dtype: torch.dtype, cut: DepthCut | None) -> tuple[LoadedPrior, DecoderStack]:
        """The prior (loaded as `backend`'s) and a random decoder of the real widths, both on `device`."""
        if self.backend is None:
            raise UsageError(f"{self.shape.name} has no random decoder of its widths here; use kandinsky-2.2.")
        stack = self.build(device, dtype, cut)
        backend = load_backend(self.backend)
        loaded = LoadedPrior(backend, stack, model_info(backend, "random, real widths", None, stack))
        return loaded, build_decoder(stack.embedding_dim, device, dtype, cut is not None)


@dataclass(frozen=True)
class BackendStack:
    """A backend's own prior, whole (the tiny world's is small enough on any machine)."""

    backend: str
    layers: dict[str, int | str]

    def depth(self, cut: DepthCut | None) -> dict[str, int | str]:
        return dict(self.layers)

    def build(self, device: torch.device, dtype: torch.dtype, cut: DepthCut | None) -> PriorStack:
        return load_backend(self.backend).load_prior(self.backend, device, dtype)

    def constraint_encoder(self, stack: PriorStack, cut: DepthCut | None) -> None:
        return None

    def world(self, device: torch.device, dtype: torch.dtype, cut: DepthCut | None) -> tuple[LoadedPrior, DecoderStack]:
        """The backend's prior and its default decoder, as `create` loads them."""
        loaded = load_prior(ModelChoice(self.backend, device=str(device), dtype=dtype_name(dtype)))
        return loaded, load_decoder(loaded)


KANDINSKY_21 = RealWidthStack(REAL_WIDTH_STACKS["kandinsky-2.1"], gpu_check_budget_s=85.0)
KANDINSKY_22 = RealWidthStack(REAL_WIDTH_STACKS["kandinsky-2.2"], backend="kandinsky-2.2")
TINY_WORLD = BackendStack(
    "tiny", {"text_encoder_layers": 2, "prior_layers": 2, "cut": "none (the tiny world, 64 wide)"}
)
"""The `conceptlab.benchmark_stacks` entries."""
