"""One shape for every prompt (padding to 77) changes nothing but the cost; `--compile` compiles that step once."""

import json

import pytest
import torch
from torch._dynamo.eval_frame import _debug_get_cache_entry_list
from torch._dynamo.utils import counters

from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.errors import UsageError
from conceptlab.engine.prior.drawn_noise import draw_noise, prior_schedule, sample_with_noise
from conceptlab.engine.prior.sampling import sample_image_embeds
from conceptlab.engine.prior.tokens import encode_prompts, initializer_vector
from conceptlab.engine.training import compiled_step
from conceptlab.engine.training.config import create_config, evolve_config
from conceptlab.engine.training.loop import start_training
from conceptlab.engine.training.objectives import conceptlab_loss

NEGATIVES = ("cat", "dog")


def _context_lengths(prior) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    """Record the text length the prior is given on each call."""
    lengths: list[int] = []
    handle = prior.register_forward_pre_hook(
        lambda _, args, kwargs: lengths.append(kwargs["encoder_hidden_states"].shape[1]), with_kwargs=True
    )
    return lengths, handle


def test_the_padded_step_equals_the_unpadded_one(stack):
    """Loss, gradient and image embeds of a step under each of four templates, with the placeholder in the prompt
    (its id is the largest, so pooling at end-of-text matters), at the prompt's own length and padded to 77."""
    sessions = {
        pad: start_training(
            stack,
            create_config(
                "pet", NEGATIVES, token=f"<pad-{pad}>", pad_prompts=pad, learning_rate=1e-3, positive_clamp=1.0
            ),
        )
        for pad in (False, True)
    }
    lengths, handle = _context_lengths(stack.prior)
    try:
        for index, template in list(enumerate(sessions[True].config.templates))[:4]:  # 2 prior steps: 77 tokens cost
            results = {}
            for pad, session in sessions.items():
                lengths.clear()
                prompt = encode_prompts(stack.tokenizer, stack.text_encoder, [template.format(session.config.token)])
                embed = sample_image_embeds(
                    stack.prior,
                    stack.scheduler,
                    prompt,
                    session.unconditional,
                    num_steps=2,
                    generator=torch.Generator().manual_seed(index),
                    skip_padding=not pad,
                )[0]
                value = conceptlab_loss(
                    embed,
                    session.bank.embeds(index, ["pet"]),
                    session.bank.embeds(index, list(NEGATIVES)),
                    session.weights,
                )
                session.optimizer.zero_grad(set_to_none=True)
                value.loss.backward()
                results[pad] = (embed.detach(), value.loss.detach(), session.placeholder.vector.grad.clone())
                context = stack.tokenizer.model_max_length if pad else int(prompt.attention_mask.sum())
                assert set(lengths) == {context}
            assert int(prompt.attention_mask.sum()) < stack.tokenizer.model_max_length  # padding was there to skip
            for unpadded, padded in zip(results[False], results[True], strict=True):
                torch.testing.assert_close(padded, unpadded, rtol=1e-4, atol=1e-5)
            assert results[True][2].abs().max() > 0  # a real gradient, not two zeros
    finally:
        handle.remove()


def test_the_drawn_noise_loop_is_the_prior_pipeline_loop(stack):
    """Same generator, same draws in the same order: the compiled loop's image embeds and the generator's state
    after are the eager loop's."""
    prompt = encode_prompts(stack.tokenizer, stack.text_encoder, ["a photo of a cat"])
    unconditional = encode_prompts(stack.tokenizer, stack.text_encoder, [""])
    eager_generator, drawn_generator = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    eager = sample_image_embeds(
        stack.prior, stack.scheduler, prompt, unconditional, generator=eager_generator, skip_padding=False
    )
    schedule = prior_schedule(stack.scheduler, 5)
    noise = draw_noise(schedule, (1, stack.prior.config.embedding_dim), torch.float32, stack.device, drawn_generator)
    drawn = sample_with_noise(stack.prior, schedule, prompt, unconditional, noise, 4.0)
    torch.testing.assert_close(drawn, eager, rtol=1e-5, atol=1e-6)
    assert torch.equal(eager_generator.get_state(), drawn_generator.get_state())
    assert [step.timestep for step in schedule.steps] == [999, 749, 500, 250, 0]
    assert schedule.steps[-1].noise_std == 0 and all(step.noise_std > 0 for step in schedule.steps[:-1])


def _run(run_cli, out, *extra):
    args = ("create", "--category", "pet", "--neg", ",".join(NEGATIVES), "--model", "tiny", "--device", "cpu")
    code, _, stderr = run_cli(
        *args, "--steps", "30", "--lr", "1e-3", "--every", "30", "--no-images", "--out", out, *extra
    )
    assert code == 0, stderr
    return load_concept(out / "new-pet.safetensors"), stderr


def test_compile_compiles_once_over_every_template_and_learns_the_eager_concept(run_cli, stack, tmp_path, monkeypatch):
    """30 steps of `create --compile`: torch's own counters see one graph, no graph break and one cache entry
    (no recompile) although the templates' prompts differ in length; the concept is the eager run's."""
    monkeypatch.setattr(compiled_step, "COMPILE_BACKEND", "eager")  # dynamo's capture only: no code generation
    torch._dynamo.reset()
    counters.clear()
    compiled, stderr = _run(run_cli, tmp_path / "compiled", "--compile")
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    assert len(_debug_get_cache_entry_list(compiled_step.CompiledStep._forward.__code__)) == 1
    eager, _ = _run(run_cli, tmp_path / "eager")
    torch.testing.assert_close(compiled.vector, eager.vector, rtol=0, atol=1e-5)
    start = initializer_vector(stack.tokenizer, stack.text_encoder, "pet")
    assert (eager.vector.flatten() - start).abs().max() > 1e-3  # both trained: the match is not two initial vectors

    lines = [json.loads(line) for line in (tmp_path / "compiled" / "log.jsonl").read_text().splitlines()]
    (event,) = [line for line in lines if line.get("event") == "compile"]
    assert event["step"] == 1 and event["seconds"] > 0
    assert compiled.metadata["compile_seconds"] == event["seconds"] and "compile_seconds" not in eager.metadata
    assert compiled.metadata["config"]["pad_prompts"] is True and eager.metadata["config"]["pad_prompts"] is False
    assert "compiled in" in stderr
    prompts = {line["template"] for line in lines if "template" in line}
    assert len({len(stack.tokenizer(prompt.format("pet")).input_ids) for prompt in prompts}) >= 2  # shapes differ


@pytest.mark.parametrize("command", ["create", "mix"])
def test_compile_without_padding_is_refused(run_cli, command, tmp_path):
    words = ("--category", "pet", "--neg", "cat") if command == "create" else ("lobster", "turtle")
    code, _, stderr = run_cli(command, *words, "--model", "tiny", "--compile", "--no-pad-prompts", "--out", tmp_path)
    assert code == 2 and stderr.count("\n") == 1 and "--no-pad-prompts" in stderr and "Traceback" not in stderr


def test_compile_with_text_space_is_refused():
    """The compiled step samples the prior's output; evolve's `--space text` compares the text embedding instead."""
    with pytest.raises(UsageError, match="--space text") as refusal:
        evolve_config(("a", "b"), None, initializer="pet", token="<evo>", space="text", compile=True)
    assert "\n" not in str(refusal.value)
    assert evolve_config(("a", "b"), None, initializer="pet", token="<evo>", space="text").space == "text"
