"""`qwen2.5-vl`: Qwen2.5-VL-Instruct (`Qwen/Qwen2.5-VL-3B-Instruct`) asked in its chat template, "Answer with a single
word." before the question, greedy decoding of a few new tokens.

The model is transformers' own `Qwen2_5_VLForConditionalGeneration`. Its inputs are built as transformers'
`Qwen2_5_VLProcessor` builds them (the chat template, then each `<|image_pad|>` repeated once per merged patch of the
image grid, and the token-type ids that mark the image tokens for M-RoPE) from the model's own tokenizer, image
processor and `chat_template.json`: the processor class itself cannot be made without torchvision, which it needs
only for videos. Loaded lazily on the first question; `--oracle-model tiny` is a tiny random Qwen2.5-VL built here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from conceptlab.engine.adaptive.oracle import OracleOptions, Question
from conceptlab.engine.imagine.official import QWEN_PROMPT
from conceptlab.plugins.oracles.lazy import LazyOracle

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"
PREFIX = "Answer with a single word."
MAX_ANSWER_TOKENS = 6
IMAGE_TOKEN = "<|image_pad|>"
PREVIEW_SIDE = 448
"""Preview side for Qwen, inside its processor's min and max pixels: 448 px is 16 x 16 merged patches (256 image
tokens). Its min pixels (56 x 56 for the real model) would leave too little to name."""
PUBLISHED_PARAMETERS = 3_750_000_000
"""Qwen2.5-VL-3B-Instruct's size as the hub lists it (3.75B): the estimate before its weights are on disk."""


def _chat_template(reference: str, revision: str | None, tokenizer: Any) -> str:
    """The processor's chat template (`chat_template.json`, else `.jinja`), else the tokenizer's own."""
    from transformers.utils import cached_file

    for name in ("chat_template.json", "chat_template.jinja"):
        path = cached_file(reference, name, revision=revision, _raise_exceptions_for_missing_entries=False)
        if path:
            text = Path(path).read_text(encoding="utf-8")
            return json.loads(text)["chat_template"] if name.endswith(".json") else text
    if tokenizer.chat_template:
        return tokenizer.chat_template
    raise OSError(f"{reference} has no chat template")


class QwenVLOracle(LazyOracle):
    name = "qwen2.5-vl"
    title = "Qwen2.5-VL"
    default_model = DEFAULT_MODEL

    def __init__(self, loaded: Any, options: OracleOptions):
        super().__init__(loaded, options)
        cuda = self.device.type == "cuda"
        self.dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
        self._tokenizer: Any = None
        self._image_processor: Any = None
        self._template = ""

    def load_weights(self, reference: str) -> Any:
        from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

        self._tokenizer = AutoTokenizer.from_pretrained(reference, revision=self.revision, padding_side="left")
        self._image_processor = AutoImageProcessor.from_pretrained(reference, revision=self.revision)
        self._template = _chat_template(reference, self.revision, self._tokenizer)
        return Qwen2_5_VLForConditionalGeneration.from_pretrained(reference, dtype=self.dtype, revision=self.revision)

    def published_parameters(self) -> int:
        return PUBLISHED_PARAMETERS

    def input_size(self) -> int:
        """The preview side: `PREVIEW_SIDE` within the image processor's min and max pixels, whole merged patches."""
        self.loaded()
        processor = self._image_processor
        factor = processor.patch_size * processor.merge_size
        low, high = math.isqrt(processor.size.shortest_edge), math.isqrt(processor.size.longest_edge)
        return max(factor, min(max(PREVIEW_SIDE, low), high) // factor * factor)

    @staticmethod
    def prompt(question: Question) -> str:
        """Ours: "Answer with a single word. QUESTION"; the official code's has a newline before the question."""
        return QWEN_PROMPT.format(question=question.text) if question.official else f"{PREFIX} {question.text}"

    def inputs(self, images: list[Image.Image], question: Question) -> dict[str, torch.Tensor]:
        """What `Qwen2_5_VLProcessor` would give the model for each image with the prompt."""
        self.loaded()
        message = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.prompt(question)}]}]
        text = self._tokenizer.apply_chat_template(
            message, chat_template=self._template, tokenize=False, add_generation_prompt=True
        )
        pixels = self._image_processor(images=images, return_tensors="pt")
        merged = self._image_processor.merge_size**2
        texts = [
            text.replace(IMAGE_TOKEN, IMAGE_TOKEN * (int(grid.prod()) // merged)) for grid in pixels["image_grid_thw"]
        ]
        encoded = self._tokenizer(texts, return_tensors="pt", padding=True)
        image_token = self._tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        mm_token_type_ids = (encoded["input_ids"] == image_token).long()
        return {**encoded, **pixels, "mm_token_type_ids": mm_token_type_ids}

    @torch.inference_mode()
    def ask(self, images: list[Image.Image], question: Question, known: list[str]) -> list[str]:
        inputs = {name: value.to(self.device) for name, value in self.inputs(images, question).items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self._model.dtype)
        output = self._model.generate(**inputs, max_new_tokens=MAX_ANSWER_TOKENS, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [answer.strip() for answer in self._tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


qwen_vl_oracle = QwenVLOracle
"""The `conceptlab.oracles` entry point: the class is its own factory, with its `check_inputs`."""
