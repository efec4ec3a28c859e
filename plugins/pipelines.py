"""The diffusers pipelines `conceptlab imagine` runs (entry-point group `conceptlab.pipelines`).

Defaults are the paper's for SD3.5 (28 steps, guidance 4.5) and the model card's for SDXL (50 steps, guidance 5.0,
the pipeline's defaults). FLUX.1 is guidance-distilled: its negatives act only through true classifier-free guidance
(`true_cfg_scale`, which `--guidance` sets here, 4.0 by default, the value diffusers' FLUX IP-Adapter tests use with a
negative prompt), beside the distilled guidance embedding (`guidance_scale`: FluxPipeline's default 3.5 for dev;
schnell has no guidance embedding); steps are FluxPipeline's default 28 for dev and the model card's 4 for schnell,
T5 tokens 512 and 256 (schnell's limit). Previews decode with Ollin Boer Bohan's tiny autoencoders
(`madebyollin/taesdxl`, `madebyollin/taesd3`, `madebyollin/taef1`), loaded with diffusers' `AutoencoderTiny`. The
tiny world's `tiny-sdxl`, `tiny-sd3` and `tiny-flux` are entries of the same kind (`plugins/tiny/pipelines.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

SDXL_PIPELINE = "StableDiffusionXLPipeline"
SD3_PIPELINE = "StableDiffusion3Pipeline"
FLUX_PIPELINE = "FluxPipeline"


@dataclass(frozen=True)
class PipelineModel:
    name: str
    family: str
    """The diffusers pipeline class that loads it (`SDXL_PIPELINE`, `SD3_PIPELINE`)."""
    default_model: str
    steps: int
    guidance: float
    size: int
    default_oracle: str = "vilt"
    default_oracle_model: str | None = None
    preview: str | None = None
    distilled_guidance: float | None = None
    """FLUX: the guidance embedding's value (`guidance_scale`); `guidance` is then true CFG's scale."""
    max_sequence_length: int | None = None
    """FLUX: T5 tokens per prompt."""

    def reference(self, model: str) -> str:
        return self.default_model if model == self.name else model

    def preview_autoencoder(self) -> str | None:
        return self.preview


SDXL = PipelineModel(
    "sdxl", SDXL_PIPELINE, "stabilityai/stable-diffusion-xl-base-1.0", 50, 5.0, 1024, preview="madebyollin/taesdxl"
)
SD35 = PipelineModel(
    "sd3.5", SD3_PIPELINE, "stabilityai/stable-diffusion-3.5-large", 28, 4.5, 1024, preview="madebyollin/taesd3"
)
FLUX_DEV = PipelineModel(
    "flux.1-dev",
    FLUX_PIPELINE,
    "black-forest-labs/FLUX.1-dev",
    28,
    4.0,
    1024,
    preview="madebyollin/taef1",
    distilled_guidance=3.5,
    max_sequence_length=512,
)
FLUX_SCHNELL = PipelineModel(
    "flux.1-schnell",
    FLUX_PIPELINE,
    "black-forest-labs/FLUX.1-schnell",
    4,
    4.0,
    1024,
    preview="madebyollin/taef1",
    distilled_guidance=0.0,
    max_sequence_length=256,
)
