"""`clip-zeroshot`: a light oracle that names the closest word of a vocabulary with the backend's own CLIP.

For machines where BLIP-2 does not fit: it reuses the prior's CLIP text encoder and image encoder, which share
one embedding space, so it loads nothing new.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image

from conceptlab.engine.adaptive.oracle import OracleOptions, Question
from conceptlab.engine.adaptive.vocabulary import CATEGORY_MEMBERS, vocabulary_for
from conceptlab.engine.errors import UsageError
from conceptlab.engine.models.loading import LoadedPrior
from conceptlab.engine.prior.tokens import encode_prompts

OBJECT_PROMPT = "a photo of a {}"
STYLE_PROMPT = "a painting in the style of {}"


class ClipZeroShotOracle:
    name = "clip-zeroshot"

    @staticmethod
    def check_inputs(question: Question, options: OracleOptions) -> None:
        """A vocabulary to choose from (a built-in list for the category, or a readable, non-empty --vocab), and
        no --oracle-model, which this oracle would ignore."""
        if options.model is not None:
            raise UsageError(
                f"--oracle-model {options.model} names BLIP-2 weights, but clip-zeroshot uses the backend's own "
                "CLIP; add --oracle blip2 or drop --oracle-model."
            )
        vocabulary_for(question.category, question.style, options.vocab_file)

    def __init__(self, loaded: LoadedPrior, options: OracleOptions):
        self._stack = loaded.stack
        self._vocab_file = options.vocab_file

    @torch.inference_mode()
    def _image_embeds(self, images: list[Image.Image]) -> torch.Tensor:
        stack = self._stack
        pixels = stack.image_processor(images=images, return_tensors="pt").pixel_values
        embeds = stack.image_encoder(pixels.to(stack.device, stack.image_encoder.dtype)).image_embeds
        return F.normalize(embeds.float(), dim=-1)

    @torch.inference_mode()
    def _word_embeds(self, words: list[str], style: bool) -> torch.Tensor:
        prompt = STYLE_PROMPT if style else OBJECT_PROMPT
        encoded = encode_prompts(self._stack.tokenizer, self._stack.text_encoder, [prompt.format(w) for w in words])
        return F.normalize(encoded.text_embeds.float(), dim=-1)

    def ask(self, images: list[Image.Image], question: Question, known: list[str]) -> list[str]:
        """For each image, the vocabulary word it is closest to, among words not already constrained; a yes-or-no
        question is answered "yes" where the image is closer to its category than to every other built-in one."""
        if question.yes_no:
            return self._is_category(images, question.category or "")
        taken = {word.lower() for word in known}
        words = [w for w in vocabulary_for(question.category, question.style, self._vocab_file) if w not in taken]
        if not words:
            return []
        similarities = self._image_embeds(images) @ self._word_embeds(words, question.style).T
        return [words[int(index)] for index in similarities.argmax(dim=-1)]

    def _is_category(self, images: list[Image.Image], category: str) -> list[str]:
        """Zero-shot classification among the built-in categories: "yes" where `category` wins."""
        words = [category, *(other for other in CATEGORY_MEMBERS if other != category.strip().lower())]
        similarities = self._image_embeds(images) @ self._word_embeds(words, style=False).T
        return ["yes" if int(index) == 0 else "no" for index in similarities.argmax(dim=-1)]


clip_zeroshot_oracle = ClipZeroShotOracle
"""The `conceptlab.oracles` entry point: the class is its own factory, with its `check_inputs`."""
