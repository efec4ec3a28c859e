"""Concept lineages: a child records its parents and their own records, so its whole family tree travels with it.

A child's metadata holds `parents` (token, sha256, weight, path, kind, category) and `lineage`, the parents'
own metadata in the same order, each with its own `parents` and `lineage`: the tree is known from the child alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conceptlab.engine.concept.file import Concept, load_concept, read_metadata
from conceptlab.engine.errors import ConceptFileError
from conceptlab.engine.io.atomic import refuse_existing, write_text
from conceptlab.engine.io.printable import printable

OMITTED_FROM_LINEAGE = ("oracle_answers", "config", "final_similarities")
"""Bulky keys a parent's record does without inside its child (each parent keeps them in its own file)."""


def parent_record(concept: Concept, weight: float, path: Path | str) -> dict[str, Any]:
    meta = concept.metadata
    return {
        "token": concept.token,
        "sha256": concept.sha256,
        "weight": weight,
        "path": str(path),
        "kind": meta.get("kind"),
        "category": meta.get("category"),
    }


def lineage_record(concept: Concept) -> dict[str, Any]:
    """The parent's metadata as its child keeps it."""
    return {key: value for key, value in concept.metadata.items() if key not in OMITTED_FROM_LINEAGE}


@dataclass
class LineageNode:
    token: str
    sha256: str
    kind: str | None
    category: str | None
    created: str | None
    weight: float | None = None
    """The weight this node had in its child (None for the root)."""
    parents: list[LineageNode] = field(default_factory=list)

    def walk(self) -> list[LineageNode]:
        """This node and every ancestor, depth first."""
        return [self, *(node for parent in self.parents for node in parent.walk())]

    def as_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "sha256": self.sha256,
            "kind": self.kind,
            "category": self.category,
            "created": self.created,
            "weight": self.weight,
            "parents": [parent.as_json() for parent in self.parents],
        }


def lineage_tree(metadata: dict[str, Any], weight: float | None = None) -> LineageNode:
    """The family tree recorded in `metadata` (a concept's, or a parent record's inside a child)."""
    parents = metadata.get("parents") or []
    records = metadata.get("lineage") or []
    if len(records) != len(parents):
        raise ConceptFileError(f"{metadata.get('token')}: {len(parents)} parents but {len(records)} lineage records.")
    node = LineageNode(
        metadata.get("token", "?"),
        metadata.get("sha256", "?"),
        metadata.get("kind"),
        metadata.get("category"),
        metadata.get("created"),
        weight,
    )
    for parent, record in zip(parents, records, strict=True):
        node.parents.append(lineage_tree({**record, "sha256": parent["sha256"]}, parent.get("weight")))
    return node


def lineage_dot(root: LineageNode) -> str:
    """Graphviz text: an edge from each parent to its child, labelled with the weight.

    Node ids are `n0`, `n1`, ... by sha256 (a sha256 read from a file is not trusted to be hex), and every label
    is a quoted string through `_dot_string`, so nothing a file holds can end a statement or start another.
    """
    ids: dict[str, str] = {}
    for node in root.walk():
        ids.setdefault(node.sha256, f"n{len(ids)}")
    lines = ["digraph lineage {", "  rankdir=BT;", '  node [shape=box, style=rounded, fontname="Helvetica"];']
    for node in root.walk():
        lines_of_label = (node.token, f"{node.kind or ''} {node.category or ''}", node.sha256[:10])
        label = "\\n".join(_dot_string(line) for line in lines_of_label)
        lines.append(f'  {ids[node.sha256]} [label="{label}"];')
        for parent in node.parents:
            weight = _dot_string(f"{parent.weight:g}")
            lines.append(f'  {ids[parent.sha256]} -> {ids[node.sha256]} [label="{weight}"];')
    return "\n".join([*dict.fromkeys(lines), "}"]) + "\n"


def _dot_string(text: object) -> str:
    """The inside of a quoted DOT string showing `text` as written: control characters as visible escapes
    (`printable`), then backslashes and quotes escaped (a lone `\\` would start a Graphviz escape like `\\N`)."""
    return printable(text).replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class AncestorCheck:
    token: str
    sha256: str
    status: str
    """`present` (a file with this exact embedding), `changed` (its file altered or replaced) or `missing`."""
    path: str | None = None


def check_ancestors(root: LineageNode, recorded_paths: dict[str, str], folder: Path) -> list[AncestorCheck]:
    """Which recorded ancestors are in `folder` (searched recursively) and unchanged.

    An ancestor is `present` when a concept file there has its sha256, and `changed` when a file there claims its
    sha256 but holds another embedding (it was altered), or sits where it was read from (`recorded_paths`, by
    sha256: the same folder and file name) and holds another embedding that is no other ancestor's (it was
    replaced). Every `create` writes `<token>.safetensors`, so a file name alone says nothing: ancestors of one
    category share it. Otherwise the ancestor is `missing`.
    """
    files = _concept_files(folder)
    ancestors = list({node.sha256: node for node in root.walk()[1:]}.values())
    intact: dict[str, Path] = {}
    claimed: dict[str, Path] = {}
    for file in files:
        if file.sha256:
            intact.setdefault(file.sha256, file.path)
        elif file.claimed:
            claimed.setdefault(file.claimed, file.path)
    shas = {node.sha256 for node in ancestors}
    checks = []
    for node in ancestors:
        if node.sha256 in intact:
            checks.append(AncestorCheck(node.token, node.sha256, "present", str(intact[node.sha256])))
            continue
        where = Path(recorded_paths.get(node.sha256, "")).parts[-2:]
        replaced = [f.path for f in files if len(where) == 2 and f.place == where and f.sha256 not in shas]
        changed = claimed.get(node.sha256) or next(iter(replaced), None)
        if changed:
            checks.append(AncestorCheck(node.token, node.sha256, "changed", str(changed)))
        else:
            checks.append(AncestorCheck(node.token, node.sha256, "missing"))
    return checks


@dataclass(frozen=True)
class _ConceptFile:
    path: Path
    place: tuple[str, ...]
    """The last two components of the resolved path: the folder and the file name."""
    sha256: str | None
    """The embedding's sha256 when the file is an intact concept, else None."""
    claimed: str | None
    """The sha256 an altered file's metadata claims."""


def _concept_files(folder: Path) -> list[_ConceptFile]:
    found = []
    for path in sorted(folder.rglob("*.safetensors")):
        place = path.resolve().parts[-2:]
        try:
            found.append(_ConceptFile(path, place, load_concept(path).sha256, None))
        except ConceptFileError:
            found.append(_ConceptFile(path, place, None, _recorded_sha256(path)))
    return found


def recorded_paths(metadata: dict[str, Any]) -> dict[str, str]:
    """sha256 -> the path each ancestor was read from, over the whole tree."""
    paths = {parent["sha256"]: parent.get("path", "") for parent in metadata.get("parents") or []}
    for record in metadata.get("lineage") or []:
        paths.update(recorded_paths(record))
    return paths


def _recorded_sha256(path: Path) -> str | None:
    try:
        return read_metadata(path).get("sha256")
    except ConceptFileError:
        return None


@dataclass(frozen=True)
class LineageRequest:
    """`conceptlab lineage`: the concept whose family tree to read, and a Graphviz file to write it to."""

    concept: Path
    dot: Path | None = None
    force: bool = False
    """Replace an existing `dot` file."""


def lineage(request: LineageRequest) -> LineageNode:
    """The family tree `request.concept` records; with `request.dot`, also written there as Graphviz text."""
    root = lineage_tree(load_concept(request.concept).metadata)
    if request.dot is not None:
        refuse_existing([request.dot], request.force, "--dot file")
        write_text(request.dot, lineage_dot(root))
    return root
