"""Hostile files shared between people: each is skipped (and listed) or refused in one line, never a crash or a hang.

Tables of payloads for the gallery (metrics rows of the wrong shape, deeply nested JSON, decompression-bomb PNG
headers, folders and FIFOs named like images or concepts), for the commands that read a lineage (`info`,
`lineage`, `lineage --dot`, `verify`: records of the wrong shape, lineages nested too deep) and for reading
image folders (`evaluate --images`).
"""

import itertools
import json
import os
import signal
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from conceptlab.engine.concept.file import (
    MAX_LINEAGE_DEPTH,
    Concept,
    canonical_safetensors,
    encode_metadata,
    save_concept,
    tensor_sha256,
)
from conceptlab.engine.concept.lineage import LineageNode
from conceptlab.engine.errors import UsageError
from conceptlab.engine.gallery.layout import family_graph
from conceptlab.engine.io.images import image_problem, load_images


def one_error_line(err: str) -> str:
    """The single stderr line of a refusal (no traceback, no internal error)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    return lines[0]


def bomb_png(width: int, height: int) -> bytes:
    """A few bytes of PNG that claim `width` x `height` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def small_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    return path


class _Hang(Exception):
    pass


@pytest.fixture
def no_hang():
    """Fail the test (rather than hang the suite) when a command waits on a FIFO."""

    def alarm(*_):
        raise _Hang("the command hung")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# Lineages of the wrong shape, at any depth

PARENT = {"token": "a", "sha256": "a" * 64, "weight": 0.5, "path": "a/a.safetensors"}


def _lineage_text(depth: int) -> str:
    """The JSON text of a `lineage` value `depth` generations deep (built as text: json.dumps would recurse)."""
    text = '{"token": "leaf"}'
    for generation in range(depth):
        parent = json.dumps({**PARENT, "sha256": f"{generation:064d}"})
        text = f'{{"token": "g{generation}", "parents": [{parent}], "lineage": [{text}]}}'
    return f"[{text}]"


def write_deep_concept(path: Path, depth: int) -> Path:
    vector = torch.randn(1, 8, generator=torch.Generator().manual_seed(1))
    metadata = {"conceptlab.format": 1, "token": "<deep>", "embedding_dim": 8, "sha256": tensor_sha256(vector)}
    encoded = encode_metadata({**metadata, "category": "pet", "parents": [{**PARENT, "sha256": "f" * 64}]})
    encoded["lineage"] = _lineage_text(depth)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(canonical_safetensors("<deep>", vector, encoded))
    return path


BAD_LINEAGES = {
    "parent not an object": [{"token": "a", "parents": [5], "lineage": [{}]}],
    "weight not a number": [{"token": "a", "parents": [{**PARENT, "weight": "heavy"}], "lineage": [{}]}],
    "weight a boolean": [{"token": "a", "parents": [{**PARENT, "weight": True}], "lineage": [{}]}],
    "lineage not a list": [{"token": "a", "parents": [PARENT], "lineage": 5}],
    "parents a string": [{"token": "a", "parents": "abc", "lineage": "abc"}],
    "sha256 missing": [{"token": "a", "parents": [{"token": "b", "weight": 1}], "lineage": [{}]}],
    "sha256 a number": [{"token": "a", "parents": [{**PARENT, "sha256": 5}], "lineage": [{}]}],
    "kind a list": [{"token": "a", "kind": [1]}],
    "category an object": [{"token": "a", "category": {"x": 1}}],
    "token a number": [{"token": 7}],
    "more parents than records": [{"token": "a", "parents": [PARENT, PARENT], "lineage": [{}]}],
    "record not an object, two deep": [
        {"token": "a", "parents": [PARENT], "lineage": [{"parents": [PARENT], "lineage": [3]}]}
    ],
}


def write_bad_lineage(path: Path, lineage: list) -> Path:
    vector = torch.randn(8, generator=torch.Generator().manual_seed(2))
    save_concept(Concept("<bad>", vector, {"category": "pet", "parents": [PARENT], "lineage": lineage}), path)
    return path


LINEAGE_COMMANDS = (
    ("info",),
    ("info", "--json"),
    ("lineage",),
    ("lineage", "--json"),
    ("lineage", "--dot", "{dot}"),
    ("verify", "--parents", "{folder}"),
)


def _refused_everywhere(run_cli, path: Path, reason: str) -> None:
    dot = path.parent / "tree.dot"
    before = sorted(p.name for p in path.parent.iterdir())
    for command, *options in LINEAGE_COMMANDS:
        args = [option.format(dot=dot, folder=path.parent) for option in options]
        code, out, err = run_cli(command, path, *args)
        assert code == 2, (command, out, err)
        line = one_error_line(err)
        assert str(path) in line and reason in line, line
    assert sorted(p.name for p in path.parent.iterdir()) == before  # no --dot file written


@pytest.mark.parametrize("case", sorted(BAD_LINEAGES))
def test_a_lineage_record_of_the_wrong_shape_is_refused_in_one_line(run_cli, tmp_path, case):
    path = write_bad_lineage(tmp_path / "bad.safetensors", BAD_LINEAGES[case])
    _refused_everywhere(run_cli, path, "lineage")


@pytest.mark.parametrize("depth", [MAX_LINEAGE_DEPTH + 1, 300, 600, 5000])
def test_a_lineage_nested_too_deep_is_refused_in_one_line(run_cli, tmp_path, depth):
    path = write_deep_concept(tmp_path / "deep.safetensors", depth)
    _refused_everywhere(run_cli, path, "nested")


def test_a_lineage_at_the_depth_limit_is_shown_by_every_command(run_cli, tmp_path):
    path = write_deep_concept(tmp_path / "deep.safetensors", MAX_LINEAGE_DEPTH - 1)
    for command, *options in LINEAGE_COMMANDS:
        args = [option.format(dot=tmp_path / "tree.dot", folder=tmp_path) for option in options]
        code, out, err = run_cli(command, path, *args)
        assert code == 0, (command, err)
    code, out, _ = run_cli("lineage", path)
    assert f"{MAX_LINEAGE_DEPTH} ancestors" in out
    dot = (tmp_path / "tree.dot").read_text()
    assert dot.count(" -> ") == MAX_LINEAGE_DEPTH


def test_a_family_chained_across_many_files_is_laid_out_without_recursion():
    """Files merged by sha256 can chain into a family far deeper than one file may record."""
    pieces = []
    for start in range(0, 3000, 50):  # 60 files, each recording 50 generations of one 3,000-long chain
        chain = [LineageNode(f"t{i}", f"{i:064d}", "concept", "pet", None, 0.5) for i in range(start, start + 51)]
        for child, parent in itertools.pairwise(chain):
            child.parents.append(parent)
        pieces.append(chain[0])
    graph = family_graph(pieces, set())
    generations = {node.sha256: node.generation for node in graph.nodes}
    assert generations[f"{0:064d}"] == 3000 and generations[f"{3000:064d}"] == 0


# The gallery: what it cannot read is skipped and listed, never a crash or a hang


def good_run(runs: Path) -> Path:
    """One readable concept with a render beside it."""
    vector = torch.randn(8, generator=torch.Generator().manual_seed(3))
    save_concept(Concept("<good>", vector, {"category": "pet"}), runs / "good" / "good.safetensors")
    small_png(runs / "good" / "images" / "step-0010-seed-42.png")
    return runs / "good"


def _row(**fields) -> dict:
    return {"method": "conceptlab", "name": "<good>", "metrics": {}, **fields}


BAD_ROWS = {
    "metrics a number": _row(metrics=5),
    "metrics a string": _row(metrics="positive"),
    "metrics a list": _row(metrics=[{"positive": 1}]),
    "parents a list": _row(parents=[1, 2]),
    "parents a string": _row(parents="ab"),
    "negatives a number": _row(negatives=5),
    "negatives of numbers": _row(negatives=[1, 2]),
    "name an object": _row(name={"a": 1}),
    "sha256 a list": _row(sha256=["a"]),
    "category a number": _row(category=3),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_gallery_skips_a_metrics_row_of_the_wrong_shape(run_cli, tmp_path, case):
    runs = tmp_path / "runs"
    good_run(runs)
    rows = [BAD_ROWS[case], _row(metrics={"positive": {"mean": 0.5, "std": 0.1, "n": 4}})]
    (runs / "metrics.json").write_text(json.dumps({"rows": rows}))
    code, out, err = run_cli("gallery", runs, "--out", tmp_path / "site")
    assert code == 0, err
    assert "Traceback" not in err and "internal error" not in err
    assert f"skipped {runs / 'metrics.json'}: row 0:" in err
    assert "1 with metrics" in out  # the good row still counts
    assert "0.500 ± 0.100 (n 4)" in (tmp_path / "site" / "index.html").read_text()


def _plant(runs: Path, name: str, kind: str) -> Path:
    """Something hostile at `runs/good/<name>`: a file of `kind`."""
    path = runs / "good" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "folder":
        path.mkdir()
        small_png(path / "inside.png")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind.startswith("bomb"):
        side = {"bomb": 100_000, "bomb-small": 9000}[kind]
        path.write_bytes(bomb_png(side, side))
    elif kind == "deep-json":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "deep-lineage":
        write_deep_concept(path, 600)
    elif kind == "bad-lineage":
        write_bad_lineage(path, BAD_LINEAGES["weight not a number"])
    return path


HOSTILE_FILES = (
    ("images/step-0020-seed-42.png", "bomb", "decompression bomb"),
    ("images/strip.png", "bomb-small", "decompression bomb"),
    ("similarities.png", "bomb", "decompression bomb"),
    ("x-seed1-n4-grid.png", "bomb-small", "decompression bomb"),
    ("samples/a/x-grid.png", "folder", "not a regular file"),
    ("images/step-0020-seed-42.png", "folder", "not a regular file"),
    ("samples/x-grid.png", "fifo", "not a regular file"),
    ("images/step-0020-seed-43.png", "fifo", "not a regular file"),
    ("fifo.safetensors", "fifo", "not a regular file"),
    ("folder.safetensors", "folder", "is a folder"),
    ("metrics.json", "deep-json", "nested too deeply"),
    ("deep.safetensors", "deep-lineage", "nested too deeply"),
    ("bad.safetensors", "bad-lineage", "malformed"),
)


@pytest.mark.parametrize(("name", "kind", "reason"), HOSTILE_FILES, ids=[f"{n}-{k}" for n, k, _ in HOSTILE_FILES])
def test_gallery_skips_and_lists_what_it_cannot_read(run_cli, tmp_path, no_hang, name, kind, reason):
    runs = tmp_path / "runs"
    good_run(runs)
    path = _plant(runs, name, kind)
    code, out, err = run_cli("gallery", runs, "--out", tmp_path / "site")
    assert code == 0, err
    assert "Traceback" not in err and "internal error" not in err
    skipped = [line for line in err.splitlines() if line.startswith(f"skipped {path}:")]
    assert len(skipped) == 1 and reason in skipped[0], err
    assert "1 concept(s)" in out
    assert "&lt;good&gt;" in (tmp_path / "site" / "index.html").read_text()
    assert not [copy for copy in (tmp_path / "site").rglob("*") if copy.name.endswith(path.name)]


def test_a_fifo_named_like_render_record_or_metrics_is_not_opened(run_cli, tmp_path, no_hang):
    runs = tmp_path / "runs"
    good_run(runs)
    os.mkfifo(runs / "metrics.json")
    (runs / "renders").mkdir()
    os.mkfifo(runs / "renders" / ".rendered.json")
    code, _, err = run_cli("gallery", runs, "--out", tmp_path / "site")
    assert code == 0, err


# Image folders: evaluate --images, evolve's image parents


@pytest.mark.parametrize("side", [9000, 20_000, 100_000, 2**31 - 1])
def test_a_decompression_bomb_header_is_refused_before_decoding(tmp_path, side):
    folder = tmp_path / "images"
    small_png(folder / "a.png")
    (folder / "b.png").write_bytes(bomb_png(side, side))
    assert "decompression bomb" in image_problem(folder / "b.png")
    with pytest.raises(UsageError, match=r"b\.png claims .*decompression bomb; remove it from"):
        load_images(folder)


def test_eval_images_refuses_a_decompression_bomb_in_one_line(run_cli, tmp_path):
    folder = tmp_path / "images"
    small_png(folder / "a.png")
    (folder / "b.png").write_bytes(bomb_png(100_000, 100_000))
    code, _, err = run_cli("eval", "--images", folder, "--category", "pet", "--neg", "cat", "--model", "tiny")
    assert code == 2, err
    assert "b.png" in one_error_line(err) and "decompression bomb" in err


# Batch plans of the wrong shape: refused before anything runs, in one line

HEADER = '[plan]\nout = "out"\nmodel = "tiny"\n'
JOB = '\n[[job]]\nname = "a"\nrun = "create"\ncategory = "pet"\n'
DEEP_LIST = "[" * 50_000 + "]" * 50_000

BAD_PLANS = {
    "out a number": ("[plan]\nout = 5\n" + JOB, "out must be a folder name"),
    "out a list": ('[plan]\nout = ["a"]\n' + JOB, "out must be a folder name"),
    "out a table": ("[plan]\nout = {a = 1}\n" + JOB, "out must be a folder name"),
    "plan a number": ("plan = 5\n" + JOB, "plan is a int"),
    "job a number": ("job = 5\n" + HEADER, "job a int"),
    "job one table": (HEADER + '[job]\nname = "a"\n', "job a dict"),
    "job a list of numbers": ("job = [1, 2]\n" + HEADER, "job 1 is not a table"),
    "job a list of strings": ('job = ["a"]\n' + HEADER, "job 1 is not a table"),
    "run a list": (HEADER + '[[job]]\nname = "a"\nrun = ["create"]\n', "run must be one of"),
    "run a table": (HEADER + '[[job]]\nname = "a"\nrun = {x = 1}\n', "run must be one of"),
    "name a number": (HEADER + '[[job]]\nname = 5\nrun = "create"\n', "name must be"),
    "neg deeply nested": (HEADER + JOB + f"neg = {DEEP_LIST}\n", "too deeply"),
    "neg nested 50 deep": (HEADER + JOB + "neg = " + "[" * 50 + "]" * 50 + "\n", "neg must be a list of strings"),
    "after deeply nested": (HEADER + JOB + f"after = {DEEP_LIST}\n", "too deeply"),
    "learning rate nan": (HEADER + JOB + "lr = nan\n", "must be a finite number"),
    "learning rate inf": (HEADER + JOB + "lr = inf\n", "must be a finite number"),
    "default lambda -inf": ('[plan]\nout = "out"\nlambda = -inf\n' + JOB, "must be a finite number"),
    "out of a job a number": (HEADER + JOB + "out = 5\n", "out must be a folder inside"),
}


@pytest.mark.parametrize("case", sorted(BAD_PLANS))
def test_a_plan_of_the_wrong_shape_is_refused_in_one_line(run_cli, tmp_path, case):
    text, reason = BAD_PLANS[case]
    (tmp_path / "plan.toml").write_text(text)
    code, _, err = run_cli("batch", tmp_path / "plan.toml")
    assert code == 2, err
    line = one_error_line(err)
    assert reason in line, line
    assert len(line) < 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.toml"]


def _chain(count: int, cycle: bool) -> str:
    """`count` jobs, each after the next one (the last after the first when `cycle`): the deepest walk."""
    jobs = []
    for index in range(count):
        following = (index + 1) % count if cycle or index + 1 < count else None
        after = f'after = ["j{following}"]\n' if following is not None else ""
        jobs.append(f'\n[[job]]\nname = "j{index}"\nrun = "create"\ncategory = "pet"\n{after}')
    return HEADER + "".join(jobs)


def test_a_long_after_chain_is_ordered_without_recursion(tmp_path):
    from conceptlab.engine.batch.plan import parse_plan, topological_order

    plan = parse_plan(_chain(1500, cycle=False), tmp_path)
    assert topological_order(plan) == [f"j{index}" for index in reversed(range(1500))]


def test_a_long_after_cycle_is_refused_in_one_line(run_cli, tmp_path):
    (tmp_path / "plan.toml").write_text(_chain(1500, cycle=True))
    code, _, err = run_cli("batch", tmp_path / "plan.toml")
    assert code == 2, err
    assert "wait for each other in a circle (j0 -> j1 -> j2" in one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.toml"]
