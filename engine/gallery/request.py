"""`conceptlab gallery` in one call: a folder to read and a folder to write, the page and what was read out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conceptlab.engine.errors import UsageError
from conceptlab.engine.gallery.imagine_runs import ImagineRun, find_imagine_runs
from conceptlab.engine.gallery.model import GalleryScan
from conceptlab.engine.gallery.scan import check_output_folder, find_concepts, write_gallery


@dataclass(frozen=True)
class GalleryRequest:
    """`conceptlab gallery`: one field per option."""

    folder: Path
    """Searched recursively for concept files, run folders, evaluation JSON and imagine runs."""
    out: Path
    force: bool = False


@dataclass(frozen=True)
class GalleryResult:
    index: Path
    scan: GalleryScan
    imagine_runs: tuple[ImagineRun, ...]

    @property
    def evaluated(self) -> int:
        return sum(concept.metrics is not None for concept in self.scan.concepts)


def gallery(request: GalleryRequest, on_read: Callable[[GalleryScan], None] | None = None) -> GalleryResult:
    """Read `request.folder` and write the gallery into `request.out`; `on_read(scan)` hears what was read (and
    skipped) before anything is written, or the folder is refused for holding no concept."""
    folder = request.folder
    if not folder.exists():
        raise UsageError(f"{folder} does not exist; give the folder that holds your concepts (e.g. runs/).")
    check_output_folder(request.out, request.force)
    scan = find_concepts(folder)
    imagine_runs = tuple(find_imagine_runs(folder, scan.skipped))
    if on_read:
        on_read(scan)
    if not scan.concepts and not imagine_runs:
        raise UsageError(f"No concept files under {folder}; point at a folder of runs (e.g. runs/).")
    index = write_gallery(scan.concepts, request.out, request.force, imagine_runs)
    return GalleryResult(index, scan, imagine_runs)
