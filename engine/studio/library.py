"""The studio's library: everything under `--root`, read from the folder each time it is asked (a restarted server
loses nothing), and named by paths relative to it (`paths.confined` turns a name back into a path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conceptlab.engine.errors import UsageError
from conceptlab.engine.gallery.imagine_runs import ImagineRun, find_imagine_runs
from conceptlab.engine.gallery.model import GalleryConcept, SkippedFile
from conceptlab.engine.gallery.scan import find_concepts
from conceptlab.engine.imagine.run import RECORD
from conceptlab.engine.io.images import IMAGE_SUFFIXES, TOOLKIT_PICTURES
from conceptlab.engine.studio.paths import confined, relative_name
from conceptlab.engine.training.run_folder import state_path

RUN_LOG = "log.jsonl"


@dataclass(frozen=True)
class Library:
    """What `--root` holds: concepts (deduplicated by sha256, as the gallery finds them), imagine runs, folders of
    images an evolve can take as a parent (picked and uploaded sets), and interrupted runs that can be resumed."""

    root: Path
    concepts: tuple[GalleryConcept, ...]
    imagine_runs: tuple[ImagineRun, ...]
    image_sets: tuple[Path, ...]
    interrupted: tuple[Path, ...]
    skipped: tuple[SkippedFile, ...]

    def name(self, path: Path) -> str:
        return relative_name(self.root, path)

    def concept_names(self) -> list[str]:
        """Each concept once, by its first path."""
        return [self.name(concept.paths[0]) for concept in self.concepts]

    def image_set_names(self) -> list[str]:
        return [self.name(folder) for folder in self.image_sets]

    def imagine_run_names(self) -> list[str]:
        return [self.name(run.folder) for run in self.imagine_runs]

    def interrupted_names(self) -> list[str]:
        return [self.name(folder) for folder in self.interrupted]

    def concept(self, name: str) -> GalleryConcept:
        """The concept a name from `concept_names` (or any of its paths) names; refused if it names none."""
        path = confined(self.root, name)
        for concept in self.concepts:
            if any(found.resolve() == path for found in concept.paths):
                return concept
        raise UsageError(f"{name!r} is no concept in the studio's library; choose one from its list.")


def read_library(root: Path) -> Library:
    """Read `root` now (an absent root is an empty library)."""
    root = Path(root)
    if not root.is_dir():
        return Library(root, (), (), (), (), ())
    scan = find_concepts(root)
    concepts = tuple(concept for concept in scan.concepts if all(_inside(root, path) for path in concept.paths))
    runs = tuple(run for run in find_imagine_runs(root) if _inside(root, run.folder))
    image_sets = tuple(folder for folder in _image_sets(root) if _inside(root, folder))
    return Library(root, concepts, runs, image_sets, _interrupted(root), tuple(scan.skipped))


def _inside(root: Path, path: Path) -> bool:
    """Whether `path`, symlinks followed, is still under `root` (a link out of the library is not listed)."""
    base = root.resolve()
    resolved = path.resolve()
    return resolved == base or base in resolved.parents


def _is_picture(path: Path) -> bool:
    return (
        path.is_file()
        and path.suffix.lower() in IMAGE_SUFFIXES
        and not any(path.match(pattern) for pattern in TOOLKIT_PICTURES)
    )


def _image_sets(root: Path) -> tuple[Path, ...]:
    """Folders holding images of their own that are neither a training run's renders, an imagine run, nor an
    evaluation's table and chart (a Compare's folder)."""
    folders = sorted({path.parent for path in root.rglob("*") if _is_picture(path)})
    return tuple(
        folder
        for folder in folders
        if not (folder / RECORD).exists()
        and not (folder / RUN_LOG).exists()
        and not (folder.parent / RUN_LOG).exists()
        and not any(folder.glob("*.csv"))
        and "checkpoints" not in folder.relative_to(root).parts
    )


def _interrupted(root: Path) -> tuple[Path, ...]:
    """Run folders with a saved training state and no finished concept: what the studio's Resume continues."""
    return tuple(
        sorted(
            state.parent.parent
            for state in root.rglob(state_path(Path()).as_posix())
            if not any(state.parent.parent.glob("*.safetensors"))
        )
    )
