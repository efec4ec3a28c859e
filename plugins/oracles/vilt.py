"""`vilt`: ViLT fine-tuned for VQA (`dandelin/vilt-b32-finetuned-vqa`, 118M parameters), the paper's oracle.

It classifies the question about the image over its answer vocabulary (3,129 answers on VQAv2) and answers the top
one. Loaded lazily on the first question; `--oracle-model tiny` is a tiny random ViLT built locally for tests.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from conceptlab.engine.adaptive.oracle import OracleOptions, Question
from conceptlab.plugins.oracles.lazy import LazyOracle

DEFAULT_MODEL = "dandelin/vilt-b32-finetuned-vqa"


class ViltOracle(LazyOracle):
    name = "vilt"
    title = "ViLT"
    default_model = DEFAULT_MODEL
    answers = "from its own vocabulary"

    def __init__(self, loaded: Any, options: OracleOptions):
        super().__init__(loaded, options)
        self._processor: Any = None

    def load_weights(self, reference: str) -> Any:
        from transformers import ViltForQuestionAnswering, ViltProcessor

        self._processor = ViltProcessor.from_pretrained(reference, revision=self.revision)
        return ViltForQuestionAnswering.from_pretrained(reference, revision=self.revision)

    def expected_bytes(self) -> int:
        """ViLT-B/32: about 118M float32 weights (it stays in float32)."""
        return 118_000_000 * 4

    def input_size(self) -> int:
        """The shortest edge its processor resizes to (384 for the VQA model)."""
        self.loaded()
        return int(self._processor.image_processor.size["shortest_edge"])

    @torch.inference_mode()
    def ask(self, images: list[Image.Image], question: Question, known: list[str]) -> list[str]:
        model = self.loaded()
        inputs = self._processor(images=images, text=[question.text] * len(images), return_tensors="pt", padding=True)
        logits = model(**inputs.to(self.device)).logits
        labels = model.config.id2label
        return [labels[int(index)] for index in logits.argmax(dim=-1)]

    @torch.inference_mode()
    def ask_ranked(self, image: Image.Image, question: Question, k: int) -> list[str]:
        """Its `k` best answers for one image, best first (the official `top_k`: the VQA pipeline's ranking)."""
        model = self.loaded()
        inputs = self._processor(images=[image], text=[question.text], return_tensors="pt")
        logits = model(**inputs.to(self.device)).logits[0]
        return [model.config.id2label[int(index)] for index in logits.topk(min(k, logits.numel())).indices]


vilt_oracle = ViltOracle
"""The `conceptlab.oracles` entry point: the class is its own factory, with its `check_inputs`."""
