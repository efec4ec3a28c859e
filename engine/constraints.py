"""Constraint embeddings: CLIP text embeddings of every template filled with every constraint word.

They never change during training (only the new token does), so each (template, word) pair is encoded
once, up front, instead of on every step.
"""

from __future__ import annotations

from typing import Any

import torch

from conceptlab.engine.tokens import encode_prompts


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
