"""The tiny world must behave like the real models in the ways the method depends on (DESIGN.md)."""

import torch
import torch.nn.functional as F

from conceptlab.engine.prior.sampling import sample_image_embeds
from conceptlab.engine.prior.tokens import encode_prompts


def _text(stack, word):
    with torch.no_grad():
        return F.normalize(
            encode_prompts(stack.tokenizer, stack.text_encoder, [f"a photo of a {word}"]).text_embeds[0],
            dim=0,
        )


def _image(stack, word, seed=0):
    with torch.no_grad():
        prompt = encode_prompts(stack.tokenizer, stack.text_encoder, [f"a photo of a {word}"])
        empty = encode_prompts(stack.tokenizer, stack.text_encoder, [""])
        generator = torch.Generator().manual_seed(seed)
        return F.normalize(
            sample_image_embeds(stack.prior, stack.scheduler, prompt, empty, generator=generator)[0], dim=0
        )


def test_text_encoder_tells_words_apart(stack):
    words = ["pet", "cat", "dog", "fruit", "chair"]
    texts = {w: _text(stack, w) for w in words}
    for i, a in enumerate(words):
        for b in words[i + 1 :]:
            assert (texts[a] @ texts[b]).item() < 0.9, (a, b)
    assert (texts["cat"] @ texts["pet"]) > (texts["cat"] @ texts["fruit"])


def test_prior_has_a_modality_gap_like_clip(stack):
    assert stack.prior.clip_std.abs().min() > 0
    for word in ("cat", "apple", "chair"):
        sims = torch.stack([_image(stack, word, seed) @ _text(stack, word) for seed in range(4)])
        assert 0.15 < sims.mean() < 0.6, (word, sims)
    own = torch.stack([_image(stack, "apple", s) @ _text(stack, "apple") for s in range(4)]).mean()
    other = torch.stack([_image(stack, "apple", s) @ _text(stack, "dog") for s in range(4)]).mean()
    assert own > other + 0.15


def test_a_changed_recipe_file_builds_anew(tmp_path, monkeypatch):
    from conceptlab.engine.io.cache import cached_build

    monkeypatch.setenv("CONCEPTLAB_CACHE", str(tmp_path / "cache"))
    builder, data = tmp_path / "builder.py", tmp_path / "templates.py"
    builder.write_text("build = 1")
    data.write_text("templates = ['a photo of a {}']")
    builds = []

    def build(folder):
        builds.append(folder)
        (folder / "weights").write_text(str(len(builds)))

    first = cached_build("toy", (builder, data), build)
    assert cached_build("toy", (builder, data), build) == first and len(builds) == 1
    data.write_text("templates = ['a painting of a {}']")  # what the builder reads changed, not the builder
    second = cached_build("toy", (builder, data), build)
    assert second != first and len(builds) == 2 and (second / "weights").read_text() == "2"


def test_image_encoder_shares_the_space(stack):
    """A photo of a word (new noise, unseen in training) lands nearest that word's image embeddings (the prior's
    outputs for "a photo of a {word}") and nearest its text, across the modality gap: what evolve's image
    constraints and the clip-zeroshot oracle rely on."""
    from conceptlab.engine.training.evolve import image_embeddings
    from conceptlab.plugins.tiny.world import synthetic_picture

    words = ["cat", "guitar", "apple", "dog"]
    photos = F.normalize(
        image_embeddings(stack, [synthetic_picture(w, variant=10**6 + i) for i, w in enumerate(words)])
    )
    priors = F.normalize(
        torch.stack([torch.stack([_image(stack, w, seed) for seed in range(8)]).mean(0) for w in words])
    )
    texts = torch.stack([_text(stack, word) for word in words])
    to_prior, to_text = photos @ priors.T, photos @ texts.T
    assert (to_prior.argmax(dim=1) == torch.arange(len(words))).all(), to_prior
    assert (to_text.argmax(dim=1) == torch.arange(len(words))).all(), to_text
    assert (to_prior.diag() > 0.85).all() and (to_text.diag() > 0.15).all() and (to_text.diag() < 0.7).all()
