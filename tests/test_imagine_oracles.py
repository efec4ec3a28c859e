"""The `qwen2.5-vl` oracle (tiny, built locally) through its real code path, and previews at each oracle's size."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from PIL import Image

from conceptlab.engine.adaptive.answers import normalize_answer
from conceptlab.engine.adaptive.oracle import OracleOptions, Question, fit_to_oracle, load_oracle
from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.imagine import ImagineRequest, imagine, load
from conceptlab.engine.imagine.negatives import NegativeList
from conceptlab.engine.imagine.run import DeviceHost

CPU = DeviceHost(torch.device("cpu"))
QUESTION = Question("pet", wording="What kind of pet is this?")


@pytest.fixture(scope="module")
def qwen():
    oracle = load_oracle("qwen2.5-vl", CPU, OracleOptions(model="tiny"))
    oracle.input_size()  # loads it
    return oracle


def _picture(seed: int = 0, side: int = 64) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (side, side, 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def test_the_model_gets_the_chat_template_with_the_prefix_the_question_and_one_token_per_merged_patch(qwen):
    seen: list[dict] = []
    vision: list[tuple] = []
    model = qwen._model.model  # what generate calls with the tokens, below the language-model head
    hooks = [
        model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs), with_kwargs=True),
        model.visual.register_forward_pre_hook(
            lambda module, args, kwargs: vision.append((*args, *kwargs.values())), with_kwargs=True
        ),
    ]
    try:
        qwen.ask([_picture()], QUESTION, [])
    finally:
        for hook in hooks:
            hook.remove()
    first = seen[0]
    prompt = qwen._tokenizer.decode(first["input_ids"][0])
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>"
        + "<|image_pad|>" * 4  # a 56 x 56 preview: 4 x 4 patches of 14, merged 2 x 2
        + "<|vision_end|>Answer with a single word. What kind of pet is this?<|im_end|>\n<|im_start|>assistant\n"
    )
    patches, grid = vision[0][:2]
    assert len(vision) == 1 and grid.tolist() == [[1, 4, 4]] and patches.shape[0] == 16
    assert first["mm_token_type_ids"].sum() == 4  # the image tokens, marked for M-RoPE
    assert len(seen) > 1  # it generated token after token


def test_the_answer_is_the_greedy_continuation_decoded(qwen):
    """Greedy decoding by hand, one full forward pass per token with no cache, gives what `ask` returned."""
    from conceptlab.plugins.oracles.qwen_vl import MAX_ANSWER_TOKENS

    images = [_picture(1), _picture(2)]
    answers = qwen.ask(images, QUESTION, [])
    for image, answer in zip(images, answers, strict=True):
        inputs = qwen.inputs([image], QUESTION)
        start = inputs["input_ids"].shape[1]
        with torch.inference_mode():
            for _ in range(MAX_ANSWER_TOKENS):
                logits = qwen._model(**inputs, use_cache=False).logits[:, -1]
                token = logits.argmax(-1, keepdim=True)
                if int(token) == qwen._model.generation_config.eos_token_id:
                    break
                inputs["input_ids"] = torch.cat([inputs["input_ids"], token], dim=1)
                inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(token)], dim=1)
                inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(token)], 1)
        expected = qwen._tokenizer.decode(inputs["input_ids"][0, start:], skip_special_tokens=True).strip()
        assert answer == expected


def test_imagine_with_the_qwen_oracle_keeps_its_normalised_answers_as_negatives(tmp_path):
    request = ImagineRequest(
        category="pet", n=1, model="tiny-sd3", device="cpu", dtype="float32", steps=4, out=tmp_path,
        oracle="qwen2.5-vl", oracle_model="tiny", ask_until=1.0,
    )  # fmt: skip
    record = json.loads(imagine(request).record.read_text())
    image = record["images"][0]
    raw = [entry["answer"] for entry in image["answers"]]
    assert [entry["step"] for entry in image["answers"]] == [0, 1, 2, 3]
    expected = NegativeList("pet")
    for step, answer in enumerate(raw):
        expected.add_answers([answer], step + 1)
    assert image["negatives"] == expected.entries
    for entry in image["negatives"]:
        assert entry["word"] == normalize_answer(str(entry["word"])) and entry["word"]
    assert record["settings"]["oracle"] == "qwen2.5-vl"


def test_create_adaptive_asks_the_qwen_oracle(tmp_path, run_cli):
    out = tmp_path / "qwen"
    code, _, err = run_cli("create", "--category", "pet", "--model", "tiny", "--device", "cpu", "--oracle",
                           "qwen2.5-vl", "--oracle-model", "tiny", "--no-images", "--steps", "2", "--every", "1",
                           "--out", out)  # fmt: skip
    assert code == 0, err
    metadata = load_concept(out / "new-pet.safetensors").metadata
    assert metadata["config"]["oracle"] == "qwen2.5-vl"
    assert sorted({answer["step"] for answer in metadata["oracle_answers"]}) == [0, 1]


@pytest.mark.parametrize("weights", [None, "nowhere"])
def test_qwen_without_its_weights_is_refused_in_one_line(run_cli, tmp_path, weights):
    more = ["--oracle-model", str(tmp_path / weights)] if weights else []
    code, _, err = run_cli("imagine", "--category", "pet", "--model", "tiny-sd3", "--oracle", "qwen2.5-vl",
                           "--steps", "2", "--out", tmp_path / "o", *more)  # fmt: skip
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "Could not load the Qwen2.5-VL oracle" in err and "--oracle-model tiny" in err
    assert not list((tmp_path / "o").glob("*.png"))


class Sized:
    """An oracle that takes `side`-pixel images, and keeps the sizes it was shown."""

    name = "sized"

    def __init__(self, side: int):
        self.side, self.sizes = side, []

    def input_size(self) -> int:
        return self.side

    def ask(self, images, question, known):
        self.sizes += [image.size for image in images]
        return ["cat"]


def test_previews_are_decoded_from_fewer_latents_at_the_oracle_s_size(tmp_path):
    request = ImagineRequest(category="pet", n=1, model="tiny-sdxl", device="cpu", dtype="float32", steps=2)
    loaded = load(request)
    decoder = loaded.route.preview_decoder
    shapes: list[tuple[int, ...]] = []
    decode = decoder.decode
    decoder.decode = lambda latents, *a, **k: shapes.append(tuple(latents.shape)) or decode(latents, *a, **k)
    small, large = Sized(16), Sized(128)
    try:
        imagine(replace(request, out=tmp_path / "a"), oracle=small, loaded=loaded)
        imagine(replace(request, out=tmp_path / "b"), oracle=large, loaded=loaded)
    finally:
        del decoder.decode
    assert loaded.settings.size == 64 and small.sizes == [(16, 16)] and large.sizes == [(64, 64)]  # never enlarged
    assert shapes == [(1, 4, 8, 8), (1, 4, 32, 32)]  # 64 px are 32 x 32 latents; 16 px need 8 x 8


def test_each_oracle_reads_its_input_size_from_its_processor(tiny):
    from conceptlab.plugins.tiny import qwen_vl, vilt, world

    assert load_oracle("vilt", CPU, OracleOptions(model="tiny")).input_size() == vilt.IMAGE_SIZE
    assert load_oracle("blip2", CPU, OracleOptions(model="tiny")).input_size() == 32
    assert load_oracle("qwen2.5-vl", CPU, OracleOptions(model="tiny")).input_size() == qwen_vl.SIDE
    assert load_oracle("clip-zeroshot", tiny, OracleOptions()).input_size() == world.IMAGE_SIZE


def test_fit_to_oracle_shrinks_the_shorter_edge_to_the_side_and_never_enlarges():
    assert fit_to_oracle(Image.new("RGB", (100, 50)), 20).size == (40, 20)
    assert fit_to_oracle(Image.new("RGB", (16, 16)), 20).size == (16, 16)
    assert fit_to_oracle(Image.new("RGB", (64, 64)), None).size == (64, 64)


def test_the_real_width_bench_row_runs_the_built_pipeline_and_a_real_width_vilt(monkeypatch):
    """The wiring of `bench --imagine sd3.5-real-width`, with the tiny SD3 standing in for the 0.7 B-parameter build."""
    from diffusers import AutoencoderTiny, StableDiffusion3Pipeline

    from conceptlab.engine.benchmark.imagine import imagine_row
    from conceptlab.plugins.benchmark import sd_pipelines
    from conceptlab.plugins.tiny.sd3 import tiny_sd3_folder
    from conceptlab.plugins.tiny.taesd import tiny_taesd_folder

    def tiny(cut: bool):
        assert cut
        return StableDiffusion3Pipeline.from_pretrained(tiny_sd3_folder()), AutoencoderTiny.from_pretrained(
            tiny_taesd_folder("sd3")
        )

    monkeypatch.setitem(sd_pipelines.REAL_WIDTH_IMAGINE, "sd3.5-real-width", tiny)
    monkeypatch.setattr(sd_pipelines, "CPU_SETTINGS", (2, 32))
    row = imagine_row("sd3.5-real-width", torch.device("cpu"), torch.float32, 1, full=False)
    assert (row["steps"], row["size"], row["asks_per_image"], row["depth"]) == (2, 32, 1, "cut")
    assert row["oracle"].startswith("vilt") and 0 < row["asking_s_per_image"] < row["imagine_s_per_image"]


def test_qwen_knows_its_size_before_it_loads():
    from conceptlab.engine.adaptive.oracle import OracleWithWeights
    from conceptlab.engine.models.offload import module_bytes
    from conceptlab.plugins.oracles.qwen_vl import PUBLISHED_PARAMETERS

    oracle = load_oracle("qwen2.5-vl", CPU, OracleOptions(model="tiny"))
    before = oracle.expected_bytes()
    oracle.ask([_picture()], QUESTION, [])
    assert isinstance(oracle, OracleWithWeights)
    assert before == pytest.approx(module_bytes(oracle.modules()), abs=64)  # its rotary buffers are not stored
    assert load_oracle("qwen2.5-vl", CPU, OracleOptions()).expected_bytes() == PUBLISHED_PARAMETERS * 4  # not on disk
