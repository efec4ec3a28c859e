"""`sample --via flux-ip-adapter`: a Kandinsky 2.1 concept's prior image embedding through FLUX.1 and XLabs'
IP-Adapter, on tiny models; 2.2 concepts refused before any weights load."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from diffusers import FluxPipeline

from conceptlab.engine import ModelCache, SampleRequest, sample
from conceptlab.engine.portability.routes import load_route
from conceptlab.plugins.kandinsky import VIT_BIGG_14, VIT_L_14
from conceptlab.plugins.tiny import TINY_IMAGE_SPACE


def _render(cache, concept: Path, out: Path, **options) -> bytes:
    request = SampleRequest(
        (concept,),
        "a plush toy {}",
        n=1,
        seed=3,
        via="flux-ip-adapter",
        device="cpu",
        dtype="float32",
        out=out,
        grid=False,
        steps=2,
        **options,
    )
    (image,) = sample(request, cache=cache).images
    return image.read_bytes()


def test_the_route_takes_vit_l_14_the_2_1_priors_space_and_fluxpipeline_takes_its_embeds():
    route = load_route("flux-ip-adapter")
    assert set(route.spaces) == {VIT_L_14, TINY_IMAGE_SPACE} and VIT_L_14.width == 768
    assert "XLabs-AI/flux-ip-adapter" in route.spaces[VIT_L_14]
    assert "openai/clip-vit-large-patch14" in route.spaces[VIT_L_14]
    parameters = inspect.signature(FluxPipeline.__call__).parameters
    assert {"ip_adapter_image_embeds", "negative_prompt", "true_cfg_scale"} <= set(parameters)


def test_flux_ip_adapter_paints_the_concept_same_seed_same_bytes(route_concepts, tmp_path):
    cache = ModelCache()
    first = _render(cache, route_concepts["a"], tmp_path / "1")
    assert first == _render(cache, route_concepts["a"], tmp_path / "2")
    assert first != _render(cache, route_concepts["b"], tmp_path / "3")
    off_a = _render(cache, route_concepts["a"], tmp_path / "4", ip_scale=0.0)
    off_b = _render(cache, route_concepts["b"], tmp_path / "5", ip_scale=0.0)
    assert off_a == off_b != first  # at scale 0 the adapter adds nothing: the concept no longer matters


def test_a_2_2_concept_is_refused_in_one_line_naming_the_routes_that_fit(
    route_concepts, run_cli, monkeypatch, tmp_path
):
    monkeypatch.setattr(
        "conceptlab.engine.models.model_cache.load_prior", lambda *a, **k: pytest.fail("weights were loaded")
    )
    args = ["--prompt", "a {}", "--out", tmp_path, "--via", "flux-ip-adapter"]
    code, _, stderr = run_cli("sample", route_concepts["kandinsky-2.2"], *args)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert f"lives in {VIT_BIGG_14}, but --via flux-ip-adapter takes {VIT_L_14}" in stderr
    assert "use --via ip-adapter-sdxl." in stderr
    assert list(tmp_path.iterdir()) == []
