"""The benchmark compares like with like, and records what it documents (no timing assertions)."""

import json

import torch

from conceptlab.engine.prior.sampling import sample_image_embeds
from conceptlab.engine.prior.tokens import encode_prompts
from conceptlab.engine.training.benchmark import (
    BenchSettings,
    OfficialBaseline,
    bench_config,
    bench_words,
    interleaved_median_ms,
)
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


def test_bench_json_has_the_documented_fields(run_cli, tmp_path):
    out = tmp_path / "bench.json"
    code, stdout, _ = run_cli(
        "bench",
        "--stacks",
        "tiny",
        "--device",
        "cpu",
        "--repeats",
        "1",
        "--warmup",
        "0",
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
    for side in ("baseline", "ours"):
        part = stack_report[side]
        assert set(part) == {"dtype", "step_ms", "peak_memory_mb", "create_estimate_s", "step_ms_by_negatives"}
        assert part["step_ms"] > 0 and part["peak_memory_mb"] > 0 and set(part["step_ms_by_negatives"]) == {"1", "2"}
    assert stack_report["ratio"] == stack_report["baseline"]["step_ms"] / stack_report["ours"]["step_ms"]
    assert "ratio (baseline / ours) with 2 negatives" in stdout
    assert report["render"]["ms_per_image"] > 0 and report["render"]["size"] == 32
    assert report["oracle"]["clip-zeroshot_ms_per_call"] > 0 and report["oracle"]["blip2_ms_per_call"] > 0
    assert "ms/image" in stdout and "oracle per call on 2 images" in stdout


def test_bench_json_prints_the_report_on_stdout_and_out_refuses_an_existing_file(run_cli, tmp_path):
    quick = ("--stacks", "tiny", "--device", "cpu", "--repeats", "1", "--warmup", "0", "--no-render")
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
    from conceptlab.cli.bench import STACK_NAMES
    from conceptlab.plugins.real_width import REAL_WIDTH_STACKS

    assert set(STACK_NAMES) == {*REAL_WIDTH_STACKS, "tiny"}


def test_sweep_times_the_negative_counts_round_robin_after_one_warm_up_each():
    calls = []
    steps = {key: (lambda key=key: calls.append(key)) for key in ("1", "4", "64")}
    medians = interleaved_median_ms(steps, torch.device("cpu"), rounds=3)
    assert calls == ["1", "4", "64"] * 4  # one warm-up round, then three timed rounds
    assert set(medians) == {"1", "4", "64"} and all(value >= 0 for value in medians.values())
