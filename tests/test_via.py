"""`sample --via`: a concept's prior image embedding through SDXL + IP-Adapter and Stable unCLIP, on tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest

from conceptlab.engine import ModelCache, SampleRequest, sample
from conceptlab.engine.portability.routes import load_route
from conceptlab.plugins.kandinsky import VIT_BIGG_14, VIT_L_14
from conceptlab.plugins.tiny import TINY_IMAGE_SPACE
from conceptlab.plugins.tiny.world import EMBED_DIM


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache()


def _render(cache, concept: Path, out: Path, via: str, **options) -> bytes:
    request = SampleRequest(
        (concept,),
        "a plush toy {}",
        n=1,
        seed=3,
        via=via,
        device="cpu",
        dtype="float32",
        out=out,
        grid=False,
        **options,
    )
    (image,) = sample(request, cache=cache).images
    assert image.parent == out and image.name.endswith(f"-via-{via}-seed3-0.png")
    return image.read_bytes()


def test_tiny_routes_take_the_tiny_world_space_and_the_real_ones_the_priors_encoders():
    assert TINY_IMAGE_SPACE.width == EMBED_DIM
    assert set(load_route("ip-adapter-sdxl").spaces) == {VIT_BIGG_14, TINY_IMAGE_SPACE}
    assert set(load_route("unclip").spaces) == {VIT_L_14, TINY_IMAGE_SPACE}


def test_unclip_renders_the_concept_same_seed_same_bytes(route_concepts, cache, tmp_path):
    first = _render(cache, route_concepts["a"], tmp_path / "1", "unclip")
    again = _render(cache, route_concepts["a"], tmp_path / "2", "unclip")
    other = _render(cache, route_concepts["b"], tmp_path / "3", "unclip")
    noisy = _render(cache, route_concepts["a"], tmp_path / "4", "unclip", noise_level=500)
    assert first == again
    assert other != first and noisy != first


def test_ip_adapter_sdxl_renders_the_concept_through_the_adapter(route_concepts, cache, tmp_path):
    first = _render(cache, route_concepts["a"], tmp_path / "1", "ip-adapter-sdxl")
    again = _render(cache, route_concepts["a"], tmp_path / "2", "ip-adapter-sdxl")
    other = _render(cache, route_concepts["b"], tmp_path / "3", "ip-adapter-sdxl")
    assert first == again and other != first
    # the image depends on --ip-scale: at 0 the adapter adds nothing and the text prompt alone ("a plush toy pet")
    # decides, whatever the concept
    off_a = _render(cache, route_concepts["a"], tmp_path / "5", "ip-adapter-sdxl", ip_scale=0.0)
    off_b = _render(cache, route_concepts["b"], tmp_path / "6", "ip-adapter-sdxl", ip_scale=0.0)
    assert off_a == off_b != first


@pytest.mark.parametrize(
    ("concept", "args", "message"),
    [
        (
            "kandinsky-2.1",
            ["--via", "ip-adapter-sdxl"],
            "lives in CLIP ViT-L/14 (openai/clip-vit-large-patch14), "
            "768-d, but --via ip-adapter-sdxl takes OpenCLIP ViT-bigG/14, 1280-d",
        ),
        ("kandinsky-2.1", ["--via", "ip-adapter-sdxl"], "use --via flux-ip-adapter or --via unclip."),
        ("kandinsky-2.2", ["--via", "unclip"], "use --via ip-adapter-sdxl."),
        ("a", ["--via", "unclip", "--ip-scale", "0.5"], "--ip-scale does not apply to --via unclip"),
        ("a", ["--ip-scale", "0.5"], "--ip-scale applies to --via routes only"),
        ("a", ["--via", "dall-e"], "route 'dall-e'; installed routes: flux-ip-adapter, ip-adapter-sdxl, unclip."),
        ("a", ["--via", "unclip", "--size", "30"], "needs a positive multiple of 8"),
        ("a", ["--via", "unclip", "--decoder", "tiny"], "--decoder is the decoder's"),
    ],
)
def test_via_refusals_come_before_any_weights_load(
    route_concepts, run_cli, monkeypatch, tmp_path, concept, args, message
):
    def no_loading(*_args, **_kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr("conceptlab.engine.models.model_cache.load_prior", no_loading)
    code, _, stderr = run_cli("sample", route_concepts[concept], "--prompt", "a {}", "--out", tmp_path, *args)
    assert code == 2, stderr
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_via_takes_one_concept(route_concepts, run_cli, tmp_path):
    code, _, stderr = run_cli(
        "sample", route_concepts["a"], route_concepts["b"], "--prompt", "{} {}", "--via", "unclip", "--out", tmp_path
    )
    assert code == 2 and "one concept at a time" in stderr
