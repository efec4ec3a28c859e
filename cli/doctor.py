"""`conceptlab doctor`: torch, devices, where each backend's models would load from, and the offload decision."""

from __future__ import annotations

from dataclasses import asdict

from rich.table import Table

from conceptlab.cli import options
from conceptlab.cli.output import print_json, show_table, shown
from conceptlab.engine.models.doctor import DoctorReport, doctor

DOCTOR_EXAMPLES = """
[bold]Examples[/]

  conceptlab doctor

  conceptlab doctor --json

Loads no weights: it reads folders, configs and the Hugging Face hub cache. Models come from the settings file
(conceptlab.toml, or CONCEPTLAB_CONFIG) where it names them, else from each backend's defaults.
"""


def _size(count: int | None) -> str:
    return "" if count is None else f"{count / 1e9:.2f} GB"


def _table(report: DoctorReport) -> Table:
    table = Table(title="conceptlab doctor", title_justify="left")
    for column in ("what", "name", "where", "size", "detail"):
        table.add_column(column, overflow="fold")
    table.add_row("torch", report.torch, "", "", f"CUDA {report.cuda}" if report.cuda else "built without CUDA")
    for device in report.devices:
        free = f"{_size(device.free_bytes)} free of {_size(device.total_bytes)}" if device.free_bytes else ""
        table.add_row("device", device.name, "", free, shown(device.detail))
    hub = "HF_HUB_OFFLINE true: nothing is downloaded" if report.hub_offline else "HF_HUB_OFFLINE not true"
    table.add_row("hub", hub, shown(report.hub_cache), "", "")
    table.add_row("settings", shown(report.settings_file or "none (conceptlab.toml, CONCEPTLAB_CONFIG)"), "", "", "")
    for backend in report.backends:
        table.add_section()
        for place in backend.models:
            revision = f" @ {place.revision}" if place.revision else ""
            source = "settings file" if place.from_settings else "default"
            row = (f"{backend.name} {place.role}", shown(place.reference + revision), place.where, _size(place.bytes))
            table.add_row(*row, source)
        table.add_row(f"{backend.name} offload", "", "", "", shown(backend.offload))
    return table


def doctor_command(as_json: options.JsonOpt = False, plain: options.PlainOpt = False) -> None:
    """What to check before a long run: versions, devices, models present or missing, offloading."""
    report = doctor()
    if as_json:
        print_json(asdict(report))
        return
    show_table(_table(report), plain)
