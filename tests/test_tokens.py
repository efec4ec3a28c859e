import pytest
import torch
from shared_models import SharedTiny

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


def test_a_token_added_by_one_test_never_reaches_the_next(shared_tiny, tiny):
    """`tiny` is lent from one session-wide load: what a test adds or trains stays in its copy, and a change to the
    shared load itself fails the test that made it."""
    first = shared_tiny.lend()
    placeholder = add_placeholder_token(first.stack.tokenizer, first.stack.text_encoder, "<leak>", "pet")
    with torch.no_grad():
        placeholder.vector.add_(1.0)
        first.stack.prior.positional_embedding.add_(1.0)
    shared_tiny.take_back(first)
    second = shared_tiny.lend()
    assert "<leak>" in first.stack.tokenizer.get_vocab() and "<leak>" not in second.stack.tokenizer.get_vocab()
    assert len(second.stack.tokenizer) == len(first.stack.tokenizer) - 1
    assert second.stack.text_encoder.text_model.eos_token_id == 2  # as loaded, before any placeholder
    assert not torch.equal(second.stack.prior.positional_embedding, first.stack.prior.positional_embedding)
    add_placeholder_token(second.stack.tokenizer, second.stack.text_encoder, "<leak>", "pet")  # free again
    shared_tiny.take_back(second)
    changed = SharedTiny(tiny)  # `tiny` stands for a shared load here: changing it must be caught
    add_placeholder_token(tiny.stack.tokenizer, tiny.stack.text_encoder, "<changed>", "pet")
    with pytest.raises(AssertionError, match="changed the shared tiny prior"):
        changed.take_back(changed.lend())
