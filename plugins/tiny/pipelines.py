"""`tiny-sdxl`, `tiny-sd3` and `tiny-flux`: `conceptlab.pipelines` entries built locally from diffusers' fast-test
components (`sdxl.py`, `sd3.py`, `flux.py`), with tiny preview autoencoders (`taesd.py`, `flux.py`) and the tiny ViLT
oracle, so tests run offline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conceptlab.plugins.pipelines import FLUX_PIPELINE, SD3_PIPELINE, SDXL_PIPELINE, PipelineModel
from conceptlab.plugins.tiny import TINY


def _tiny_sdxl() -> Path:
    from conceptlab.plugins.tiny.sdxl import tiny_sdxl_folder

    return tiny_sdxl_folder()


def _tiny_sd3() -> Path:
    from conceptlab.plugins.tiny.sd3 import tiny_sd3_folder

    return tiny_sd3_folder()


def _tiny_flux() -> Path:
    from conceptlab.plugins.tiny.flux import tiny_flux_folder

    return tiny_flux_folder()


@dataclass(frozen=True)
class TinyPipelineModel(PipelineModel):
    """`build` makes (once) the pipeline folder its own name loads; `preview` names its tiny autoencoder."""

    build: Callable[[], Path] = _tiny_sdxl

    def reference(self, model: str) -> str:
        return str(self.build()) if model == self.name else model

    def preview_autoencoder(self) -> str | None:
        from conceptlab.plugins.tiny.taesd import tiny_taesd_folder

        return str(tiny_taesd_folder(self.preview))


TINY_SDXL = TinyPipelineModel(
    "tiny-sdxl", SDXL_PIPELINE, "tiny-sdxl", 10, 5.0, 64, default_oracle_model=TINY, preview="sdxl", build=_tiny_sdxl
)
TINY_SD3 = TinyPipelineModel(
    "tiny-sd3", SD3_PIPELINE, "tiny-sd3", 10, 4.5, 32, default_oracle_model=TINY, preview="sd3", build=_tiny_sd3
)


@dataclass(frozen=True)
class TinyFluxModel(TinyPipelineModel):
    def preview_autoencoder(self) -> str | None:
        from conceptlab.plugins.tiny.flux import tiny_taef1_folder

        return str(tiny_taef1_folder())


TINY_FLUX = TinyFluxModel(
    "tiny-flux",
    FLUX_PIPELINE,
    "tiny-flux",
    10,
    4.0,
    32,
    default_oracle_model=TINY,
    distilled_guidance=3.5,
    max_sequence_length=48,
    build=_tiny_flux,
)
