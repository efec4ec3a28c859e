"""`bench --gpu-check --quick` on a CPU: every row present with positive numbers, a well-formed file, the budget
held together; options it decides itself are refused."""

import json

import pytest
import torch

from conceptlab.engine.benchmark.timing import timed_rounds

ROW_KINDS = ("create_step", "adaptive_create", "adaptive_create_16gb", "imagine")


@pytest.fixture
def tiny_subjects(monkeypatch):
    """Every stack as the tiny world (its prior and decoder) and every pipeline as the tiny SD3 with a ViLT of the
    real width: the real-width builds take minutes on a CPU (`make gpu-check QUICK=1` runs those)."""
    from diffusers import AutoencoderTiny, StableDiffusion3Pipeline

    from conceptlab.engine.benchmark import gpu_check
    from conceptlab.plugins.benchmark import prior_stacks, sd_pipelines
    from conceptlab.plugins.tiny.sd3 import tiny_sd3_folder
    from conceptlab.plugins.tiny.taesd import tiny_taesd_folder

    def tiny_sd3(cut: bool):
        assert cut  # --quick cuts the depth
        pipeline = StableDiffusion3Pipeline.from_pretrained(tiny_sd3_folder())
        return pipeline, AutoencoderTiny.from_pretrained(tiny_taesd_folder("sd3"))

    class BuiltOnce:
        """One build lent to every pipeline row (each row's name is still its group entry's)."""

        oracle = sd_pipelines.SD35_REAL_WIDTH.oracle
        built = None

        def build(self, device, dtype, full):
            assert not full
            self.built = self.built or sd_pipelines.real_width_imagine("sd3.5-real-width", device, dtype, full)
            return self.built

    monkeypatch.setitem(sd_pipelines.REAL_WIDTH_IMAGINE, "sd3.5-real-width", tiny_sd3)
    monkeypatch.setattr(sd_pipelines, "CPU_SETTINGS", (2, 32))
    monkeypatch.setattr(gpu_check, "bench_stack", lambda name: prior_stacks.TINY_WORLD)
    shared = BuiltOnce()
    monkeypatch.setattr(gpu_check, "bench_pipeline", lambda name: shared)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny models' small kernels: a second thread only waits on a shared machine
    yield
    torch.set_num_threads(threads)


def _positive(*values) -> bool:
    return all(isinstance(value, int | float) and value > 0 for value in values)


def test_quick_gpu_check_writes_every_row_with_positive_numbers(run_cli, tmp_path, tiny_subjects):
    from conceptlab.engine.benchmark.subjects import pipeline_names

    out = tmp_path / "gpu-check.json"
    code, stdout, stderr = run_cli("bench", "--gpu-check", "--quick", "--device", "cpu", "--out", out)
    assert code == 0, stderr
    report = json.loads(out.read_text())
    assert report["kind"] == "gpu-check" and report["quick"] is True and report["memory_kind"] == "peak_rss"
    rows = report["rows"]
    assert {row["row"] for row in rows} == set(ROW_KINDS)

    steps = [row for row in rows if row["row"] == "create_step"]
    assert [row["name"] for row in steps] == ["kandinsky-2.1", "kandinsky-2.2"]
    for row in steps:
        assert row["status"] == "ran" and 1 <= row["rounds_run"] <= row["rounds_asked"] == 2
        for side in ("baseline", "ours", "compiled"):
            part = row[side]
            assert _positive(part["step_ms"], part["steps_per_s"], part["peak_memory_mb"], part["create_estimate_s"])
        assert _positive(row["compiled"]["compile_s"] + 1e-9)  # the first compiled step, minus a steady one
        for ratio in row["ratio"].values():
            assert ratio["low"] <= ratio["median"] <= ratio["high"] and ratio["pairs"] == row["rounds_run"]

    (create,) = [row for row in rows if row["row"] == "adaptive_create"]
    assert create["status"] == "ran" and create["steps"] == 10 and create["questions"] == 2  # asked at 0 and 5
    assert create["renders"] == 3  # the render sets at 0 (for the first question), 5 and 10
    phases = ("total_s", "training_s", "render_s", "oracle_s", "steps_per_s", "peak_memory_mb", "create_estimate_s")
    assert _positive(*(create[phase] for phase in phases))
    assert create["training_s"] + create["render_s"] + create["oracle_s"] == pytest.approx(create["total_s"], abs=2e-3)
    assert create["auto_offload_on_this_card"] is False and create["offload"] == "auto"  # a CPU never offloads

    (simulated,) = [row for row in rows if row["row"] == "adaptive_create_16gb"]
    assert simulated["status"] == "skipped" and "CUDA only" in simulated["reason"]

    imagine = [row for row in rows if row["row"] == "imagine"]
    assert {(row["name"], row["preview"]) for row in imagine} == {
        (name, preview) for name in pipeline_names() for preview in ("tiny", "full")
    }
    for row in imagine:
        assert row["status"] == "ran" and row["rounds"] == row["rounds_run"] == 1 and not row["cut_by_budget"]
        assert _positive(row["plain_s_per_image"], row["imagine_s_per_image"], row["peak_memory_mb"], row["seconds"])

    machine = report["machine"]
    assert machine["torch"] == torch.__version__ and machine["gpu"] is None and "no GPU" in machine["gpu_reason"]
    settings = report["settings"]
    assert settings["compile_backend"] == "eager" and settings["cut"] == {
        "text_layers": 1,
        "prior_layers": 1,
        "vision_layers": 1,
    }
    assert settings["pipelines"] == pipeline_names() and settings["baseline_dtype"] == "float32"
    assert _positive(report["total"]["seconds"]) and report["total"]["budget_s"] == 480
    assert "gpu-check" in stdout and "adaptive_create_16gb" in stdout and "CUDA only" in stdout


def test_the_rows_of_a_full_run_fit_eight_minutes_on_paper():
    """The budgets of every row a full run makes (the group's pipelines as installed) sum to at most 8 minutes."""
    from conceptlab.cli.bench import GPU_CHECK_STACKS
    from conceptlab.engine.benchmark import gpu_check
    from conceptlab.engine.benchmark.subjects import bench_pipeline, bench_stack, pipeline_names

    steps = sum(gpu_check._budget(bench_stack(name), gpu_check.STEP_BUDGET_S) for name in GPU_CHECK_STACKS)
    creates = gpu_check.CREATE_BUDGET_S + gpu_check.SIMULATED_CARD_BUDGET_S
    imagine = sum(gpu_check._budget(bench_pipeline(name), gpu_check.IMAGINE_BUDGET_S) for name in pipeline_names())
    assert steps + creates + imagine <= gpu_check.TOTAL_BUDGET_S


def test_a_deadline_stops_the_rounds_early_but_never_below_one():
    calls = []
    steps = {key: (lambda key=key: calls.append(key)) for key in ("a", "b")}
    cpu = torch.device("cpu")
    times = timed_rounds(steps, cpu, rounds=5, warmup=1, deadline=0.0)  # long past
    assert calls == ["a", "b", "a", "b"] and [len(v) for v in times.values()] == [1, 1]
    assert [len(v) for v in timed_rounds(steps, cpu, rounds=3, deadline=float("inf")).values()] == [3, 3]


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (("--gpu-check", "--repeats", "3"), "--repeats"),
        (("--gpu-check", "--stacks", "tiny", "--no-compiled"), "--stacks, --compiled"),
        (("--gpu-check", "--imagine", "tiny"), "--imagine"),
        (("--quick",), "--gpu-check"),
    ],
)
def test_gpu_check_refuses_options_it_decides_itself(run_cli, arguments, named):
    code, _, stderr = run_cli("bench", *arguments)
    assert code == 2 and named in stderr and len(stderr.strip().splitlines()) == 1


def test_gpu_check_refuses_an_existing_file_before_building_anything(run_cli, tmp_path):
    out = tmp_path / "gpu-check.json"
    out.write_text("earlier")
    code, _, stderr = run_cli("bench", "--gpu-check", "--quick", "--device", "cpu", "--out", out)
    assert code == 2 and "--force" in stderr and out.read_text() == "earlier"


def test_the_simulated_card_caps_this_process_and_lifts_the_cap_after(monkeypatch):
    """The 16 GB row's cap, on the device `auto` resolves to (no index: the current one), restored after."""
    from types import SimpleNamespace

    from conceptlab.engine.benchmark import gpu_check

    calls = []
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(total_memory=80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda index: 0.9, raising=False)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda *call: calls.append(call))
    with gpu_check.simulated_card(torch.device("cuda"), gpu_check.SIMULATED_CARD_BYTES):
        assert calls == [(0.2, 0)]  # 16 of 80 GiB
    assert calls == [(0.2, 0), (0.9, 0)]
    with gpu_check.simulated_card(torch.device("cuda"), None):  # the card as it is: no cap
        assert len(calls) == 2
