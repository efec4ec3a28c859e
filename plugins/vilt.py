"""`vilt`: ViLT fine-tuned for VQA (`dandelin/vilt-b32-finetuned-vqa`, 118M parameters), the paper's oracle.

It classifies the question about the image over its answer vocabulary (3,129 answers on VQAv2) and answers the top
one. Loaded lazily on the first question; `--oracle-model tiny` is a tiny random ViLT built locally for tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from conceptlab.engine.adaptive.oracle import OracleOptions, Question
from conceptlab.engine.errors import BackendError, UsageError
from conceptlab.plugins.tiny import cached_build

DEFAULT_MODEL = "dandelin/vilt-b32-finetuned-vqa"


def tiny_vilt_folder() -> Path:
    from conceptlab.plugins import tiny_vilt

    return cached_build("tiny-vilt", (Path(tiny_vilt.__file__),), tiny_vilt.save_tiny_vilt)


class ViltOracle:
    name = "vilt"

    @staticmethod
    def check_inputs(question: Question, options: OracleOptions) -> None:
        if options.vocab_file is not None:
            raise UsageError(
                f"--vocab {options.vocab_file} is a word list for clip-zeroshot; vilt answers from its own "
                "vocabulary. Add --oracle clip-zeroshot or drop --vocab."
            )

    def __init__(self, loaded: Any, options: OracleOptions):
        self.model_ref = options.model or DEFAULT_MODEL
        self.device = loaded.stack.device
        self._processor: Any = None
        self._model: Any = None

    def _load(self) -> None:
        from transformers import ViltForQuestionAnswering, ViltProcessor

        reference = str(tiny_vilt_folder()) if self.model_ref == "tiny" else self.model_ref
        try:
            self._processor = ViltProcessor.from_pretrained(reference)
            self._model = ViltForQuestionAnswering.from_pretrained(reference).to(self.device).eval()
        except (OSError, ValueError) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise BackendError(
                f"Could not load the ViLT oracle {self.model_ref!r} ({reason[:160]}); download it, pass a folder "
                "with --oracle-model, or use --oracle-model tiny offline."
            ) from None

    def modules(self) -> list[torch.nn.Module]:
        return [self._model] if self._model is not None else []

    def expected_bytes(self) -> int:
        """ViLT-B/32: about 118M float32 weights (it stays in float32)."""
        return 118_000_000 * 4

    @torch.inference_mode()
    def ask(self, images: list[Image.Image], question: Question, known: list[str]) -> list[str]:
        if self._model is None:
            self._load()
        inputs = self._processor(images=images, text=[question.text] * len(images), return_tensors="pt", padding=True)
        logits = self._model(**inputs.to(self.device)).logits
        labels = self._model.config.id2label
        return [labels[int(index)] for index in logits.argmax(dim=-1)]


vilt_oracle = ViltOracle
"""The `conceptlab.oracles` entry point: the class is its own factory, with its `check_inputs`."""
