"""`tiny-sdxl` and `tiny-sd3`: `conceptlab.pipelines` entries built locally from diffusers' fast-test components
(`sdxl.py`, `sd3.py`), with tiny preview autoencoders (`taesd.py`) and the tiny ViLT oracle, so tests run offline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conceptlab.plugins.pipelines import SD3_PIPELINE, SDXL_PIPELINE, PipelineModel
from conceptlab.plugins.tiny import TINY


def _tiny_sdxl() -> Path:
    from conceptlab.plugins.tiny.sdxl import tiny_sdxl_folder

    return tiny_sdxl_folder()


def _tiny_sd3() -> Path:
    from conceptlab.plugins.tiny.sd3 import tiny_sd3_folder

    return tiny_sd3_folder()


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
