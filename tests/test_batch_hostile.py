"""`conceptlab batch` against hostile plans and folders: outs that alias each other or the batch's own files,
symbolic links in the output folder or in an input, private inputs. Each refusal comes before any job runs: exit
code 2, one stderr line, no traceback, and not one file anywhere changed."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

PLAN_HEADER = '[plan]\nout = "out"\nmodel = "tiny"\ndevice = "cpu"\nsteps = 1\nimages = false\n'
SENTINEL = b"outside, not the batch's\n"


def create_job(name: str, out: str | None = None) -> str:
    """The smallest job text; these plans are refused before it could run."""
    out_line = f'out = "{out}"\n' if out is not None else ""
    return f'\n[[job]]\nname = "{name}"\nrun = "create"\ncategory = "pet"\n{out_line}'


def sample_job(name: str, concept: str) -> str:
    return f'\n[[job]]\nname = "{name}"\nrun = "sample"\nconcepts = ["{concept}"]\nprompt = "a {{}}"\n'


def no_setup(_project: Path) -> None:
    """The plan alone is hostile."""


def link(path: Path, target: Path | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def out_link_outside(relative: str) -> Callable[[Path], None]:
    """`out/<relative>` is a link to a folder outside the output folder."""
    return lambda project: link(project / "out" / relative, project / "outside")


def link_in_out(relative: str, target: str) -> Callable[[Path], None]:
    """`out/<relative>` is a link to `target`, relative to the output folder."""
    return lambda project: link(project / "out" / relative, project / "out" / target)


def summary_is_a_folder(project: Path) -> None:
    (project / "out" / "batch.json").mkdir(parents=True)


def input_folder_with(name: str, target: str) -> Callable[[Path], None]:
    """An input folder `shared/` holding a real file and a link `name` to `target` (relative to the project)."""

    def setup(project: Path) -> None:
        (project / "shared").mkdir()
        (project / "shared" / "real.safetensors").write_bytes(b"not a concept")
        link(project / "shared" / name, project / target)

    return setup


def input_is_a_link(project: Path) -> None:
    link(project / "shared.safetensors", project / "outside" / "secret.txt")


ALIASING_OUTS = [
    (f"out {out!r} beside job a", create_job("a") + create_job("b", out), "'b'")
    for out in ("./a", "a/", "a/./", "./a/.", ".//a")
]
NESTED_OUTS = [
    ("out inside another job's", create_job("a") + create_job("b", "a/b"), "inside job 'a'"),
    ("out around another job's", create_job("a", "x/y") + create_job("b", "x"), "inside job 'b'"),
    ("out is OUT itself", create_job("a", "."), "'a'"),
    ("out is OUT itself, spelled ./", create_job("a", "./"), "'a'"),
]
BATCH_OWN_OUTS = [
    ("job named batch.json", create_job("batch.json"), "batch's own"),
    ("job named inputs", create_job("inputs"), "batch's own"),
    ("out .batch", create_job("a", ".batch"), "batch's own"),
    ("out ./batch.json", create_job("a", "./batch.json"), "batch's own"),
    ("out inside inputs", create_job("a", "inputs/a"), "batch's own"),
    ("out inside .batch", create_job("a", ".batch/a"), "batch's own"),
]
PLAN_CASES = [(name, jobs, no_setup, expected) for name, jobs, expected in ALIASING_OUTS + NESTED_OUTS + BATCH_OWN_OUTS]

FOLDER_CASES = [
    ("job folder is a link outside", create_job("a"), out_link_outside("a"), "job 'a'"),
    ("a parent of the out is a link outside", create_job("a", "concepts/a"), out_link_outside("concepts"), "job 'a'"),
    ("job folder is a link to another's", create_job("a") + create_job("b"), link_in_out("b", "a"), "job 'b'"),
    ("a file in the job folder links outside", create_job("a"), out_link_outside("a/log.jsonl"), "job 'a'"),
    ("inputs/ is a link outside", create_job("a"), out_link_outside("inputs"), "the batch"),
    (".batch/ is a link outside", create_job("a"), out_link_outside(".batch"), "the batch"),
    ("a record in .batch/ links outside", create_job("a"), out_link_outside(".batch/a.json"), "the batch"),
    ("batch.json links outside", create_job("a"), out_link_outside("batch.json"), "the batch"),
    ("batch.json is a folder", create_job("a"), summary_is_a_folder, "not a file"),
    ("input folder holds a loop", sample_job("s", "shared"), input_folder_with("loop", "shared"), "symbolic link"),
    ("input folder links outside", sample_job("s", "shared"), input_folder_with("x", "outside"), "symbolic link"),
    ("input folder holds a dead link", sample_job("s", "shared"), input_folder_with("x", "gone"), "symbolic link"),
    ("input is a link", sample_job("s", "shared.safetensors"), input_is_a_link, "symbolic link"),
]


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str, int]]:
    """Every entry under `root`, links not followed: its kind, its bytes (or its link's target) and its mode."""
    entries: dict[str, tuple[str, bytes | str, int]] = {}
    for folder, folders, files in os.walk(root):
        for name in [*folders, *files]:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if path.is_symlink():
                entries[str(path)] = ("link", os.readlink(path), mode)
            elif path.is_dir():
                entries[str(path)] = ("folder", b"", mode)
            else:
                entries[str(path)] = ("file", path.read_bytes(), mode)
    return entries


@pytest.mark.parametrize(
    ("jobs", "setup", "expected"),
    [case[1:] for case in PLAN_CASES + FOLDER_CASES],
    ids=[case[0] for case in PLAN_CASES + FOLDER_CASES],
)
def test_hostile_plan_or_folder_is_refused_before_anything_is_written(
    tmp_path: Path, run_cli, jobs: str, setup: Callable[[Path], None], expected: str
) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SENTINEL)
    (tmp_path / "plan.toml").write_text(PLAN_HEADER + jobs)
    setup(tmp_path)
    before = snapshot(tmp_path)

    code, _out, err = run_cli("batch", tmp_path / "plan.toml")

    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    assert expected in " ".join(err.split())
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_a_private_input_stays_private_when_staged(tmp_path: Path, run_cli, umask: int) -> None:
    private_file = tmp_path / "private.safetensors"
    private_file.write_bytes(b"not a concept")
    private_file.chmod(0o600)
    private_folder = tmp_path / "private"
    private_folder.mkdir(mode=0o700)
    (private_folder / "inside.safetensors").write_bytes(b"not a concept either")
    (private_folder / "inside.safetensors").chmod(0o600)
    plan = PLAN_HEADER + sample_job("file", "private.safetensors") + sample_job("folder", "private")
    (tmp_path / "plan.toml").write_text(plan)
    previous = os.umask(umask)
    try:
        run_cli("batch", tmp_path / "plan.toml")  # the jobs fail on these non-concepts; staging is done by then
    finally:
        os.umask(previous)

    staged = tmp_path / "out" / "inputs"
    assert stat.S_IMODE((staged / "private.safetensors").stat().st_mode) == 0o600
    assert stat.S_IMODE((staged / "private").stat().st_mode) == 0o700
    assert stat.S_IMODE((staged / "private" / "inside.safetensors").stat().st_mode) == 0o600
