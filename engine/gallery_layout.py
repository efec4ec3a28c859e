"""The family graph of many concepts, laid out in generation columns: ancestors left, descendants right.

Nodes are merged by sha256 across every concept's recorded lineage; a node's column is one more than its
deepest parent's, and within a column nodes are ordered by the mean row of their parents (fewer crossings),
each in its own row: boxes never overlap by construction.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from conceptlab.engine.lineage import LineageNode

NODE_WIDTH = 200
NODE_HEIGHT = 62
COLUMN_GAP = 90
ROW_GAP = 22
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
    """0 for a node without parents, else one more than its deepest parent (lineages have no cycles)."""
    parents: dict[str, list[str]] = {sha: [] for sha in nodes}
    for parent, child in edges:
        parents[child].append(parent)
    generation: dict[str, int] = {}

    def depth(sha: str, seen: frozenset[str] = frozenset()) -> int:
        if sha not in generation:
            guarded = [p for p in parents[sha] if p not in seen]  # a forged cycle must not loop forever
            generation[sha] = 1 + max((depth(p, seen | {sha}) for p in guarded), default=-1)
        return generation[sha]

    for sha in nodes:
        depth(sha)
    return generation


def _ordered_columns(
    nodes: dict[str, LineageNode], edges: Collection[tuple[str, str]], generation: dict[str, int]
) -> list[list[str]]:
    """Nodes per column, each column sorted by the mean row of the node's parents, then by token."""
    columns: list[list[str]] = [[] for _ in range(max(generation.values(), default=-1) + 1)]
    row: dict[str, int] = {}
    for index in range(len(columns)):
        members = [sha for sha in nodes if generation[sha] == index]

        def key(sha: str) -> tuple[float, str, str]:
            rows = [row[parent] for parent, child in edges if child == sha and parent in row]
            return (statistics.fmean(rows) if rows else 0.0, nodes[sha].token, sha)

        columns[index] = sorted(members, key=key)
        row.update({sha: position for position, sha in enumerate(columns[index])})
    return columns


def family_graph(roots: Sequence[LineageNode], in_gallery: Collection[str]) -> FamilyGraph:
    """One layered graph of all `roots`' families; `in_gallery`: the sha256s whose files were found."""
    nodes, edges = _collect(roots)
    generation = _generations(nodes, edges)
    columns = _ordered_columns(nodes, edges, generation)
    placed = []
    for column_index, column in enumerate(columns):
        for row_index, sha in enumerate(column):
            node = nodes[sha]
            x = MARGIN + column_index * (NODE_WIDTH + COLUMN_GAP)
            y = MARGIN + row_index * (NODE_HEIGHT + ROW_GAP)
            placed.append(GraphNode(sha, node.token, node.kind, node.category, sha in in_gallery, column_index, x, y))
    tallest = max((len(column) for column in columns), default=0)
    width = 2 * MARGIN + len(columns) * NODE_WIDTH + max(len(columns) - 1, 0) * COLUMN_GAP
    height = 2 * MARGIN + tallest * NODE_HEIGHT + max(tallest - 1, 0) * ROW_GAP
    graph_edges = [GraphEdge(parent, child, weight) for (parent, child), weight in edges.items()]
    return FamilyGraph(placed, graph_edges, width, height)


def boxes_overlap(first: GraphNode, second: GraphNode) -> bool:
    return (
        first.x < second.x + second.width
        and second.x < first.x + first.width
        and first.y < second.y + second.height
        and second.y < first.y + first.height
    )
