"""Every default that follows the official ConceptLab code (kfirgoldberg/ConceptLab), pinned to its value.

The values are copied from the official `training/templates.py`, `training/coach.py`, `training/train_config.py`,
`configs/new_pet.yaml`, `configs/new_art.yaml` and `scripts/infer.py`, so a later change cannot drift silently.
"""

import random

import numpy as np
import pytest
import torch
from tiny_decoder_21 import build_tiny_decoder_21_pipeline

from conceptlab.engine.adaptive.oracle import Question
from conceptlab.engine.adaptive.watcher import ConceptWatcher
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, load_prior
from conceptlab.engine.models.offload import prior_and_decoder_residency
from conceptlab.engine.models.plugins import load_backend
from conceptlab.engine.prior.tokens import add_placeholder_token, encode_prompts
from conceptlab.engine.rendering.render import RenderSettings, render_prompts, render_settings
from conceptlab.engine.training.config import CreateConfig, create_config, mix_config
from conceptlab.engine.training.constraints import ConstraintBank
from conceptlab.engine.training.loop import negative_schedule
from conceptlab.engine.training.templates import (
    EDIT_TEMPLATES,
    OBJECT_TEMPLATES,
    STYLE_TEMPLATES,
    TEXTUAL_INVERSION_OBJECT_TEMPLATES,
    style_content,
)

STANDARD = (
    "Professional high-quality photo of {a} {token}. photorealistic, 4k, HQ",
    "A photo of {a} {token}",
    "A photo of {a} {token}. photorealistic, 4k, HQ",
)
EDITS = (
    "Professional high-quality art of {a} {token}. photorealistic",
    "A painting of {a} {token}",
    "A watercolor painting of {a} {token}",
    "A painting of {a} {token} in the style of monet",
    "Colorful graffiti of {a} {token}. photorealistic, 4k, HQ",
    "A line drawing of {a} {token}",
    "Oil painting of {a} {token}",
    "Professional high-quality art of {a} {token} in the style of a cartoon",
    "A close-up photo of {a} {token}",
)


def test_object_templates_are_the_official_lists_with_each_prefix():
    """Official: `object_templates = standard * 3 + edits`, a template drawn, then `{a}` from a / the / my."""
    official = STANDARD * 3 + EDITS
    expected = [t.format(a=a, token="{}") for t in official for a in ("a", "the", "my")]
    assert list(OBJECT_TEMPLATES) == expected and len(OBJECT_TEMPLATES) == 54
    assert list(EDIT_TEMPLATES) == [t.format(a="a", token="{}") for t in EDITS]
    assert create_config("pet").templates == OBJECT_TEMPLATES
    assert create_config("pet", template_set="textual-inversion").templates == TEXTUAL_INVERSION_OBJECT_TEMPLATES


def test_style_templates_and_positive_are_the_official_ones():
    assert len(STYLE_TEMPLATES) == 20 and STYLE_TEMPLATES[0] == "a painting in the style of {}"
    assert STYLE_TEMPLATES[8] == "A painting of a pair of shoes  in the style of {}"  # two spaces, as there
    assert all(t.endswith("in the style of {}") for t in STYLE_TEMPLATES)
    # official: template.format(token='').replace('in the style of ', '')
    assert style_content("a painting of a dog in the style of {}") == "a painting of a dog "
    config = create_config("art", style=True)
    assert config.templates == STYLE_TEMPLATES and config.negative_clamp == 0.15  # configs/new_art.yaml
    assert create_config("art", style=True, negative_clamp=0.3).negative_clamp == 0.3


def test_training_defaults_are_the_official_ones():
    """`configs/new_pet.yaml` and `training/train_config.py`."""
    config = create_config("pet")
    assert (config.steps, config.seed, config.checkpoint_every, config.image_seeds) == (2500, 0, 250, (42, 500))
    assert (config.betas, config.weight_decay, config.prior_steps, config.prior_guidance) == ((0.9, 0.999), 1e-2, 5, 4)
    assert (config.positive_clamp, config.negative_clamp, config.positive_lambda) == (0.28, 0.2, 1.0)
    assert config.max_negatives is None  # every interval adds one, with no cap
    assert config.adaptive and config.template_set == "official"
    assert mix_config(("lobster", "turtle")).normalized_weights == (0.5, 0.5)  # 1 / len(positive_classes)
    assert load_backend("kandinsky-2.1").recommended_learning_rate == 1e-4


def test_constraint_encoder_defaults_per_backend():
    """The official code measures constraints with the 2.1 decoder's M-CLIP; 2.2 has none, nor has the tiny world."""
    assert load_backend("kandinsky-2.1").default_constraint_encoder == "mclip"
    assert load_backend("kandinsky-2.2").default_constraint_encoder == "prior"
    assert load_backend("tiny").default_constraint_encoder == "prior"
    assert CreateConfig.constraint_encoder is None  # None: the backend's, resolved and recorded at the start


def test_render_defaults_are_the_official_ones():
    """`save_images` in `training/coach.py` and `scripts/infer.py`: 512 px, 50 steps, 7.5, prior 5 steps at 4."""
    settings = RenderSettings()
    assert (settings.size, settings.steps, settings.guidance) == (512, 50, 7.5)
    assert (settings.prior_steps, settings.prior_guidance, settings.decoder_prompt) == (5, 4.0, "")


def test_checkpoint_prompts_are_the_official_three():
    config = create_config("pet", token="S*")
    first, second, edit = config.checkpoint_prompts(250)
    assert first == "Professional high-quality art of a S*. photorealistic, 4k, HQ"
    assert second == "a photo of a S*"
    assert edit in [t.format("S*") for t in EDIT_TEMPLATES]
    assert config.checkpoint_prompts(250) == config.checkpoint_prompts(250)  # a resumed run draws the same
    drawn = {config.checkpoint_prompts(step)[2] for step in range(0, 2500, 250)}
    assert len(drawn) > 1  # drawn anew at each checkpoint
    style = create_config("art", style=True, token="S*")
    assert style.checkpoint_prompts(0) == [
        "a painting of a horse and a barn in a valley in the style of S*",
        "a painting of a dog in the style of S*",
        "a painting of fruit bowl in the style of S*",
    ]


def test_oracle_questions_are_the_official_ones():
    assert Question("pet").text == "What kind of pet is in this photo?"
    assert Question("art", style=True).text == "What art style was used in this photo of a horse and a barn?"


def test_gradual_negatives_follow_the_official_schedule():
    words = ("cat", "dog", "owl", "frog")
    schedule = negative_schedule(create_config("pet", words, gradual=True, seed=7))
    shuffled = list(words)
    random.Random(7).shuffle(shuffled)
    added = [schedule.activate(step) for step in range(0, 1001)]
    assert [(step, words) for step, words in enumerate(added) if words] == [
        (0, shuffled[:1]),
        (250, shuffled[1:2]),
        (500, shuffled[2:3]),
        (750, shuffled[3:4]),
    ]


def test_style_positive_is_the_content_alone(stack):
    """Style mode compares the prior's output with the template without its style phrase, never with 'art'."""
    config = create_config("art", style=True)
    bank = ConstraintBank(stack.tokenizer, stack.text_encoder, config.templates, content_only=frozenset({"art"}))
    bank.add_words(["art", "cubism"])
    content, negative = "a painting of a dog ", "a painting of a dog in the style of cubism"
    expected = encode_prompts(stack.tokenizer, stack.text_encoder, [content, negative]).text_embeds
    expected = torch.nn.functional.normalize(expected.float(), dim=-1)
    assert config.templates[1].format("{}") == "a painting of a dog in the style of {}"
    torch.testing.assert_close(bank.embeds(1, ["art", "cubism"]), expected)


def test_oracle_sees_only_the_first_image_and_checkpoints_render_three_prompts(tiny, tiny_decoder):
    """Official `save_images` returns `images[0]`: the first prompt at the first seed (42)."""
    stack, seen = tiny.stack, []

    class Oracle:
        name = "scripted"

        def ask(self, images, question, known):
            seen.extend(images)
            return ["hamster"] * len(images)

    config = create_config("pet", steps=10)
    add_placeholder_token(stack.tokenizer, stack.text_encoder, config.token, config.initializer)
    settings = render_settings(tiny.backend, steps=2)  # which picture the oracle sees, at any decoder steps
    residency = prior_and_decoder_residency(tiny, tiny_decoder, offload=False)
    watcher = ConceptWatcher(stack, tiny_decoder, config, settings, None, Oracle(), residency)
    assert watcher.ask(0, []) == ["hamster"]
    assert len(seen) == 1 and len(watcher.images_at(0)) == 6  # 3 prompts x seeds 42, 500
    first = render_prompts(stack, tiny_decoder, config.checkpoint_prompts(0)[:1], [42], settings)[0]
    np.testing.assert_array_equal(np.asarray(seen[0]), np.asarray(first))


@pytest.fixture(scope="module")
def tiny_21(tmp_path_factory) -> tuple[LoadedPrior, object]:
    """The tiny prior loaded by the `kandinsky-2.1` backend, and a tiny 2.1 decoder (M-CLIP) saved and loaded back."""
    from conceptlab.plugins.tiny.backend import tiny_world_folder

    folder = tmp_path_factory.mktemp("tiny-decoder-21")
    build_tiny_decoder_21_pipeline().save_pretrained(folder)
    loaded = load_prior(ModelChoice(str(tiny_world_folder()), "kandinsky-2.1", "cpu", "float32"))
    decoder = loaded.backend.load_decoder(str(folder), torch.device("cpu"), torch.float32)
    return loaded, decoder


def test_mclip_constraints_are_the_21_decoder_s_own_text_embeddings(tiny_21):
    """`--constraint-encoder mclip` embeds each constraint prompt as diffusers' `KandinskyPipeline` encodes its
    prompt with M-CLIP (projected, mask-averaged), not with the prior's CLIP."""
    loaded, decoder = tiny_21
    embed = loaded.backend.constraint_embedder(decoder, loaded.stack.device)
    prompts = ["A photo of a cat", "Oil painting of my dog"]
    expected, _, _ = decoder.pipeline._encode_prompt(prompts, torch.device("cpu"), 1, False)
    torch.testing.assert_close(embed(prompts), expected.float())
    bank = ConstraintBank(loaded.stack.tokenizer, loaded.stack.text_encoder, ("A photo of a {}",), embed=embed)
    bank.add_words(["cat"])
    torch.testing.assert_close(bank.embeds(0, ["cat"])[0], torch.nn.functional.normalize(expected[0].float(), dim=0))


def test_create_on_21_records_the_constraint_encoder_that_ran(tiny_21, tmp_path):
    """mclip is 2.1's default; the random tiny M-CLIP's cosines differ from the trained tiny CLIP's."""
    from conceptlab.engine.training.create import create

    loaded, decoder = tiny_21
    similarity = {}
    for chosen, encoder in ((None, "mclip"), ("prior", "prior")):
        config = create_config("pet", ("cat",), steps=2, images=False, constraint_encoder=chosen, token=f"<{encoder}>")
        result = create(config, loaded, out=tmp_path / encoder, decoder=decoder)
        assert result.concept.metadata["config"]["constraint_encoder"] == encoder
        similarity[encoder] = result.first_similarities["positive"]["pet"]
    assert similarity["mclip"] != pytest.approx(similarity["prior"], abs=1e-3)


def test_mclip_on_a_backend_without_it_is_one_line(tmp_path, run_cli):
    args = ("--model", "tiny", "--device", "cpu", "--constraint-encoder", "mclip", "--no-images", "--steps", "1")
    code, _, err = run_cli("create", "--category", "pet", "--neg", "cat", *args, "--out", tmp_path / "x")
    assert code == 2 and "--constraint-encoder prior" in err and len(err.strip().splitlines()) == 1


def test_space_text_compares_the_prompt_s_text_embedding_as_official_evolution_does(stack):
    """`--space text`: the constraint is met by the CLIP text embedding before the prior (official evolution)."""
    from conceptlab.engine.training.config import evolve_config
    from conceptlab.engine.training.constraints import ImageConstraints
    from conceptlab.engine.training.loop import start_training

    row = torch.nn.functional.normalize(
        torch.randn(stack.embedding_dim, generator=torch.Generator().manual_seed(1)), dim=0
    )
    similarities = {}
    for space in ("image", "text"):
        config = evolve_config(
            ("a",), None, initializer="pet", token=f"<evo-{space}>", space=space, learning_rate=1e-12
        )
        session = start_training(stack, config, ImageConstraints({"a": row}))
        record = session.step(1, ["a"], [])
        with torch.no_grad():
            prompt = [record.template.format(config.token)]
            text = encode_prompts(stack.tokenizer, stack.text_encoder, prompt).text_embeds
        similarities[space] = (record.positive["a"], float(torch.nn.functional.normalize(text[0].float(), dim=0) @ row))
    assert similarities["text"][0] == pytest.approx(similarities["text"][1], abs=1e-4)
    assert similarities["image"][0] != pytest.approx(similarities["image"][1], abs=1e-3)
