"""The family graph of many concepts, laid out in generation columns: ancestors left, descendants right.

Nodes are merged by sha256 across every concept's recorded lineage; a node's column is one more than its
deepest parent's, and within a column nodes are ordered by the mean row of their parents (fewer crossings),
each in its own row: boxes never overlap by construction. An edge that skips columns gets a lane of its own in
each of them, so no edge runs behind a node.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from conceptlab.engine.concept.lineage import LineageNode

NODE_WIDTH = 220
NODE_HEIGHT = 74
COLUMN_GAP = 90
ROW_GAP = 22
LANE_HEIGHT = 14
"""The room an edge takes to cross a column it skips (a grandparent to its grandchild): it never crosses a node."""
MARGIN = 16


@dataclass(frozen=True)
class GraphNode:
    sha256: str
    token: str
    kind: str | None
    category: str | None
    in_gallery: bool
    """False for an ancestor known only from a child's record (its file is not in the folder)."""
    generation: int
    x: float
    y: float
    width: float = NODE_WIDTH
    height: float = NODE_HEIGHT


@dataclass(frozen=True)
class GraphEdge:
    parent: str
    child: str
    weight: float | None
    route: tuple[tuple[float, float], ...] = ()
    """Where it runs: the parent's right side, the two ends of each lane it takes across a column it skips,
    the child's left side. Between columns it curves; along a lane it is straight."""


@dataclass(frozen=True)
class FamilyGraph:
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    width: float
    height: float

    def node(self, sha256: str) -> GraphNode:
        return next(node for node in self.nodes if node.sha256 == sha256)


def _collect(roots: Sequence[LineageNode]) -> tuple[dict[str, LineageNode], dict[tuple[str, str], float | None]]:
    """Every distinct node (by sha256) and every parent -> child edge with its weight."""
    nodes: dict[str, LineageNode] = {}
    edges: dict[tuple[str, str], float | None] = {}
    for root in roots:
        for node in root.walk():
            nodes.setdefault(node.sha256, node)
            for parent in node.parents:
                edges.setdefault((parent.sha256, node.sha256), parent.weight)
    return nodes, edges


def _generations(nodes: Collection[str], edges: Collection[tuple[str, str]]) -> dict[str, int]:
    """0 for a node without parents, else one more than its deepest parent.

    Walked with a stack, not recursion: files merged by sha256 may chain into a family deeper than any one file
    records. An edge back into the path being walked (a forged cycle) is ignored, so nothing loops forever.
    """
    parents: dict[str, list[str]] = {sha: [] for sha in nodes}
    for parent, child in edges:
        parents[child].append(parent)
    generation: dict[str, int] = {}
    on_path: set[str] = set()
    for start in nodes:
        pending = [] if start in generation else [start]
        while pending:
            sha = pending[-1]
            on_path.add(sha)
            waiting = [p for p in parents[sha] if p not in generation and p not in on_path]
            if waiting:
                pending.append(waiting[0])
                continue
            known = [generation[p] for p in parents[sha] if p in generation]
            generation[sha] = 1 + max(known, default=-1)
            on_path.discard(pending.pop())
    return generation


@dataclass(frozen=True)
class _Slot:
    """A place in a column: a node, or a lane that carries an edge across a column it skips."""

    key: str
    parents: tuple[str, ...]
    label: str
    is_lane: bool = False


def _slots(
    nodes: dict[str, LineageNode], edges: Collection[tuple[str, str]], generation: dict[str, int]
) -> tuple[dict[str, _Slot], dict[str, int], dict[tuple[str, str], list[str]]]:
    """Nodes and lanes with their columns, and for each edge the lanes it runs through (Sugiyama's dummy nodes)."""
    parents: dict[str, list[str]] = {sha: [] for sha in nodes}
    lanes: dict[tuple[str, str], list[str]] = {}
    slots: dict[str, _Slot] = {}
    column = dict(generation)
    for parent, child in edges:
        previous = parent
        lanes[(parent, child)] = []
        for skipped in range(generation[parent] + 1, generation[child]):
            key = f"{parent}>{child}@{skipped}"
            slots[key] = _Slot(key, (previous,), nodes[child].token, is_lane=True)
            column[key] = skipped
            lanes[(parent, child)].append(key)
            previous = key
        parents[child].append(previous)
    slots.update({sha: _Slot(sha, tuple(parents[sha]), nodes[sha].token) for sha in nodes})
    return slots, column, lanes


def _ordered_columns(slots: dict[str, _Slot], column: dict[str, int]) -> list[list[str]]:
    """Slots per column, each column sorted by the mean row of the slot's parents, then by token."""
    columns: list[list[str]] = [[] for _ in range(max(column.values(), default=-1) + 1)]
    row: dict[str, int] = {}
    for index in range(len(columns)):

        def key(slot_key: str) -> tuple[float, str, str]:
            rows = [row[parent] for parent in slots[slot_key].parents if parent in row]
            return (statistics.fmean(rows) if rows else 0.0, slots[slot_key].label, slot_key)

        columns[index] = sorted((k for k in slots if column[k] == index), key=key)
        row.update({slot_key: position for position, slot_key in enumerate(columns[index])})
    return columns


def _place(slots: dict[str, _Slot], columns: list[list[str]]) -> dict[str, tuple[float, float, float]]:
    """(x, y, height) of every slot: stacked down its column, a lane thinner than a node."""
    placed = {}
    for column_index, members in enumerate(columns):
        y = MARGIN
        for slot_key in members:
            height = LANE_HEIGHT if slots[slot_key].is_lane else NODE_HEIGHT
            placed[slot_key] = (MARGIN + column_index * (NODE_WIDTH + COLUMN_GAP), y, height)
            y += height + ROW_GAP
    return placed


def family_graph(roots: Sequence[LineageNode], in_gallery: Collection[str]) -> FamilyGraph:
    """One layered graph of all `roots`' families; `in_gallery`: the sha256s whose files were found."""
    nodes, edges = _collect(roots)
    generation = _generations(nodes, edges)
    slots, column, lanes = _slots(nodes, edges, generation)
    columns = _ordered_columns(slots, column)
    placed = _place(slots, columns)
    graph_nodes = []
    for sha, node in nodes.items():
        x, y, _ = placed[sha]
        graph_nodes.append(
            GraphNode(sha, node.token, node.kind, node.category, sha in in_gallery, generation[sha], x, y)
        )
    graph_edges = []
    for (parent, child), weight in edges.items():
        px, py, ph = placed[parent]
        cx, cy, ch = placed[child]
        through = [placed[lane] for lane in lanes[(parent, child)]]
        route = [(px + NODE_WIDTH, py + ph / 2)]
        route += [point for x, y, h in through for point in ((x, y + h / 2), (x + NODE_WIDTH, y + h / 2))]
        graph_edges.append(GraphEdge(parent, child, weight, (*route, (cx, cy + ch / 2))))
    width = 2 * MARGIN + len(columns) * NODE_WIDTH + max(len(columns) - 1, 0) * COLUMN_GAP
    height = MARGIN + max((y + h for _, y, h in placed.values()), default=0)
    return FamilyGraph(sorted(graph_nodes, key=lambda n: (n.x, n.y)), graph_edges, width, height)


def boxes_overlap(first: GraphNode, second: GraphNode) -> bool:
    return (
        first.x < second.x + second.width
        and second.x < first.x + first.width
        and first.y < second.y + second.height
        and second.y < first.y + first.height
    )
