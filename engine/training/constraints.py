"""Constraint embeddings: CLIP text embeddings of every template filled with every constraint word.

They never change during training (only the new token does), so each (template, word) pair is encoded
once, up front, instead of on every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from conceptlab.engine.errors import UsageError
from conceptlab.engine.prior.tokens import encode_prompts
from conceptlab.engine.training.templates import style_content

TextEmbedder = Callable[[list[str]], torch.Tensor]
"""Prompts -> `[n, dim]` embeddings in the prior's image-embedding space (M-CLIP's, or the prior's CLIP's)."""

ENCODE_BATCH = 192
"""Prompts the text encoder takes at once (3 words under the 54 official templates): its activations, about 3.5 MB
a prompt at ViT-L width, stay bounded however many words there are."""
MEMORY_SHARE = 0.5
"""The most of the free memory (of the device the text encoder is on) the constraint embeddings may take."""


def available_memory(device: torch.device) -> int | None:
    """Free bytes on `device` (CUDA: the driver's count; CPU: the kernel's MemAvailable), None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            line = next(line for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024


def check_constraints_fit(words: int, templates: int, width: int, device: torch.device) -> None:
    """Refuse, before any training, more constraint words than the machine can hold: the bank keeps one float32
    row per template and word (each word's prompts are encoded alone, so encoding adds only a few prompts' worth)."""
    needed = words * templates * width * 4
    free = available_memory(device)
    if free is None or needed <= free * MEMORY_SHARE:
        return
    most = int(free * MEMORY_SHARE) // (templates * width * 4)
    raise UsageError(
        f"{words} constraint words need {needed / 1e6:,.0f} MB of text embeddings ({templates} templates x "
        f"{width} floats each) but {device} has {free / 1e6:,.0f} MB free; give at most {most:,} negatives."
    )


class ConstraintBank:
    """Normalized text embeddings indexed by template and word; words can be added (adaptive negatives).

    Only the projected embeddings are kept (4 bytes x width per template and word); the prompts are encoded
    `ENCODE_BATCH` at a time, so the text encoder's activations never scale with the number of words.
    `embed` replaces the prior's own CLIP `text_embeds` (the 2.1 decoder's M-CLIP). A word in `content_only`
    (style mode's positive) stands for the template without its style phrase, as in the official code.
    """

    def __init__(
        self,
        tokenizer: Any,
        text_encoder: Any,
        templates: tuple[str, ...],
        *,
        embed: TextEmbedder | None = None,
        content_only: frozenset[str] = frozenset(),
    ):
        self._tokenizer = tokenizer
        self._text_encoder = text_encoder
        self._embed = embed or (lambda prompts: encode_prompts(tokenizer, text_encoder, prompts).text_embeds)
        self.templates = templates
        self.content_only = content_only
        self.words: list[str] = []
        self._columns: dict[str, int] = {}
        self._embeds = torch.empty(len(templates), 0, 0)

    def prompt(self, template: str, word: str) -> str:
        return style_content(template) if word in self.content_only else template.format(word)

    @torch.no_grad()
    def add_words(self, words: list[str]) -> None:
        new_words = [word for word in dict.fromkeys(words) if word not in self._columns]
        if not new_words:
            return
        width = self._text_encoder.config.projection_dim
        device = self._text_encoder.device
        check_constraints_fit(len(self.words) + len(new_words), len(self.templates), width, device)
        per_batch = max(1, ENCODE_BATCH // len(self.templates))
        chunks = [self._encode(new_words[start : start + per_batch]) for start in range(0, len(new_words), per_batch)]
        embeds = torch.cat(chunks, dim=1)
        self._embeds = embeds if not self.words else torch.cat([self._embeds, embeds], dim=1)
        for word in new_words:
            self._columns[word] = len(self.words)
            self.words.append(word)

    def _encode(self, words: list[str]) -> torch.Tensor:
        """`[templates, len(words), width]` unit embeddings of `words` under every template (only these are kept)."""
        prompts = [self.prompt(template, word) for template in self.templates for word in words]
        embeds = self._embed(prompts).float()
        return torch.nn.functional.normalize(embeds, dim=-1).reshape(len(self.templates), len(words), -1)

    def embeds(self, template_index: int, words: list[str]) -> torch.Tensor:
        """`[len(words), dim]` unit vectors for `words` under the template at `template_index`."""
        columns = [self._columns[word] for word in words]
        return self._embeds[template_index, columns]


class ImageConstraints:
    """Fixed rows, the same under every template: evolve's parents, each the mean of its images' unit CLIP
    embeddings (so a row's cosine-like product with the prior's unit output is the mean cosine to its images)."""

    def __init__(self, rows: dict[str, torch.Tensor], device: torch.device | str = "cpu"):
        self.rows = {label: row.to(device, torch.float32) for label, row in rows.items()}

    def add_words(self, words: list[str]) -> None:
        unknown = [word for word in words if word not in self.rows]
        if unknown:
            raise UsageError(f"An evolved concept has no text constraints; {', '.join(unknown)} cannot be added.")

    def embeds(self, template_index: int, words: list[str]) -> torch.Tensor:
        if not words:
            row = next(iter(self.rows.values()))
            return torch.empty(0, row.numel(), device=row.device)
        return torch.stack([self.rows[word] for word in words])

    def as_json(self) -> dict[str, list[float]]:
        """Exact: float32 values survive a round trip through JSON's float64."""
        return {label: row.tolist() for label, row in self.rows.items()}

    @classmethod
    def from_json(cls, rows: dict[str, list[float]], device: torch.device | str = "cpu") -> ImageConstraints:
        return cls({label: torch.tensor(values, dtype=torch.float32) for label, values in rows.items()}, device)
