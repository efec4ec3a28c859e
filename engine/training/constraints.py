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


class ConstraintBank:
    """Normalized text embeddings indexed by template and word; words can be added (adaptive negatives).

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
        self._embed = embed or (lambda prompts: encode_prompts(tokenizer, text_encoder, prompts).text_embeds)
        self.templates = templates
        self.content_only = content_only
        self.words: list[str] = []
        self._embeds = torch.empty(len(templates), 0, 0)

    def prompt(self, template: str, word: str) -> str:
        return style_content(template) if word in self.content_only else template.format(word)

    @torch.no_grad()
    def add_words(self, words: list[str]) -> None:
        new_words = [word for word in dict.fromkeys(words) if word not in self.words]
        if not new_words:
            return
        prompts = [self.prompt(template, word) for template in self.templates for word in new_words]
        embeds = self._embed(prompts).float()
        embeds = torch.nn.functional.normalize(embeds, dim=-1).reshape(len(self.templates), len(new_words), -1)
        self._embeds = embeds if not self.words else torch.cat([self._embeds, embeds], dim=1)
        self.words.extend(new_words)

    def embeds(self, template_index: int, words: list[str]) -> torch.Tensor:
        """`[len(words), dim]` unit vectors for `words` under the template at `template_index`."""
        columns = [self.words.index(word) for word in words]
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
