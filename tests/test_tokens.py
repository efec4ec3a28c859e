import pytest
import torch

from conceptlab.engine.errors import UsageError
from conceptlab.engine.prior.tokens import add_placeholder_token, encode_prompts


def _encode(stack, prompt):
    with torch.no_grad():
        return encode_prompts(stack.tokenizer, stack.text_encoder, [prompt])


def test_placeholder_encodes_like_initializer(stack):
    # The real prior text encoders ship eos_token_id=2 (pooling at the largest id); a placeholder id is larger
    # than end-of-text, so this equality also proves the pooling fix.
    add_placeholder_token(stack.tokenizer, stack.text_encoder, "<new-pet>", "pet")
    learned = _encode(stack, "a photo of a <new-pet>")
    reference = _encode(stack, "a photo of a pet")
    assert torch.equal(learned.text_embeds, reference.text_embeds)
    assert torch.equal(learned.hidden_states, reference.hidden_states)
    other = _encode(stack, "a photo of a dog")
    assert (other.text_embeds - reference.text_embeds).abs().max() > 0.05


def test_pooling_is_at_end_of_text_not_at_placeholder(stack):
    assert stack.text_encoder.text_model.eos_token_id == 2  # as shipped by Kandinsky
    add_placeholder_token(stack.tokenizer, stack.text_encoder, "<new-pet>", "pet")
    assert stack.text_encoder.text_model.eos_token_id == stack.tokenizer.eos_token_id
    with_suffix = _encode(stack, "a photo of a <new-pet> in a forest").text_embeds
    without = _encode(stack, "a photo of a <new-pet>").text_embeds
    assert not torch.allclose(with_suffix, without)


def test_multiword_initializer_starts_from_mean(stack):
    placeholder = add_placeholder_token(stack.tokenizer, stack.text_encoder, "<new-instrument>", "musical instrument")
    ids = stack.tokenizer("musical instrument", add_special_tokens=False).input_ids
    assert len(ids) > 1
    expected = stack.text_encoder.get_input_embeddings().weight[ids].mean(0)
    torch.testing.assert_close(placeholder.vector.detach(), expected)


@pytest.mark.parametrize("token", ["cat", "<new-pet>", "with space", ""])
def test_refuses_existing_or_malformed_token(stack, token):
    if token == "<new-pet>":
        add_placeholder_token(stack.tokenizer, stack.text_encoder, token, "pet")
    with pytest.raises(UsageError):
        add_placeholder_token(stack.tokenizer, stack.text_encoder, token, "pet")


def test_only_the_placeholder_row_receives_gradient(stack):
    placeholder = add_placeholder_token(stack.tokenizer, stack.text_encoder, "<new-pet>", "pet")
    encoded = encode_prompts(stack.tokenizer, stack.text_encoder, ["a photo of a <new-pet>"])
    encoded.text_embeds.sum().backward()
    assert placeholder.vector.grad is not None and placeholder.vector.grad.abs().sum() > 0
    assert stack.text_encoder.get_input_embeddings().weight.grad is None
