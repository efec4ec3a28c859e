"""A concept in stock diffusers pipelines: `load_into` against the engine's own prior sampling."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from diffusers import DiffusionPipeline, KandinskyPriorPipeline, KandinskyV22PriorPipeline
from diffusers.loaders import TextualInversionLoaderMixin
from safetensors import safe_open
from stock_priors import stock_prior_folder

from conceptlab.engine import Concept, load_into, save_concept
from conceptlab.engine.errors import ConceptFileError, UsageError
from conceptlab.engine.models.loading import LoadedPrior, ModelChoice, load_prior
from conceptlab.engine.prior.sampling import sample_image_embeds
from conceptlab.engine.prior.tokens import concept_token, encode_prompts

PORTABILITY_PAGE = Path(__file__).parents[1] / "docs" / "portability.md"
BACKENDS = {KandinskyPriorPipeline: "kandinsky-2.1", KandinskyV22PriorPipeline: "kandinsky-2.2"}
SETTINGS = {"num_inference_steps": 5, "guidance_scale": 4.0}


@pytest.fixture(scope="module")
def stock_folders(tmp_path_factory) -> dict[type, Path]:
    root = tmp_path_factory.mktemp("stock")
    return {cls: stock_prior_folder(cls, root / cls.__name__) for cls in BACKENDS}


def _engine(folder: Path, pipeline_class: type) -> LoadedPrior:
    return load_prior(ModelChoice(model=str(folder), backend=BACKENDS[pipeline_class], device="cpu", dtype="float32"))


def _concept(loaded: LoadedPrior, path: Path, token: str, seed: int, **metadata) -> Concept:
    weight = loaded.stack.text_encoder.get_input_embeddings().weight
    vector = weight.std() * torch.randn(weight.shape[1], generator=torch.Generator().manual_seed(seed))
    info = loaded.info
    recorded = {
        "backend": info.backend,
        "model": info.model,
        "text_encoder_fingerprint": info.text_encoder_fingerprint,
        "category": "pet",
        **metadata,
    }
    concept = Concept(token, vector, recorded)
    save_concept(concept, path)
    return concept


def _engine_embeds(
    loaded: LoadedPrior, concepts: list[Concept], prompt: str, seed: int, steps: int = 5, guidance: float = 4.0
) -> torch.Tensor:
    """The engine's own prior sampling of `prompt` ({} per concept), for one seed."""
    stack = loaded.stack
    tokens = [concept_token(stack.tokenizer, stack.text_encoder, c.sha256, c.vector) for c in concepts]
    with torch.no_grad():
        encoded = encode_prompts(stack.tokenizer, stack.text_encoder, [prompt.format(*tokens)])
        unconditional = encode_prompts(stack.tokenizer, stack.text_encoder, [""])
        return sample_image_embeds(
            stack.prior,
            stack.scheduler,
            encoded,
            unconditional,
            num_steps=steps,
            guidance_scale=guidance,
            generator=torch.Generator().manual_seed(seed),
        )


def _pooled_at(pipe, prompt: str, token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pipeline's pooled `text_embeds` of `prompt`, and the projection of the hidden state at `token_id`."""
    ids = pipe.tokenizer(prompt, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        output = pipe.text_encoder(ids)
        position = int((ids[0] == token_id).nonzero()[0])
        return output.text_embeds[0], pipe.text_encoder.text_projection(output.last_hidden_state[0, position])


@pytest.mark.parametrize("pipeline_class", list(BACKENDS))
def test_stock_pipeline_with_load_into_equals_the_engine(stock_folders, tmp_path, pipeline_class):
    folder = stock_folders[pipeline_class]
    loaded = _engine(folder, pipeline_class)
    pet = _concept(loaded, tmp_path / "pet.safetensors", "<new-pet>", 1)
    pipe = pipeline_class.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)

    token = load_into(pipe, tmp_path / "pet.safetensors")
    assert token == "<new-pet>"
    prompt = f"a photo of a {token}"
    stock = pipe(prompt, generator=torch.Generator().manual_seed(7), **SETTINGS).image_embeds
    torch.testing.assert_close(stock, _engine_embeds(loaded, [pet], "a photo of a {}", 7), rtol=1e-5, atol=1e-5)

    pooled, at_end = _pooled_at(pipe, prompt, pipe.tokenizer.eos_token_id)
    _, at_token = _pooled_at(pipe, prompt, pipe.tokenizer.convert_tokens_to_ids(token))
    torch.testing.assert_close(pooled, at_end)
    assert (pooled - at_token).abs().max() > 0.05

    fruit = _concept(loaded, tmp_path / "fruit.safetensors", "<new-fruit>", 2)
    assert load_into(pipe, tmp_path / "fruit.safetensors") == "<new-fruit>"
    assert load_into(pipe, tmp_path / "pet.safetensors") == "<new-pet>"  # again: nothing changes
    both = pipe("a <new-pet> and a <new-fruit>", generator=torch.Generator().manual_seed(3), **SETTINGS)
    expected = _engine_embeds(loaded, [pet, fruit], "a {} and a {}", 3)
    torch.testing.assert_close(both.image_embeds, expected, rtol=1e-5, atol=1e-5)


def test_without_load_into_the_legacy_eos_pools_at_the_new_token(stock_folders, tmp_path):
    """The failure load_into prevents: the token added by hand, CLIP pools at it instead of at end-of-text."""
    folder = stock_folders[KandinskyV22PriorPipeline]
    concept = _concept(_engine(folder, KandinskyV22PriorPipeline), tmp_path / "pet.safetensors", "<new-pet>", 1)
    by_hand = KandinskyV22PriorPipeline.from_pretrained(folder)
    by_hand.tokenizer.add_tokens(["<new-pet>"])
    token_id = by_hand.tokenizer.convert_tokens_to_ids("<new-pet>")
    with torch.no_grad():
        by_hand.text_encoder.get_input_embeddings().weight[token_id] = concept.vector
    pooled, at_token = _pooled_at(by_hand, "a photo of a <new-pet>", token_id)
    torch.testing.assert_close(pooled, at_token)

    fixed = KandinskyV22PriorPipeline.from_pretrained(folder)
    load_into(fixed, tmp_path / "pet.safetensors")
    right, _ = _pooled_at(fixed, "a photo of a <new-pet>", fixed.tokenizer.eos_token_id)
    assert (pooled - right).abs().max() > 0.05

    # a concept that is the word "pet" itself reads exactly as "a photo of a pet" once loaded
    word = fixed.tokenizer.convert_tokens_to_ids("pet</w>")
    row = fixed.text_encoder.get_input_embeddings().weight[word].detach().clone()
    save_concept(Concept("<as-pet>", row, concept.metadata), tmp_path / "as-pet.safetensors")
    load_into(fixed, tmp_path / "as-pet.safetensors")
    as_word, _ = _pooled_at(fixed, "a photo of a pet", fixed.tokenizer.eos_token_id)
    as_concept, _ = _pooled_at(fixed, "a photo of a <as-pet>", fixed.tokenizer.eos_token_id)
    torch.testing.assert_close(as_concept, as_word)


def test_load_into_refuses_another_backend_width_or_text_encoder(stock_folders, tmp_path):
    v21 = _engine(stock_folders[KandinskyPriorPipeline], KandinskyPriorPipeline)
    pipe = KandinskyV22PriorPipeline.from_pretrained(stock_folders[KandinskyV22PriorPipeline])
    _concept(v21, tmp_path / "v21.safetensors", "<a>", 1)
    with pytest.raises(ConceptFileError, match=r"trained for kandinsky-2\.1 \(KandinskyPriorPipeline\)"):
        load_into(pipe, tmp_path / "v21.safetensors")

    save_concept(Concept("<wide>", torch.zeros(64), {"backend": "kandinsky-2.2"}), tmp_path / "wide.safetensors")
    with pytest.raises(ConceptFileError, match="width 64 but this pipeline's text encoder is 32 wide"):
        load_into(pipe, tmp_path / "wide.safetensors")

    _concept(v21, tmp_path / "other.safetensors", "<b>", 1, backend="kandinsky-2.2", text_encoder_fingerprint="0" * 16)
    with pytest.raises(ConceptFileError, match="another text encoder"):
        load_into(pipe, tmp_path / "other.safetensors")
    assert "<a>" not in pipe.tokenizer.get_vocab() and "<b>" not in pipe.tokenizer.get_vocab()


def test_load_into_a_combined_or_textual_inversion_pipeline(stock_folders, tmp_path):
    folder = stock_folders[KandinskyV22PriorPipeline]
    loaded = _engine(folder, KandinskyV22PriorPipeline)
    concept = _concept(loaded, tmp_path / "pet.safetensors", "<new-pet>", 1)
    _concept(loaded, tmp_path / "same-token.safetensors", "<new-pet>", 2)
    prior = KandinskyV22PriorPipeline.from_pretrained(folder)
    assert load_into(SimpleNamespace(prior_pipe=prior), tmp_path / "pet.safetensors") == "<new-pet>"
    assert "<new-pet>" in prior.tokenizer.get_vocab()
    with pytest.raises(UsageError, match="token='<other>'"):
        load_into(prior, tmp_path / "same-token.safetensors")
    assert load_into(prior, tmp_path / "same-token.safetensors", token="<pet-2>") == "<pet-2>"

    class TextOnly(DiffusionPipeline, TextualInversionLoaderMixin):
        def __init__(self, tokenizer, text_encoder):
            super().__init__()
            self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder)

    stock = KandinskyV22PriorPipeline.from_pretrained(folder)
    pipe = TextOnly(stock.tokenizer, stock.text_encoder)
    assert load_into(pipe, tmp_path / "pet.safetensors") == "<new-pet>"
    row = pipe.text_encoder.get_input_embeddings().weight[pipe.tokenizer.convert_tokens_to_ids("<new-pet>")]
    assert torch.equal(row.detach(), concept.vector)
    assert pipe.text_encoder.text_model.eos_token_id == pipe.tokenizer.eos_token_id


def _load_into_snippet() -> str:
    section = PORTABILITY_PAGE.read_text(encoding="utf-8").split("## Use a concept in your own diffusers code", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_load_into_snippet_runs_and_equals_the_engine(stock_folders, tmp_path):
    folder = stock_folders[KandinskyV22PriorPipeline]
    loaded = _engine(folder, KandinskyV22PriorPipeline)
    concept = _concept(loaded, tmp_path / "new-pet.safetensors", "<new-pet>", 1)
    code = _load_into_snippet()
    assert len([line for line in code.splitlines() if line.strip()]) <= 6
    code = code.replace('"kandinsky-community/kandinsky-2-2-prior"', repr(str(folder)))
    code = code.replace('"runs/new-pet/new-pet.safetensors"', repr(str(tmp_path / "new-pet.safetensors")))
    namespace: dict = {}
    exec(compile(code, "docs/portability.md", "exec"), namespace)
    assert namespace["token"] == "<new-pet>"
    expected = _engine_embeds(loaded, [concept], "a photo of a {}", 42, steps=25)  # the pipeline's defaults
    torch.testing.assert_close(namespace["out"].image_embeds, expected, rtol=1e-5, atol=1e-5)


def _embeds(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(path, "pt") as file:
        tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (safe_open has no iterator)
        metadata = {key: json.loads(value) for key, value in file.metadata().items()}
    return tensors, metadata


def _assert_rows_are_the_stock_pipeline_s(tensors: dict, pipe, prompt: str, **negative) -> None:
    for row in range(tensors["image_embeds"].shape[0]):
        stock = pipe(prompt, generator=torch.Generator().manual_seed(5 + row), **negative, **SETTINGS)
        torch.testing.assert_close(tensors["image_embeds"][row : row + 1], stock.image_embeds, rtol=1e-5, atol=1e-5)
        negative_row = tensors["negative_image_embeds"][row : row + 1]
        torch.testing.assert_close(negative_row, stock.negative_image_embeds, rtol=1e-5, atol=1e-5)


def test_embed_rows_equal_the_stock_pipeline_row_by_row(stock_folders, tmp_path, run_cli, capsys):
    """Left out, --negative-prompt is the stock pipeline's default (None); `''` is the pipeline given ""."""
    folder = stock_folders[KandinskyV22PriorPipeline]
    concept = _concept(_engine(folder, KandinskyV22PriorPipeline), tmp_path / "pet.safetensors", "<new-pet>", 1)
    out = tmp_path / "embeds.safetensors"
    args = ["embed", tmp_path / "pet.safetensors", "--prompt", "a plush {}", "-n", "3", "--seed", "5"]
    settings = ["--prior-steps", "5", "--prior-guidance", "4", "--device", "cpu", "--dtype", "float32"]
    code, stdout, stderr = run_cli(*args, *settings, "--out", out)
    assert code == 0, stderr
    assert str(out) in stdout
    code, _, stderr = run_cli(*args, *settings, "--negative-prompt", "", "--out", tmp_path / "empty.safetensors")
    assert code == 0, stderr
    tensors, metadata = _embeds(out)
    empty, empty_metadata = _embeds(tmp_path / "empty.safetensors")
    assert tensors["image_embeds"].shape == tensors["negative_image_embeds"].shape == (3, 32)
    assert (metadata["negative_prompt"], empty_metadata["negative_prompt"]) == (None, "")

    pipe = KandinskyV22PriorPipeline.from_pretrained(folder)
    token = load_into(pipe, tmp_path / "pet.safetensors")
    _assert_rows_are_the_stock_pipeline_s(tensors, pipe, f"a plush {token}")
    _assert_rows_are_the_stock_pipeline_s(empty, pipe, f"a plush {token}", negative_prompt="")
    assert not torch.allclose(tensors["image_embeds"], empty["image_embeds"]), "the two defaults draw other noise"
    assert not torch.allclose(tensors["image_embeds"][0], tensors["image_embeds"][1])
    assert metadata["concepts"] == [{"token": "<new-pet>", "sha256": concept.sha256}]
    assert (metadata["prompt"], metadata["seeds"], metadata["prior_steps"]) == ("a plush <new-pet>", [5, 6, 7], 5)
    assert (metadata["backend"], metadata["model"]) == ("kandinsky-2.2", str(folder))

    before = out.read_bytes()
    capsys.readouterr()  # the stock pipeline's own progress bars
    code, _, stderr = run_cli(*args, *settings, "--out", out)
    assert code == 2 and "already exists" in stderr and "--force" in stderr and len(stderr.splitlines()) == 1
    code, _, stderr = run_cli(*args, *settings, "--out", tmp_path / "embeds.pt")
    assert code == 2 and ".safetensors" in stderr and len(stderr.splitlines()) == 1
    assert out.read_bytes() == before and not (tmp_path / "embeds.pt").exists()
