"""A tiny random ViLT for visual question answering, of the real architecture, built locally for tests.

Its answer vocabulary is the tiny world's words, so it names pets, plants and fruit (at random): it runs every line
of the `vilt` oracle (processor, classifier, labels), loaded with the same `from_pretrained` as the real one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from transformers import BertTokenizerFast, ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor

from conceptlab.engine.io.cache import cached_build
from conceptlab.plugins.tiny.world import CATEGORY_MEMBERS

SEED = 11
IMAGE_SIZE = 32
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
QUESTION_WORDS = ("what", "kind", "of", "is", "this", "in", "photo", "the", "a", "?")


def _answers() -> list[str]:
    return sorted({word for members in CATEGORY_MEMBERS.values() for word in members} | {"yes", "no"})


def save_tiny_vilt(folder: Path) -> None:
    answers = _answers()
    words = sorted({*QUESTION_WORDS, *answers, *(w for c in CATEGORY_MEMBERS for w in c.split())})
    with tempfile.TemporaryDirectory() as scratch:
        vocab = Path(scratch) / "vocab.txt"
        vocab.write_text("\n".join([*SPECIAL, *words]) + "\n", encoding="utf-8")
        tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    image_processor = ViltImageProcessor(size={"shortest_edge": IMAGE_SIZE}, size_divisor=8, do_pad=True)
    config = ViltConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        image_size=IMAGE_SIZE,
        patch_size=8,
        max_image_length=-1,
        num_labels=len(answers),
        id2label=dict(enumerate(answers)),
        label2id={answer: index for index, answer in enumerate(answers)},
    )
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        model = ViltForQuestionAnswering(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    ViltProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def tiny_vilt_folder() -> Path:
    """The cached tiny ViLT."""
    return cached_build("tiny-vilt", (Path(__file__),), save_tiny_vilt)
