"""`blip2`: the paper's oracle, a BLIP-2 model asked what the concept's images show.

Loaded lazily on the first question, in half precision on a GPU. `--oracle-model` takes any BLIP-2 hub id or
folder; `tiny` is a small random BLIP-2 built locally for tests.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from transformers import Blip2ForConditionalGeneration, Blip2Processor

from conceptlab.engine.errors import BackendError, UsageError
from conceptlab.engine.loading import LoadedPrior
from conceptlab.engine.oracle import OracleOptions, Question
from conceptlab.plugins.tiny import cached_build

DEFAULT_MODEL = "Salesforce/blip2-flan-t5-xl"
MAX_ANSWER_TOKENS = 10


def tiny_blip2_folder() -> Path:
    from conceptlab.plugins import tiny_blip2

    return cached_build("tiny-blip2", Path(tiny_blip2.__file__), tiny_blip2.save_tiny_blip2)


class Blip2Oracle:
    name = "blip2"

    @staticmethod
    def check_inputs(question: Question, options: OracleOptions) -> None:
        """BLIP-2 answers in its own words: refuse a --vocab it would ignore."""
        if options.vocab_file is not None:
            raise UsageError(
                f"--vocab {options.vocab_file} is a word list for clip-zeroshot; blip2 answers in its own words. "
                "Add --oracle clip-zeroshot or drop --vocab."
            )

    def __init__(self, loaded: LoadedPrior, options: OracleOptions):
        self.model_ref = options.model or DEFAULT_MODEL
        self.device = loaded.stack.device
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self._processor: Blip2Processor | None = None
        self._model: Blip2ForConditionalGeneration | None = None

    def _load(self) -> None:
        reference = str(tiny_blip2_folder()) if self.model_ref == "tiny" else self.model_ref
        try:
            self._processor = Blip2Processor.from_pretrained(reference)
            model = Blip2ForConditionalGeneration.from_pretrained(reference, dtype=self.dtype)
        except (OSError, ValueError) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise BackendError(
                f"Could not load the BLIP-2 oracle {self.model_ref!r} ({reason[:160]}); download it, pass a folder "
                "with --oracle-model, or use --oracle clip-zeroshot."
            ) from None
        self._model = model.to(self.device).eval()

    @property
    def model(self) -> Blip2ForConditionalGeneration | None:
        """The loaded model, or None before the first question."""
        return self._model

    def modules(self) -> list[torch.nn.Module]:
        """What a caller may park on the CPU between questions (the next question brings it back)."""
        return [self._model] if self._model is not None else []

    @torch.inference_mode()
    def ask(self, images: list[Image.Image], question: Question, known: list[str]) -> list[str]:
        if self._model is None:
            self._load()
        self._model.to(self.device)
        prompt = f"Question: {question.text} Answer:"
        inputs = self._processor(images=images, text=[prompt] * len(images), return_tensors="pt", padding=True)
        inputs = inputs.to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self._model.dtype)
        output = self._model.generate(**inputs, max_new_tokens=MAX_ANSWER_TOKENS, do_sample=False)
        if self._model.config.use_decoder_only_language_model:
            output = output[:, inputs["input_ids"].shape[1] :]
        return [answer.strip() for answer in self._processor.batch_decode(output, skip_special_tokens=True)]


blip2_oracle = Blip2Oracle
"""The `conceptlab.oracles` entry point: the class is its own factory, with its `check_inputs`."""
