"""`load_into(pipe, path)`: a concept file in a user's own diffusers pipeline, meaning what it means in conceptlab.

Kandinsky's prior pipelines have no `load_textual_inversion`, and adding the token by hand is not enough: the
real prior text encoders ship the legacy `eos_token_id = 2`, so CLIP would pool at the new token (the largest id)
instead of at end-of-text. This adds the token, writes its row, points the pooling at the tokenizer's real
end-of-text token (the same fix the engine applies to its own models), and refuses a concept made for another
width, backend or text encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from conceptlab.engine.concept.file import Concept, load_concept
from conceptlab.engine.errors import ConceptFileError, UsageError
from conceptlab.engine.models.backend import text_encoder_fingerprint
from conceptlab.engine.models.plugins import backend_names, load_backend
from conceptlab.engine.prior.tokens import check_token_text, fix_legacy_eos

FINGERPRINT_ATTRIBUTE = "_conceptlab_fingerprint"
"""The text encoder's fingerprint before the first concept was added (adding rows changes it)."""


def load_into(pipe: Any, path: Path | str, *, token: str | None = None) -> str:
    """Add the concept file at `path` to `pipe` and return the token to write in prompts (default: its own).

    `pipe` is a Kandinsky prior pipeline, a combined Kandinsky pipeline (its `prior_pipe` gets the concept) or any
    pipeline with diffusers' `TextualInversionLoaderMixin`. Call it once per concept; loading the same concept
    under the same token again changes nothing.
    """
    concept = load_concept(path)
    target = getattr(pipe, "prior_pipe", pipe)
    tokenizer, text_encoder = _text_side(target)
    name = token or concept.token
    check_token_text(name)
    _check_fits(concept, target, text_encoder, Path(path))
    if name in tokenizer.get_vocab():
        return _already_loaded(tokenizer, text_encoder, name, concept, Path(path))
    _remember_fingerprint(text_encoder)
    if hasattr(target, "load_textual_inversion"):
        vector = concept.vector.reshape(-1)
        target.load_textual_inversion({name: vector}, token=name, tokenizer=tokenizer, text_encoder=text_encoder)
    else:
        _add_row(tokenizer, text_encoder, name, concept.vector)
    fix_legacy_eos(tokenizer, text_encoder)
    return name


def _text_side(pipe: Any) -> tuple[Any, Any]:
    tokenizer, text_encoder = getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None)
    if tokenizer is None or text_encoder is None or not hasattr(text_encoder, "get_input_embeddings"):
        raise UsageError(
            f"{type(pipe).__name__} has no tokenizer and text encoder to hold a concept; give a Kandinsky prior "
            "pipeline or one with load_textual_inversion."
        )
    return tokenizer, text_encoder


def _check_fits(concept: Concept, pipe: Any, text_encoder: Any, path: Path) -> None:
    """Refuse another width, a pipeline class that belongs to another backend, or another text encoder."""
    width = text_encoder.get_input_embeddings().embedding_dim
    backend = concept.metadata.get("backend")
    if concept.embedding_dim != width:
        raise ConceptFileError(
            f"{path} is a {backend} concept of width {concept.embedding_dim} but this pipeline's text encoder is "
            f"{width} wide; load it into a pipeline of the model it was trained with."
        )
    owners = _pipeline_owners()
    classes = {cls.__name__ for cls in type(pipe).__mro__}
    claimed = sorted({name for name, owner in owners.items() if owner in classes})
    if claimed and backend not in claimed:
        expected = owners.get(backend, "its own backend's pipeline")
        raise ConceptFileError(
            f"{path} was trained for {backend} ({expected}) but this is a {type(pipe).__name__} "
            f"({', '.join(claimed)}); load it into a {expected}."
        )
    recorded = concept.metadata.get("text_encoder_fingerprint")
    if recorded not in (None, _fingerprint(text_encoder)):
        raise ConceptFileError(
            f"{path} was trained against another text encoder than this pipeline's (fingerprints differ); "
            f"load it into the model it was trained with ({concept.metadata.get('model')})."
        )


def _pipeline_owners() -> dict[str, str]:
    """Backend name -> the class name of its prior pipeline, for backends that declare one (`pipeline_class`)."""
    owners = {}
    for name in backend_names():
        pipeline_class = getattr(load_backend(name), "pipeline_class", None)
        if pipeline_class is not None:
            owners[name] = pipeline_class.__name__
    return owners


def _fingerprint(text_encoder: Any) -> str:
    return getattr(text_encoder, FINGERPRINT_ATTRIBUTE, None) or text_encoder_fingerprint(text_encoder)


def _remember_fingerprint(text_encoder: Any) -> None:
    if getattr(text_encoder, FINGERPRINT_ATTRIBUTE, None) is None:
        setattr(text_encoder, FINGERPRINT_ATTRIBUTE, text_encoder_fingerprint(text_encoder))


def _already_loaded(tokenizer: Any, text_encoder: Any, name: str, concept: Concept, path: Path) -> str:
    row = text_encoder.get_input_embeddings().weight[tokenizer.convert_tokens_to_ids(name)]
    if torch.equal(row.detach().float().cpu(), concept.vector.to(row.dtype).float()):
        return name
    raise UsageError(
        f"Token {name!r} is already a word of this pipeline's tokenizer; load {path} with token='<other>'."
    )


def _add_row(tokenizer: Any, text_encoder: Any, name: str, vector: torch.Tensor) -> None:
    """Add `name` to the tokenizer and write its row, growing the embedding matrix only when the id needs it."""
    tokenizer.add_tokens([name])
    token_id = tokenizer.convert_tokens_to_ids(name)
    if token_id >= text_encoder.get_input_embeddings().num_embeddings:
        text_encoder.resize_token_embeddings(token_id + 1)
    weight = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[token_id] = vector.reshape(-1).to(weight.device, weight.dtype)
