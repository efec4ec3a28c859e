"""A static gallery of concepts: find them under a folder, gather their pictures and metrics, draw their family.

`find_concepts` reads a folder (concept files, run folders, evaluation JSON); `family_graph` merges every
concept's recorded lineage into one layered graph; `write_gallery` writes `index.html` (inline SVG, inline CSS,
no script, nothing fetched) and copies of the pictures, so the page works from `file://` offline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from conceptlab.engine.concept.file import load_concept
from conceptlab.engine.concept.lineage import lineage_tree
from conceptlab.engine.errors import ConceptFileError, UsageError
from conceptlab.engine.evaluation.evaluate import concept_negatives
from conceptlab.engine.gallery.html import gallery_html
from conceptlab.engine.gallery.imagine_runs import ImagineRun, copy_run_images, imagine_section_html
from conceptlab.engine.gallery.layout import FamilyGraph, family_graph
from conceptlab.engine.gallery.model import GalleryConcept, GalleryScan, Pictures, SkippedFile
from conceptlab.engine.gallery.pictures import copy_pictures
from conceptlab.engine.io.atomic import refuse_existing, refuse_system_folder, write_text
from conceptlab.engine.io.images import IMAGE_SUFFIXES, RENDER_RECORD, image_problem, render_source

SKIPPED_FOLDERS = ("checkpoints",)
"""Training checkpoints are snapshots of a concept on its way, not concepts of their own."""
LATEST_IMAGES = 4
"""How many of a run's newest checkpoint renders a card shows."""
MAX_METRICS_BYTES = 16 * 1024 * 1024
"""A larger JSON file under the folder is some other data set, not an evaluation: it is not read."""


def find_concepts(folder: Path) -> GalleryScan:
    """Every concept file under `folder` (recursively), deduplicated by sha256, with pictures and metrics.

    Checkpoint folders are skipped silently; any other `.safetensors` that is not a readable concept is
    listed in `skipped` with the reason, never raised.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; give the folder that holds your concepts (e.g. runs/).")
    by_sha: dict[str, GalleryConcept] = {}
    skipped: list[SkippedFile] = []
    for path in sorted(folder.rglob("*.safetensors")):
        if any(part in SKIPPED_FOLDERS for part in path.relative_to(folder).parts[:-1]):
            continue
        try:
            concept = load_concept(path)
            lineage_tree(concept.metadata)  # a concept whose lineage is damaged cannot be drawn
        except ConceptFileError as problem:
            skipped.append(SkippedFile(path, str(problem)))
            continue
        if concept.sha256 in by_sha:
            by_sha[concept.sha256].paths.append(path)
        else:
            by_sha[concept.sha256] = GalleryConcept(concept.token, concept.sha256, concept.metadata, [path])
    concepts = list(by_sha.values())
    evaluation_renders = renders_by_concept(folder)
    for concept in concepts:
        pictures = replace(find_pictures(concept.paths), evaluated=evaluation_renders.get(concept.sha256, ()))
        concept.pictures = readable_pictures(pictures, skipped, folder)
    metrics_files, unmatched = attach_metrics(concepts, folder, skipped)
    return GalleryScan(concepts, skipped, metrics_files, unmatched)


def readable_pictures(pictures: Pictures, skipped: list[SkippedFile], root: Path | None = None) -> Pictures:
    """`pictures` without what cannot be read as an image (a folder or FIFO named like one, a decompression
    bomb) or what resolves outside `root` (a link to a file elsewhere: a site is for sharing), each of those added
    to `skipped`."""

    def readable(path: Path | None) -> bool:
        problem = _outside(path, root) or image_problem(path) if path is not None else None
        if problem:
            skipped.append(SkippedFile(path, problem))
        return path is not None and problem is None

    def kept(paths: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(path for path in paths if readable(path))

    return Pictures(
        pictures.strip if readable(pictures.strip) else None,
        kept(pictures.latest),
        pictures.similarities if readable(pictures.similarities) else None,
        kept(pictures.grids),
        kept(pictures.evaluated),
    )


def _outside(path: Path, root: Path | None) -> str | None:
    if root is None or path.resolve().is_relative_to(Path(root).resolve()):
        return None
    return f"resolves outside {root} (a link?); not copied into the site"


def renders_by_concept(folder: Path) -> dict[str, tuple[Path, ...]]:
    """The first few images of every render folder under `folder` whose record names a concept, by its sha256."""
    renders: dict[str, tuple[Path, ...]] = {}
    for record in sorted(folder.rglob(RENDER_RECORD)):
        try:
            source = render_source(record.parent)
        except UsageError:  # a record the protocol would refuse names no concept's renders
            continue
        sha256 = source.get("concept") if source else None
        if isinstance(sha256, str) and sha256 not in renders:
            images = sorted(p for p in record.parent.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            renders[sha256] = tuple(images[:LATEST_IMAGES])
    return renders


def find_pictures(paths: Sequence[Path]) -> Pictures:
    """The pictures of the first of `paths` whose run folder has any (a copied concept may have none beside it)."""
    for path in paths:
        pictures = _run_folder_pictures(path.parent)
        if pictures.all():
            return pictures
    return Pictures()


def _run_folder_pictures(run_dir: Path) -> Pictures:
    images = run_dir / "images"
    renders = sorted(images.glob("step-*-seed-*.png"), key=_render_order)
    last_step = _render_order(renders[-1])[0] if renders else None
    latest = tuple(path for path in renders if _render_order(path)[0] == last_step)[:LATEST_IMAGES]
    strip = images / "strip.png"
    plot = run_dir / "similarities.png"
    grids = tuple(sorted([*run_dir.glob("*-grid.png"), *run_dir.glob("samples/**/*-grid.png")]))
    return Pictures(strip if strip.is_file() else None, latest, plot if plot.is_file() else None, grids)


def _render_order(path: Path) -> tuple[int, int]:
    """(step, seed) of `step-XXXX-seed-S.png`; unparsable names sort first."""
    parts = path.stem.split("-")
    try:
        return int(parts[1]), int(parts[3])
    except (IndexError, ValueError):
        return -1, -1


def attach_metrics(
    concepts: Sequence[GalleryConcept], folder: Path, skipped: list[SkippedFile] | None = None
) -> tuple[list[Path], list[str]]:
    """Give each concept its row from the evaluation JSON files under `folder`; returns (files, unmatched rows).

    A row names its concept by sha256 (rows written by this version), else by token (with its category and
    negatives): matched when exactly one concept here has that token, or exactly one of several also has that
    category and those negatives. Rows of the wrong shape, and files too deeply nested to read, are added to
    `skipped`; other JSON is not an evaluation and is left alone.
    Rows of later files (in path order) replace earlier ones.
    """
    files, unmatched = [], []
    skipped = [] if skipped is None else skipped
    for path in sorted(folder.rglob("*.json")):
        try:
            rows = _evaluation_rows(path)
        except _UnreadableMetrics as problem:
            skipped.append(SkippedFile(path, str(problem)))
            continue
        if rows is None:
            continue
        files.append(path)
        for index, row in rows:
            problem = _row_problem(row)
            if problem:
                skipped.append(SkippedFile(path, f"row {index}: {problem}"))
                continue
            match = _matching_concept(concepts, row)
            if match is None:
                unmatched.append(f"{row.get('name')} ({path.name})")
            else:
                match.metrics = row
    return files, unmatched


class _UnreadableMetrics(Exception):
    """An evaluation JSON that cannot be read at all (the reason, as a phrase)."""


def _evaluation_rows(path: Path) -> list[tuple[int, dict[str, Any]]] | None:
    """The concept rows of an evaluation JSON with their index, or None when the file is not one."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_METRICS_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    except RecursionError:
        raise _UnreadableMetrics("nested too deeply to be an evaluation; not read") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) and "metrics" in row for row in rows):
        return None
    return [(index, row) for index, row in enumerate(rows) if row.get("method") == "conceptlab"]


def _is_optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _row_problem(row: dict[str, Any]) -> str | None:
    """What keeps a metrics row from being shown (the page and the matching read these keys), or None."""
    if not isinstance(row["metrics"], dict):
        return "its metrics are not a table"
    if not isinstance(row.get("parents") or {}, dict):
        return "its parents are not a table"
    negatives = row.get("negatives") or []
    if not isinstance(negatives, list) or not all(isinstance(word, str) for word in negatives):
        return "its negatives are not a list of words"
    if not all(_is_optional_text(row.get(key)) for key in ("name", "sha256", "category")):
        return "its name, sha256 or category is not text"
    return None


def _matching_concept(concepts: Sequence[GalleryConcept], row: dict[str, Any]) -> GalleryConcept | None:
    if row.get("sha256"):
        return next((concept for concept in concepts if concept.sha256 == row["sha256"]), None)
    named = [concept for concept in concepts if concept.token == row.get("name")]
    if len(named) > 1:
        named = [
            concept
            for concept in named
            if concept.metadata.get("category") == row.get("category")
            and list(concept_negatives(concept.metadata)) == list(row.get("negatives") or [])
        ]
    return named[0] if len(named) == 1 else None


def gallery_graph(concepts: Sequence[GalleryConcept]) -> FamilyGraph:
    """One graph of every concept's recorded family, nodes merged by sha256."""
    return family_graph([lineage_tree(concept.metadata) for concept in concepts], {c.sha256 for c in concepts})


def check_output_folder(out: Path, force: bool) -> None:
    """Refuse a file, or a non-empty folder unless `force` (checked before anything is written)."""
    refuse_system_folder(out, "--out")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for the gallery.")
    if out.is_dir() and any(out.iterdir()):
        refuse_existing([out], force, "--out")


def write_gallery(
    concepts: Sequence[GalleryConcept], out: Path, force: bool, imagine_runs: Sequence[ImagineRun] = ()
) -> Path:
    """Write `out/index.html` and the pictures it shows under `out/images/`; returns the index path.

    Every file is written atomically and the index last, so the page never refers to a missing picture.
    """
    out = Path(out)
    check_output_folder(out, force)
    if not concepts and not imagine_runs:
        raise UsageError("No concepts to put in the gallery; give a folder holding .safetensors concept files.")
    links = {concept.sha256: copy_pictures(concept, out) for concept in concepts}
    pictures = [copy_run_images(run, index, out) for index, run in enumerate(imagine_runs)]
    index = out / "index.html"
    imagined = imagine_section_html(list(imagine_runs), pictures)
    write_text(index, gallery_html(concepts, gallery_graph(concepts), links, imagined))
    return index
