"""The learned token: a new word in the prior's tokenizer whose embedding is the only thing trained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from conceptlab.engine.errors import UsageError


class PlaceholderEmbedding(nn.Module):
    """The text encoder's token embedding, frozen, with learned vectors standing in for placeholder ids.

    The vocabulary matrix is never resized or written: placeholder ids are looked up in `vectors`
    (kept in float32, cast to the model's dtype on use). Only those vectors can receive gradients, so the
    optimizer holds state for one row rather than for the whole vocabulary.
    """

    def __init__(self, base: nn.Embedding):
        super().__init__()
        self.base = base
        self.token_ids: list[int] = []
        self.vectors = nn.ParameterList()

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    @property
    def embedding_dim(self) -> int:
        return self.base.embedding_dim

    def add(self, token_id: int, vector: torch.Tensor) -> nn.Parameter:
        parameter = nn.Parameter(vector.detach().float().clone().to(self.base.weight.device))
        self.token_ids.append(token_id)
        self.vectors.append(parameter)
        return parameter

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        is_placeholder = input_ids >= self.base.num_embeddings
        embeds = self.base(input_ids.masked_fill(is_placeholder, 0))
        for token_id, vector in zip(self.token_ids, self.vectors, strict=True):
            mask = (input_ids == token_id).unsqueeze(-1)
            embeds = torch.where(mask, vector.to(embeds.dtype), embeds)
        return embeds


@dataclass
class Placeholder:
    token: str
    token_id: int
    vector: nn.Parameter


def _placeholder_embedding(text_encoder: Any) -> PlaceholderEmbedding:
    embeddings = text_encoder.text_model.embeddings
    if not isinstance(embeddings.token_embedding, PlaceholderEmbedding):
        embeddings.token_embedding = PlaceholderEmbedding(embeddings.token_embedding)
    return embeddings.token_embedding


def fix_legacy_eos(tokenizer: Any, text_encoder: Any) -> None:
    """Make CLIP pool at the end-of-text token even when a new token has a larger id.

    The real Kandinsky prior text encoders ship `eos_token_id = 2`, which makes transformers pool at the
    *largest* token id of each prompt. That was the end-of-text token until a placeholder was added after it;
    then the pooled output (the prior's main input) would be read at the placeholder. Pointing the model at
    the tokenizer's real end-of-text id gives identical results for ordinary prompts and correct ones with
    placeholders.
    """
    text_model = text_encoder.text_model
    if text_model.eos_token_id == 2 and tokenizer.eos_token_id != 2:
        text_model.eos_token_id = tokenizer.eos_token_id
        text_encoder.config.eos_token_id = tokenizer.eos_token_id


def initializer_vector(tokenizer: Any, text_encoder: Any, word: str) -> torch.Tensor:
    """The embedding of `word`; a word of several tokens starts from the mean of their embeddings."""
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if not word.strip() or not ids:
        raise UsageError("--init is empty; give a word to start the token from (default: the category).")
    weight = text_encoder.get_input_embeddings().weight
    return weight[torch.tensor(ids, device=weight.device)].detach().float().mean(0)


MAX_TOKEN_CHARS = 64
"""A token names files (`<token>.safetensors`) and prompts; longer ones only break file systems."""


def check_token_text(token: str) -> None:
    if not token.strip() or any(c.isspace() for c in token):
        raise UsageError(f"Token {token!r} must be one word without spaces, for example <new-pet>.")
    if not token.isprintable():
        raise UsageError(f"Token {token!r} holds invisible or control characters; type it plainly, e.g. <new-pet>.")
    if len(token) > MAX_TOKEN_CHARS:
        raise UsageError(f"Token is {len(token)} characters long; use at most {MAX_TOKEN_CHARS}, e.g. <new-pet>.")


def check_new_token(tokenizer: Any, token: str) -> None:
    """Refuse a token that is malformed or that the tokenizer already knows as one token."""
    check_token_text(token)
    if token in tokenizer.get_vocab() or len(tokenizer.tokenize(token)) == 1:
        raise UsageError(f"Token {token!r} is already a word of the tokenizer; choose another with --token.")


def add_placeholder_token(
    tokenizer: Any, text_encoder: Any, token: str, initializer: str | torch.Tensor
) -> Placeholder:
    """Add `token` to the tokenizer and give it a trainable embedding started from `initializer`.

    `initializer` is a word (its embedding, or the mean of its tokens') or a vector (a loaded concept).
    """
    check_new_token(tokenizer, token)
    vector = (
        initializer
        if isinstance(initializer, torch.Tensor)
        else initializer_vector(tokenizer, text_encoder, initializer)
    )
    embedding = _placeholder_embedding(text_encoder)
    if vector.numel() != embedding.embedding_dim:
        raise UsageError(
            f"Token {token!r} has width {vector.numel()} but the text encoder's is {embedding.embedding_dim}."
        )
    tokenizer.add_tokens([token])
    token_id = tokenizer.convert_tokens_to_ids(token)
    fix_legacy_eos(tokenizer, text_encoder)
    return Placeholder(token, token_id, embedding.add(token_id, vector.reshape(-1)))


def concept_token(tokenizer: Any, text_encoder: Any, sha256: str, vector: torch.Tensor) -> str:
    """The token under which a loaded concept is rendered: named by its sha256, added once per loaded model.

    Renders use this name, not the concept's own token, so concepts that share a token (`<new-pet>` of several
    seeds) and a model that has already learned or rendered one (a batch reusing its models) never collide.
    """
    token = f"<concept-{sha256[:16]}>"
    if token not in tokenizer.get_vocab():
        add_placeholder_token(tokenizer, text_encoder, token, vector)
    return token


@dataclass
class EncodedPrompts:
    """A batch of prompts as the prior consumes them (as in diffusers' `KandinskyPriorPipeline`)."""

    text_embeds: torch.Tensor
    hidden_states: torch.Tensor
    attention_mask: torch.Tensor

    def repeat(self, count: int) -> EncodedPrompts:
        return EncodedPrompts(
            self.text_embeds.repeat(count, 1),
            self.hidden_states.repeat(count, 1, 1),
            self.attention_mask.repeat(count, 1),
        )


def encode_prompts(tokenizer: Any, text_encoder: Any, prompts: list[str]) -> EncodedPrompts:
    """Tokenize to the model's full length and run the CLIP text encoder, keeping the graph."""
    inputs = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    device = text_encoder.device
    output = text_encoder(inputs.input_ids.to(device))
    return EncodedPrompts(output.text_embeds, output.last_hidden_state, inputs.attention_mask.bool().to(device))
