"""`blip2`: the paper's oracle, a BLIP-2 model asked what the concept's images show.

Loaded lazily on the first question, in half precision on a GPU. `--oracle-model` takes any BLIP-2 hub id or
folder; `tiny` is a small random BLIP-2 built locally for tests. Before loading, it tells how much device memory
it will take (`expected_bytes`), so `create` can decide to offload: BLIP-2 is as big as the prior.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from transformers import Blip2ForConditionalGeneration, Blip2Processor

from conceptlab.engine.adaptive.oracle import OracleOptions, Question
from conceptlab.plugins.oracles.lazy import LazyOracle

DEFAULT_MODEL = "Salesforce/blip2-flan-t5-xl"
MAX_ANSWER_TOKENS = 10
PUBLISHED_PARAMETERS = {
    "Salesforce/blip2-flan-t5-xl": 3_940_000_000,
    "Salesforce/blip2-flan-t5-xl-coco": 3_940_000_000,
    "Salesforce/blip2-opt-2.7b": 3_740_000_000,
    "Salesforce/blip2-opt-6.7b": 7_750_000_000,
    "Salesforce/blip2-flan-t5-xxl": 12_230_000_000,
}
"""Parameter counts of the published BLIP-2 models (ViT-g, Q-Former and language model, as the hub lists them):
the estimate for a model not on this machine yet. Any other model not on disk is assumed the default's size."""


class Blip2Oracle(LazyOracle):
    name = "blip2"
    title = "BLIP-2"
    default_model = DEFAULT_MODEL
    offline = "use --oracle clip-zeroshot"

    def __init__(self, loaded: Any, options: OracleOptions):
        super().__init__(loaded, options)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self._processor: Blip2Processor | None = None

    def published_parameters(self) -> int:
        return PUBLISHED_PARAMETERS.get(self.model_ref, PUBLISHED_PARAMETERS[DEFAULT_MODEL])

    def load_weights(self, reference: str) -> Blip2ForConditionalGeneration:
        self._processor = Blip2Processor.from_pretrained(reference, revision=self.revision)
        return Blip2ForConditionalGeneration.from_pretrained(reference, dtype=self.dtype, revision=self.revision)

    def input_size(self) -> int:
        """The square its processor resizes to (224 for the published models)."""
        self.loaded()
        return int(self._processor.image_processor.size["height"])

    @torch.inference_mode()
    def ask(self, images: list[Image.Image], question: Question, known: list[str]) -> list[str]:
        model = self.loaded().to(self.device)
        prompt = f"Question: {question.text} Answer:"
        inputs = self._processor(images=images, text=[prompt] * len(images), return_tensors="pt", padding=True)
        inputs = inputs.to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        output = model.generate(**inputs, max_new_tokens=MAX_ANSWER_TOKENS, do_sample=False)
        if model.config.use_decoder_only_language_model:
            output = output[:, inputs["input_ids"].shape[1] :]
        return [answer.strip() for answer in self._processor.batch_decode(output, skip_special_tokens=True)]


blip2_oracle = Blip2Oracle
"""The `conceptlab.oracles` entry point: the class is its own factory, with its `check_inputs`."""
