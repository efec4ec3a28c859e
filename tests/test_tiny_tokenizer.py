"""The tiny world's tokenizer is OpenAI's real CLIP tokenizer, and its text encoder carries the published ids."""

from __future__ import annotations

import json

from conceptlab.engine.prior.tokens import add_placeholder_token
from conceptlab.plugins.tiny.backend import tiny_world_folder
from conceptlab.plugins.tiny.world import build_tokenizer

# Published ids of OpenAI's CLIP tokenizer (as other tokenizer ports test them): a change of vocabulary shows here.
REFERENCE_IDS = {
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "dog": [49406, 1929, 49407],
    "Hello, world!": [49406, 3306, 267, 1002, 256, 49407],
}


def test_tokenizer_is_openai_clip():
    tokenizer = build_tokenizer()
    assert len(tokenizer) == 49408
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (49406, 49407, 49407)
    for text, ids in REFERENCE_IDS.items():
        assert tokenizer(text).input_ids == ids


def test_text_encoder_keeps_the_legacy_ids_and_a_placeholder_gets_the_real_next_id(stack):
    config = json.loads((tiny_world_folder() / "text_encoder" / "config.json").read_text())
    # As in the published kandinsky-2-1-prior and kandinsky-2-2-prior text encoder configs.
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (0, 2, 1)
    assert config["vocab_size"] == 49408
    placeholder = add_placeholder_token(stack.tokenizer, stack.text_encoder, "<new-pet>", "pet")
    assert placeholder.token_id == 49408
