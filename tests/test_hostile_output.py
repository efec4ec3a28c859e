"""Hostile text from shared files (concepts, evaluation JSON) never acts on what people read.

One table of payloads per medium: HTML (the gallery), DOT (`lineage --dot`), the terminal (`info`, `lineage`,
`verify`, `gallery`, `evaluate`'s table) and JSON output (`--json`, `write_json`). Each payload must come out
inert: escaped, quoted or shown as a visible escape, never raw. The gallery in Chromium is in test_gallery.py.
"""

import json
import os
import pickle
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from conceptlab.engine.concept.convert import convert_embedding
from conceptlab.engine.concept.file import Concept, save_concept
from conceptlab.engine.concept.lineage import lineage_dot, lineage_tree
from conceptlab.engine.errors import ConceptFileError
from conceptlab.engine.gallery.scan import find_concepts, write_gallery
from conceptlab.engine.io.atomic import write_json
from conceptlab.engine.io.printable import printable

HTML_PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    "</style><script>alert(1)</script>",
    "</title><iframe srcdoc='<script>alert(1)</script>'>",
    "<a href=javascript:alert(1)>x</a>",
    "]]><!--",
)
DOT_PAYLOADS = (
    '"]; evil [label="x',
    'x" -> "y',
    "}; digraph evil { a -> b",
    'a\\\\"]; b',
    "line\nnode [shape=none]",
    "\\N\\G\\E",
)
TERMINAL_PAYLOADS = (
    "\x1b[2J\x1b[H",
    "\x1b]0;title\x07",
    "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "\u202eevil\u202c",
    "\u2066isolate\u2069",
    "\x9b31mC1-CSI",
    "\x07bell\x08\x7f",
    "one\ntwo\rthree",
    "[bold]markup[/bold]",
)
NON_FINITE = (float("nan"), float("inf"), float("-inf"))
UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
"""What must never reach a terminal raw (line breaks of the output's own layout aside)."""


def _hostile_concept(token: str, seed: int, text: str, **metadata) -> Concept:
    """A concept whose every free-text field holds `text`, with a parent whose sha256 and token are `text` too."""
    vector = torch.randn(8, generator=torch.Generator().manual_seed(seed))
    parent = {"token": text, "sha256": text, "weight": 0.5, "path": text, "kind": text, "category": text}
    record = {
        "kind": text,
        "category": text,
        "initializer": text,
        "created": text,
        "model": text,
        "positives": [text],
        "weights": [1.0],
        "negatives": [{"word": text, "step": 3, "source": text}],
        "parents": [parent],
        "lineage": [{"token": text, "kind": text, "category": text, "created": text}],
        text: text,
        **metadata,
    }
    return Concept(token, vector, record)


# HTML: the gallery page


class _ElementCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.extend(attrs)


def hostile_gallery(folder: Path, payloads: tuple[str, ...]) -> Path:
    """Concepts and an evaluation JSON full of `payloads` under `folder/runs`; the gallery written to `folder/site`."""
    rows = []
    for index, payload in enumerate(payloads):
        concept = _hostile_concept(f"<c{index}>", index, payload)
        save_concept(concept, folder / "runs" / f"c{index}.safetensors")
        summary = {"mean": payload, "std": payload, "n": payload}
        rows.append(
            {
                "method": "conceptlab",
                "sha256": concept.sha256,
                "name": payload,
                "category": payload,
                "negatives": [payload],
                "metrics": {"positive": summary, "negative": "NON_FINITE_SUMMARY"},
                "parents": {payload: {"weight": payload, "similarity": {"mean": 1, "std": 0, "n": [payload]}}},
            }
        )
    non_finite = '{"mean": NaN, "std": -Infinity, "n": 3}'  # what json.dumps writes for nan/inf; Python reads it
    text = json.dumps({"rows": rows}).replace('"NON_FINITE_SUMMARY"', non_finite)
    (folder / "runs" / "metrics.json").write_text(text, encoding="utf-8")
    return write_gallery(find_concepts(folder / "runs").concepts, folder / "site", force=False)


def test_gallery_page_writes_no_payload_from_concepts_or_evaluation_json(tmp_path):
    page = hostile_gallery(tmp_path, HTML_PAYLOADS).read_text(encoding="utf-8")
    for payload in HTML_PAYLOADS:
        assert payload not in page or not set("<>\"'") & set(payload)  # `javascript:` as text is only text
    parsed = _ElementCollector()
    parsed.feed(page)
    assert {"script", "iframe", "style"} & parsed.tags == {"style"}  # the page's own style sheet only
    assert {"img", "svg"} & parsed.tags == {"svg"}  # no pictures here; the family graph is the one svg
    assert not [name for name, _ in parsed.attributes if name.startswith("on")]
    links = [value or "" for name, value in parsed.attributes if name in ("href", "src", "xlink:href", "action")]
    assert not [link for link in links if ":" in link.split("/")[0]]  # relative paths and #anchors, no scheme
    assert "NaN" not in page and "Infinity" not in page


def test_gallery_numbers_from_json_are_finite_or_a_dash(tmp_path):
    page = hostile_gallery(tmp_path, ("<b>x</b>",)).read_text(encoding="utf-8")
    positive = re.search(r'<tr data-metric="positive">.*?</tr>', page).group()
    negative = re.search(r'<tr data-metric="negative">.*?</tr>', page).group()
    assert '<td class="num">&ndash;</td>' in positive  # n is not a count: no numbers at all
    assert "&ndash; ± &ndash; (n 3)" in negative  # NaN and Infinity read from the file show as dashes


# DOT: lineage --dot

DOT_STATEMENT = re.compile(r'  n\d+ (-> n\d+ )?\[label="(?:[^"\\\n]|\\.)*"\];')


@pytest.mark.parametrize("payload", DOT_PAYLOADS + TERMINAL_PAYLOADS + HTML_PAYLOADS)
def test_lineage_dot_quotes_every_id_and_label(payload):
    metadata = _hostile_concept("<child>", 0, payload).metadata | {"token": payload, "sha256": "a" * 64}
    text = lineage_dot(lineage_tree(metadata))
    header, *statements, closing = text.splitlines()
    assert header == "digraph lineage {" and closing == "}"
    assert statements[:2] == ["  rankdir=BT;", '  node [shape=box, style=rounded, fontname="Helvetica"];']
    for statement in statements[2:]:
        assert DOT_STATEMENT.fullmatch(statement), statement
    assert not UNSHOWABLE.search(text)


def test_lineage_dot_file_from_the_cli_is_only_quoted_statements(run_cli, tmp_path):
    save_concept(_hostile_concept("<child>", 0, DOT_PAYLOADS[0]), tmp_path / "child.safetensors")
    code, _, err = run_cli("lineage", tmp_path / "child.safetensors", "--dot", tmp_path / "tree.dot")
    assert code == 0, err
    statements = (tmp_path / "tree.dot").read_text().splitlines()[3:-1]
    assert len(statements) == 3 and all(DOT_STATEMENT.fullmatch(statement) for statement in statements)


# The terminal: info, lineage, verify, gallery, evaluate


@pytest.mark.parametrize("payload", TERMINAL_PAYLOADS)
def test_info_lineage_and_verify_show_control_characters_as_escapes(run_cli, tmp_path, payload):
    path = tmp_path / "runs" / "concept.safetensors"
    save_concept(_hostile_concept(f"<x{payload}>", 0, payload), path)
    for args in (("info", path), ("lineage", path), ("verify", path, "--parents", tmp_path / "runs")):
        code, out, err = run_cli(*args)
        assert code == 0, err
        assert not UNSHOWABLE.search(out + err), (args, out)
        assert payload not in out or not UNSHOWABLE.search(payload)  # markup-like text is shown as typed
    if "\x1b" in payload:
        assert "\\x1b" in out


@pytest.mark.parametrize("payload", TERMINAL_PAYLOADS)
def test_gallery_lists_skipped_files_and_unmatched_rows_as_escapes(run_cli, tmp_path, payload):
    runs = tmp_path / "runs"
    save_concept(_hostile_concept("<x>", 0, "pet"), runs / "x.safetensors")
    (runs / f"junk{payload.replace('/', '')}.safetensors").write_bytes(b"\x00" * 64)
    row = {"method": "conceptlab", "name": payload, "metrics": {}}
    (runs / "metrics.json").write_text(json.dumps({"rows": [row]}))
    code, out, err = run_cli("gallery", runs, "--out", tmp_path / "site")
    assert code == 0, err
    assert "skipped" in err and "match no single concept" in err
    assert not UNSHOWABLE.search(out + err), err


def test_evaluate_table_shows_names_and_categories_as_escapes(capsys):
    from conceptlab.cli.evaluate import print_table
    from conceptlab.engine.evaluation.evaluate import EvaluationRow
    from conceptlab.engine.evaluation.metrics import ConceptMetrics, Summary

    rows = [
        EvaluationRow("conceptlab", ConceptMetrics(payload, payload, (), {"positive": Summary(0.5, 0.1, 2)}, {}))
        for payload in TERMINAL_PAYLOADS
    ]
    print_table(rows, "clip")
    assert not UNSHOWABLE.search(capsys.readouterr().out)


def test_printable_keeps_text_and_escapes_each_control_character():
    assert printable("<new-pet> café 猫") == "<new-pet> café 猫"
    assert printable("\x1b[2J\u202e\x9b\x7f\n") == "\\x1b[2J\\u202e\\x9b\\x7f\\x0a"


# JSON output: --json and the files the engine writes


def _strict_json(text: str):
    def refuse(constant: str) -> None:
        raise AssertionError(f"bare {constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("number", NON_FINITE)
def test_info_and_lineage_json_turn_non_finite_numbers_into_null(run_cli, tmp_path, number):
    concept = _hostile_concept(
        "<x>", 0, "\x1b[2J", learning_rate=number, final_similarities={"positive": {"pet": number}}, weights=[number]
    )
    concept.metadata["parents"][0]["weight"] = number
    save_concept(concept, tmp_path / "x.safetensors")
    code, out, err = run_cli("info", tmp_path / "x.safetensors", "--json")
    assert code == 0, err
    shown = _strict_json(out)
    assert shown["learning_rate"] is None and shown["weights"] == [None]
    assert shown["final_similarities"] == {"positive": {"pet": None}}
    assert shown["category"] == "\x1b[2J" and "\x1b" not in out  # JSON's own escape, \u001b
    code, out, err = run_cli("lineage", tmp_path / "x.safetensors", "--json")
    assert code == 0, err
    assert _strict_json(out)["parents"][0]["weight"] is None


@pytest.mark.parametrize("number", NON_FINITE)
def test_write_json_writes_null_for_non_finite_numbers(tmp_path, number):
    write_json(tmp_path / "out.json", {"rows": [{"mean": number, "values": (1.0, number)}], "n": 2})
    written = _strict_json((tmp_path / "out.json").read_text())
    assert written == {"n": 2, "rows": [{"mean": None, "values": [1.0, None]}]}


# Noise: a refused pickle is one line on stderr


class _Payload:
    def __reduce__(self):
        return (os.system, ("true",))


def _plain_pickle(path: Path) -> Path:
    """A pickle written by `pickle` itself (protocol 4), not `torch.save`: torch warns about its protocol."""
    path.write_bytes(pickle.dumps({"t2": {"<x>": _Payload()}}, protocol=4))
    return path


def test_convert_of_a_refused_pickle_prints_only_the_one_line_error(tmp_path):
    _plain_pickle(tmp_path / "raw.bin")
    conceptlab = Path(sys.executable).parent / "conceptlab"
    command = [conceptlab, "convert", "raw.bin", "--model", "tiny", "--out", "x.safetensors"]
    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2
    assert finished.stderr.count("\n") == 1 and finished.stderr.startswith("error: raw.bin")
    assert "Warning" not in finished.stderr and not (tmp_path / "x.safetensors").exists()


def test_convert_refuses_without_warnings(tmp_path, recwarn):
    with pytest.raises(ConceptFileError):
        convert_embedding(_plain_pickle(tmp_path / "raw.bin"), model="tiny")
    assert not recwarn.list
