"""The benchmark compares like with like, and records what it documents (no timing assertions)."""

import json

import pytest
import torch

from conceptlab.engine.benchmark.step import BenchSettings, OfficialBaseline, bench_config, bench_words, official_dtype
from conceptlab.engine.benchmark.timing import interleaved_median_ms, paired_ratio
from conceptlab.engine.prior.sampling import sample_image_embeds
from conceptlab.engine.prior.tokens import encode_prompts
from conceptlab.engine.training.loop import start_training


def test_baseline_and_ours_compute_the_same_first_loss(stack):
    settings = BenchSettings(negatives=3, negative_counts=(1, 3))
    session = start_training(stack, bench_config(settings))
    baseline = OfficialBaseline(session)
    negatives = bench_words(3)
    ours = session.step(1, ["pet"], negatives)
    theirs = baseline.step(["pet"], negatives)
    assert abs(ours.loss - theirs) < 1e-5
    assert ours.loss != 0.0
    # each side trained its own row; the baseline restored every other row of its full matrix
    moved = (baseline.embedding.weight - baseline.original).abs().sum(dim=1)
    assert moved.nonzero().flatten().tolist() == [session.placeholder.token_id]
    assert not torch.equal(session.vector(), baseline.original[session.placeholder.token_id])


def test_baseline_and_ours_train_the_same_vector(stack):
    """Five steps each from the same seed: the one-row optimizer and cached constraints change the cost, not the
    result (the prior without padding differs by float rounding only)."""
    settings = BenchSettings(negatives=3, negative_counts=(1, 3))
    session = start_training(stack, bench_config(settings))
    baseline = OfficialBaseline(session)
    start = session.vector().clone()
    negatives = bench_words(3)
    for step in range(1, 6):
        ours = session.step(step, ["pet"], negatives)
        theirs = baseline.step(["pet"], negatives)
        assert abs(ours.loss - theirs) < 1e-4
    theirs_vector = baseline.embedding.weight[session.placeholder.token_id].detach()
    torch.testing.assert_close(session.vector(), theirs_vector, rtol=0, atol=1e-6)
    assert (session.vector() - start).abs().max() > 1e-4  # both moved (five AdamW steps of lr 1e-4)


def test_prior_without_padding_matches_the_full_context(stack):
    prompts = encode_prompts(stack.tokenizer, stack.text_encoder, ["a photo of a cat"])
    unconditional = encode_prompts(stack.tokenizer, stack.text_encoder, [""])
    results = [
        sample_image_embeds(
            stack.prior,
            stack.scheduler,
            prompts,
            unconditional,
            generator=torch.Generator().manual_seed(3),
            skip_padding=skip,
        )
        for skip in (True, False)
    ]
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-5)
    assert stack.prior.positional_embedding.shape[1] == stack.prior.config.num_embeddings + 4  # restored


def _scripted_rounds(monkeypatch, scripted: dict[str, list[float]]) -> None:
    """The timed rounds return these milliseconds per side (hand-made, so medians and ratios are known)."""
    from conceptlab.engine.benchmark import step

    timed_rounds = step.timed_rounds

    def rounds(steps, device, count, warmup=0, deadline=None):
        if set(steps) != set(scripted):  # a side's first steps: timed for real
            return timed_rounds(steps, device, count, warmup)
        assert warmup == 0 and all(len(times) == count for times in scripted.values())
        return {key: list(times) for key, times in scripted.items()}

    monkeypatch.setattr(step, "timed_rounds", rounds)


def test_bench_json_has_the_documented_fields(run_cli, tmp_path, monkeypatch):
    _scripted_rounds(monkeypatch, {"baseline": [20.0], "ours": [5.0]})
    out = tmp_path / "bench.json"
    code, stdout, _ = run_cli(
        "bench",
        "--stacks",
        "tiny",
        "--device",
        "cpu",
        "--repeats",
        "1",  # the render and oracle timings repeat as often as the rounds: plumbing here
        "--warmup",
        "0",
        "--no-compiled",
        "--negatives",
        "2",
        "--negative-counts",
        "1,2",
        "--sweep-repeats",
        "1",
        "--out",
        out,
    )
    assert code == 0, stdout
    report = json.loads(out.read_text())
    assert report["sections"] == ["step", "negatives", "render", "oracle"]
    assert report["memory_kind"] == "peak_rss" and report["create_steps"] == 2500
    (stack_report,) = report["stacks"]
    assert stack_report["name"] == "tiny" and stack_report["depth"]["prior_layers"] == 2
    assert report["gpu"] is None and report["baseline_dtype"] == "float32"  # float16 on CUDA, as the official code
    fields = {"dtype", "step_ms", "peak_memory_mb", "create_estimate_s", "steps_ms", "step_ms_by_negatives"}
    for side in ("baseline", "ours"):
        part = stack_report[side]
        assert set(part) == fields | {"compile_s", "constraint_encoder"} and part["compile_s"] is None
        assert part["step_ms"] > 0 and part["peak_memory_mb"] > 0 and set(part["step_ms_by_negatives"]) == {"1", "2"}
        assert len(part["steps_ms"]) == 1
    assert stack_report["baseline"]["step_ms"] == 20.0 and stack_report["ours"]["step_ms"] == 5.0
    assert stack_report["ours"]["create_estimate_s"] == 12.5 and stack_report["baseline"]["create_estimate_s"] == 50.0
    assert "re-encoded every step" in stack_report["baseline"]["constraint_encoder"]
    assert "compiled" not in stack_report and set(stack_report["ratio"]) == {"ours"}
    ratio = stack_report["ratio"]["ours"]
    assert ratio == {"median": 4.0, "low": 4.0, "high": 4.0, "unstable": False, "pairs": 1}
    assert "baseline / ours with 2 negatives" in stdout
    assert report["render"]["ms_per_image"] > 0 and report["render"]["size"] == 32
    assert report["oracle"]["clip-zeroshot_ms_per_call"] > 0 and report["oracle"]["blip2_ms_per_call"] > 0
    assert "ms/image" in stdout and "oracle per call on 2 images" in stdout


def test_bench_json_prints_the_report_on_stdout_and_out_refuses_an_existing_file(run_cli, tmp_path):
    quick = ("--stacks", "tiny", "--device", "cpu", "--repeats", "1", "--warmup", "0", "--no-render", "--no-compiled")
    code, stdout, _ = run_cli("bench", *quick, "--negative-counts", "1", "--sweep-repeats", "1", "--json")
    assert code == 0, stdout
    report = json.loads(stdout)
    assert report["stacks"][0]["name"] == "tiny" and report["render"] == {"status": "skipped"}
    (tmp_path / "bench.json").write_text("earlier")
    code, _, stderr = run_cli("bench", *quick, "--out", tmp_path / "bench.json")
    assert code == 2 and "--force" in stderr and (tmp_path / "bench.json").read_text() == "earlier"


def test_bench_refuses_an_unknown_stack(run_cli):
    code, _, stderr = run_cli("bench", "--stacks", "kandinsky-9")
    assert code == 2 and "kandinsky-9" in stderr


def test_bench_lists_every_real_width_stack():
    from conceptlab.engine.benchmark.subjects import stack_names
    from conceptlab.plugins.benchmark.prior_stacks import REAL_WIDTH_STACKS

    assert set(stack_names()) == {*REAL_WIDTH_STACKS, "tiny"}


def test_sweep_times_the_negative_counts_round_robin_after_one_warm_up_each():
    calls = []
    steps = {key: (lambda key=key: calls.append(key)) for key in ("1", "4", "64")}
    medians = interleaved_median_ms(steps, torch.device("cpu"), rounds=3)
    assert calls == ["1", "4", "64"] * 4  # one warm-up round, then three timed rounds
    assert set(medians) == {"1", "4", "64"} and all(value >= 0 for value in medians.values())


def test_paired_ratio_is_the_median_of_round_ratios_and_unstable_when_its_interval_holds_one():
    clear = paired_ratio([300.0, 310, 290, 305, 295, 300], [100.0, 101, 99, 100, 102, 98])
    assert 2.9 < clear["low"] <= clear["median"] <= clear["high"] < 3.1 and not clear["unstable"]
    noisy = paired_ratio([100.0, 300, 90, 250, 110, 95], [200.0, 100, 180, 100, 100, 100])
    assert noisy["low"] < 1 < noisy["high"] and noisy["unstable"]


def test_the_baseline_runs_at_the_official_precision_and_re_encodes_through_the_given_encoder(stack):
    """Half precision on CUDA as `use_fp16=True`; the constraint encoder (M-CLIP for 2.1) is run every step."""
    assert (
        official_dtype(torch.device("cuda")) == torch.float16 and official_dtype(torch.device("cpu")) == torch.float32
    )
    calls = []

    def encoder(prompts):
        calls.append(list(prompts))
        return torch.nn.functional.normalize(torch.ones(len(prompts), stack.embedding_dim), dim=-1)

    settings = BenchSettings(negatives=2, negative_counts=(1, 2))
    baseline = OfficialBaseline(start_training(stack, bench_config(settings)), encoder)
    for _ in range(2):
        baseline.step(["pet"], bench_words(2))
    assert len(calls) == 4  # positives and negatives, every step
    assert any("pet" in prompt for prompt in calls[0]) and any("thing1" in prompt for prompt in calls[1])


def test_the_mclip_constraint_encoder_has_the_real_width_and_unit_outputs():
    from conceptlab.plugins.benchmark.prior_stacks import (
        REAL_WIDTH_STACKS,
        build_constraint_encoder,
        build_real_width_stack,
    )

    shape = REAL_WIDTH_STACKS["kandinsky-2.1"]
    assert build_constraint_encoder(REAL_WIDTH_STACKS["kandinsky-2.2"], None) is None  # 2.2 has no M-CLIP
    stack = build_real_width_stack(
        shape, torch.device("cpu"), torch.float32, text_layers=1, prior_layers=1, vision_layers=1
    )
    encoder = build_constraint_encoder(shape, stack, layers=1)
    config = encoder.model.config
    assert (config.vocab_size, config.hidden_size, config.numDims) == (250002, 1024, 768)
    embeds = encoder(["a photo of a cat", "a photo of a dog"])
    assert embeds.shape == (2, 768) and torch.allclose(embeds.norm(dim=-1), torch.ones(2))


def test_bench_json_has_the_compiled_side_with_its_compile_time(run_cli, tmp_path, monkeypatch):
    from conceptlab.engine.training import compiled_step

    monkeypatch.setattr(compiled_step, "COMPILE_BACKEND", "eager")  # dynamo's capture only: no code generation
    # medians 20, 5 and 2 (means 22, 6.3 and 2.3); round ratios to ours 9, 1, 4 and to compiled 9, 10, 10
    _scripted_rounds(
        monkeypatch, {"baseline": [36.0, 10.0, 20.0], "ours": [4.0, 10.0, 5.0], "compiled": [4.0, 1.0, 2.0]}
    )
    quick = ("--stacks", "tiny", "--device", "cpu", "--repeats", "3", "--warmup", "1", "--no-render")
    code, stdout, stderr = run_cli("bench", *quick, "--negative-counts", "1", "--sweep-repeats", "1", "--json")
    assert code == 0, stderr
    (stack_report,) = json.loads(stdout)["stacks"]
    compiled = stack_report["compiled"]
    assert compiled["compile_s"] > 0 and len(compiled["steps_ms"]) == 3 and compiled["step_ms_by_negatives"] == {}
    steps = {side: stack_report[side]["step_ms"] for side in ("baseline", "ours", "compiled")}
    assert steps == {"baseline": 20.0, "ours": 5.0, "compiled": 2.0}
    assert stack_report["baseline"]["create_estimate_s"] == 50.0 and stack_report["ours"]["create_estimate_s"] == 12.5
    assert compiled["create_estimate_s"] == pytest.approx(5.0 + compiled["compile_s"], abs=1e-9)  # plus compiling once
    ratios = stack_report["ratio"]
    assert set(ratios) == {"ours", "compiled"} and ratios["compiled"]["pairs"] == ratios["ours"]["pairs"] == 3
    assert ratios["ours"]["median"] == 4.0 and ratios["compiled"]["median"] == 10.0
    assert 1.0 <= ratios["ours"]["low"] <= 4.0 <= ratios["ours"]["high"] <= 9.0 and ratios["ours"]["unstable"] == (
        ratios["ours"]["low"] <= 1 <= ratios["ours"]["high"]
    )
