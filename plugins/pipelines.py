"""The Stable Diffusion models `conceptlab imagine` runs (entry-point group `conceptlab.pipelines`).

Defaults are the paper's for SD3.5 (28 steps, guidance 4.5) and the model card's for SDXL (50 steps, guidance 5.0,
the pipeline's defaults). Previews decode with Ollin Boer Bohan's tiny autoencoders (`madebyollin/taesdxl`,
`madebyollin/taesd3`), loaded with diffusers' `AutoencoderTiny`. The tiny world's `tiny-sdxl` and `tiny-sd3` are
entries of the same kind (`plugins/tiny/pipelines.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

SDXL_PIPELINE = "StableDiffusionXLPipeline"
SD3_PIPELINE = "StableDiffusion3Pipeline"


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
