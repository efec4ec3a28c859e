"""The `kandinsky-2.2-real-width` and `flux.1-dev-real-width` rows of `bench --imagine`: registered in
`conceptlab.benchmark_pipelines`, and wired to `time_loaded` (tiny models stand in for the real-width builds)."""

from __future__ import annotations

from dataclasses import replace

import torch
from diffusers import AutoencoderTiny, FluxPipeline

from conceptlab.engine.benchmark.imagine import imagine_row
from conceptlab.engine.benchmark.subjects import pipeline_names
from conceptlab.plugins.benchmark import flux_pipelines, kandinsky_pipelines

CPU = torch.device("cpu")


def _tiny_vilt(device: torch.device):
    """The tiny ViLT in place of the 112 M-parameter random one (this checks the wiring, not the timing)."""
    from conceptlab.engine.adaptive.oracle import OracleOptions, load_oracle
    from conceptlab.engine.imagine.run import DeviceHost

    host = DeviceHost(device)
    return host, load_oracle("vilt", host, OracleOptions(model="tiny"))


def test_the_rows_are_registered_where_gpu_check_and_bench_read_them():
    assert {"kandinsky-2.2-real-width", "flux.1-dev-real-width"} <= set(pipeline_names())


def test_the_flux_row_times_plain_and_imagine_on_the_built_pipeline(monkeypatch):
    from conceptlab.plugins.tiny.flux import tiny_flux_folder, tiny_taef1_folder

    def tiny(cut: bool):
        assert cut
        return FluxPipeline.from_pretrained(tiny_flux_folder()), AutoencoderTiny.from_pretrained(tiny_taef1_folder())

    monkeypatch.setattr(flux_pipelines, "build_flux_dev", tiny)
    monkeypatch.setattr(flux_pipelines, "real_width_vilt", _tiny_vilt)
    monkeypatch.setattr(flux_pipelines, "CPU_SETTINGS", (2, 32))
    monkeypatch.setattr(flux_pipelines, "FLUX_DEV", replace(flux_pipelines.FLUX_DEV, max_sequence_length=48))
    row = imagine_row("flux.1-dev-real-width", CPU, torch.float32, 1, full=False)
    assert (row["model"], row["steps"], row["size"], row["asks_per_image"]) == ("flux.1-dev-real-width", 2, 32, 1)
    assert 0 < row["asking_s_per_image"] < row["imagine_s_per_image"]


def test_the_kandinsky_row_runs_the_prior_and_the_decoder_it_builds(monkeypatch, tiny, tiny_decoder):
    monkeypatch.setattr(kandinsky_pipelines, "build_real_width_stack", lambda *args, **depth: tiny.stack)
    monkeypatch.setattr(kandinsky_pipelines, "build_decoder", lambda cut: tiny_decoder.pipeline)
    monkeypatch.setattr(kandinsky_pipelines, "CPU_SETTINGS", (2, 32))
    monkeypatch.setattr("conceptlab.plugins.benchmark.sd_pipelines.real_width_vilt", _tiny_vilt)
    row = imagine_row("kandinsky-2.2-real-width", CPU, torch.float32, 1, full=False)
    assert (row["model"], row["steps"], row["size"], row["depth"]) == ("kandinsky-2.2-real-width", 2, 32, "cut")
    assert 0 < row["asking_s_per_image"] < row["imagine_s_per_image"]
