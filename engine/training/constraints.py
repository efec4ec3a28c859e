"""Constraint embeddings: CLIP text embeddings of every template filled with every constraint word.

They never change during training (only the new token does), so each (template, word) pair is encoded
once, up front, instead of on every step.
"""

from __future__ import annotations

from typing import Any

import torch

from conceptlab.engine.errors import UsageError
from conceptlab.engine.prior.tokens import encode_prompts


class ConstraintBank:
    """Normalized text embeddings indexed by template and word; words can be added (adaptive negatives)."""

    def __init__(self, tokenizer: Any, text_encoder: Any, templates: tuple[str, ...]):
        self._tokenizer = tokenizer
        self._text_encoder = text_encoder
        self.templates = templates
        self.words: list[str] = []
        self._embeds = torch.empty(len(templates), 0, 0)

    @torch.no_grad()
    def add_words(self, words: list[str]) -> None:
        new_words = [word for word in dict.fromkeys(words) if word not in self.words]
        if not new_words:
            return
        prompts = [template.format(word) for template in self.templates for word in new_words]
        embeds = encode_prompts(self._tokenizer, self._text_encoder, prompts).text_embeds.float()
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
