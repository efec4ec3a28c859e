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
from conceptlab.engine.models.backend import PriorStack
from conceptlab.engine.models.loading import LoadedPrior
from conceptlab.engine.prior.tokens import encode_prompts

OBJECT_PROMPT = "a photo of a {}"
STYLE_PROMPT = "a painting in the style of {}"


class ClipZeroShotOracle:
    name = "clip-zeroshot"
    uses_prior = True
    """It answers with the Kandinsky prior's CLIP, so it runs only where a Kandinsky prior is loaded."""

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
        self._known_words = getattr(loaded.backend, "known_words", None)  # plugin backends older than the field

    def input_size(self) -> int:
        """The square the backend's CLIP image processor crops to (224 for Kandinsky's ViT-L/14 and ViT-bigG/14)."""
        processor = self._stack.image_processor
        crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
        return int(crop["height"] if crop else processor.size["shortest_edge"])

    def ask(self, images: list[Image.Image], question: Question, known: list[str]) -> list[str]:
        """For each image, the vocabulary word it is closest to, among words not already constrained; a yes-or-no
        question is answered "yes" where the image is closer to its category than to every other built-in one."""
        if question.yes_no:
            return self._is_category(images, question.category or "")
        taken = {word.lower() for word in known}
        vocabulary = vocabulary_for(question.category, question.style, self._vocab_file, self._known_words)
        words = [w for w in vocabulary if w not in taken]
        if not words:
            return []
        similarities = image_embeds(self._stack, images) @ word_embeds(self._stack, words, question.style).T
        return [words[int(index)] for index in similarities.argmax(dim=-1)]

    def scores(self, images: list[Image.Image], words: list[str]) -> torch.Tensor:
        """`[images, words]`: the score it names a word by (see `zero_shot_scores`)."""
        return zero_shot_scores(self._stack, images, words)

    def _is_category(self, images: list[Image.Image], category: str) -> list[str]:
        """Zero-shot classification among the built-in categories: "yes" where `category` wins."""
        words = [category, *(other for other in CATEGORY_MEMBERS if other != category.strip().lower())]
        similarities = image_embeds(self._stack, images) @ word_embeds(self._stack, words).T
        return ["yes" if int(index) == 0 else "no" for index in similarities.argmax(dim=-1)]


@torch.inference_mode()
def image_embeds(stack: PriorStack, images: list[Image.Image]) -> torch.Tensor:
    """`[images, dim]`: the backend CLIP's unit image embeddings."""
    pixels = stack.image_processor(images=images, return_tensors="pt").pixel_values
    embeds = stack.image_encoder(pixels.to(stack.device, stack.image_encoder.dtype)).image_embeds
    return F.normalize(embeds.float(), dim=-1)


@torch.inference_mode()
def word_embeds(stack: PriorStack, words: list[str], style: bool = False) -> torch.Tensor:
    """`[words, dim]`: the unit text embeddings of "a photo of a {word}" (or of the style prompt)."""
    prompt = STYLE_PROMPT if style else OBJECT_PROMPT
    encoded = encode_prompts(stack.tokenizer, stack.text_encoder, [prompt.format(w) for w in words])
    return F.normalize(encoded.text_embeds.float(), dim=-1)


def zero_shot_scores(stack: PriorStack, images: list[Image.Image], words: list[str]) -> torch.Tensor:
    """`[images, words]`: the score this oracle names a word by, each image's cosine to "a photo of a {word}"."""
    return (image_embeds(stack, images) @ word_embeds(stack, words).T).cpu()


clip_zeroshot_oracle = ClipZeroShotOracle
"""The `conceptlab.oracles` entry point: the class is its own factory, with its `check_inputs`."""
