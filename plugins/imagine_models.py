"""The Stable Diffusion models `conceptlab imagine` runs (entry-point group `conceptlab.pipelines`).

Defaults are the paper's for SD3.5 (28 steps, guidance 4.5) and the model card's for SDXL (50 steps, guidance 5.0,
the pipeline's defaults). Previews decode with Ollin Boer Bohan's tiny autoencoders (`madebyollin/taesdxl`,
`madebyollin/taesd3`), loaded with diffusers' `AutoencoderTiny`. `tiny-sdxl` and `tiny-sd3` are built locally from
diffusers' fast-test components, with a tiny ViLT oracle, so tests run offline.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PipelineModel:
    name: str
    family: str
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


@dataclass(frozen=True)
class TinyPipelineModel(PipelineModel):
    def reference(self, model: str) -> str:
        if model != self.name:
            return model
        if self.family == "sdxl":
            from conceptlab.plugins.tiny_sdxl import tiny_sdxl_folder

            return str(tiny_sdxl_folder())
        from conceptlab.plugins.tiny_sd3 import tiny_sd3_folder

        return str(tiny_sd3_folder())

    def preview_autoencoder(self) -> str | None:
        from conceptlab.plugins.tiny_taesd import tiny_taesd_folder

        return str(tiny_taesd_folder(self.family))


SDXL = PipelineModel(
    "sdxl", "sdxl", "stabilityai/stable-diffusion-xl-base-1.0", 50, 5.0, 1024, preview="madebyollin/taesdxl"
)
SD35 = PipelineModel(
    "sd3.5", "sd3", "stabilityai/stable-diffusion-3.5-large", 28, 4.5, 1024, preview="madebyollin/taesd3"
)
TINY_SDXL = TinyPipelineModel("tiny-sdxl", "sdxl", "tiny-sdxl", 10, 5.0, 64, default_oracle_model="tiny")
TINY_SD3 = TinyPipelineModel("tiny-sd3", "sd3", "tiny-sd3", 10, 4.5, 32, default_oracle_model="tiny")
