"""Connected components of the verified near-duplicate edges, computed so that no worker holds them.

The pipeline (`pipelines/dedup_components.py`) runs the alternating large-star / small-star
algorithm of Kiveris et al. 2014 ("Connected Components in MapReduce and Beyond"): each step groups
the edges by one endpoint and rewrites that node's neighbourhood, so a worker holds one node's
neighbours at a time. Node names are totally ordered (the pipeline's are `(kind, *keep key)`
tuples, in keep order); on an undirected edge set E, with N(u) the neighbours of u and
m(u) = min(N(u) + [u]):

- large-star(u): link every neighbour v > u to m(u) (edges to smaller neighbours are dropped here;
  those neighbours re-link u from their side);
- small-star(u): link u and every neighbour v < u to m of those.

Both keep the components and move every node's links towards its component's minimum; the graph is
settled when it is a set of stars, each centred on its component's minimum. That is a local test
(`unsettled`): no node has a smaller neighbour and another neighbour. Kiveris et al. prove O(log^2 n)
rounds; near-duplicate graphs (small components of short diameter) settle in a few. Beam has no
loops, so the pipeline unrolls `component_rounds` rounds, records the last round that found a node not
yet settled, and lets a settled component leave the rounds early. A settled star's centre knows its
whole component (its neighbours), so it names every member's group (`label_component`): one group
per component, or for a component above `max_component_size`, parts of that many members by the
rank of their names (keep order: the first part holds the component's first documents, the ones
most likely kept).

`connected_components` (union-find, one process) is the reference the tests and benchmarks compare
with; the pipeline never gathers the edges in one place.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Any, Protocol, TypeVar


class Ordered(Protocol):
    """What a node name must be: hashable and totally ordered (ids, `(kind, id)` tuples)."""

    def __lt__(self, other: Any, /) -> bool: ...

    def __hash__(self) -> int: ...


Node = TypeVar("Node", bound=Ordered)


def unsettled(node: Node, neighbours: set[Node]) -> bool:
    """Whether `node` breaks the settled shape: it has a smaller neighbour and another neighbour."""
    return len(neighbours) > 1 and min(neighbours) < node


def large_star(node: Node, neighbours: set[Node]) -> Iterator[tuple[Node, Node]]:
    """Edges (m, v) for every neighbour v > node, m the smallest of node and its neighbours."""
    if not neighbours:
        return
    smallest = min(min(neighbours), node)
    for v in neighbours:
        if node < v:
            yield smallest, v


def small_star(node: Node, smaller: set[Node]) -> Iterator[tuple[Node, Node]]:
    """Edges (m, v) for node and each of its smaller neighbours v, m the smallest of them (v != m)."""
    if not smaller:
        return
    smallest = min(smaller)
    yield smallest, node
    for v in smaller:
        if v != smallest:
            yield smallest, v


def label_component(centre: Node, members: Iterable[Node], max_size: int) -> tuple[int, list[tuple[Node, int]]]:
    """(size, [(member, part)]) of a settled star: `centre` and its neighbours `members`. Parts are
    0 for a component of at most `max_size`; otherwise the members sorted by name are cut into parts
    of `max_size` (part = rank // max_size), a split that depends on the names alone."""
    ordered = sorted({centre, *members})
    size = len(ordered)
    if size <= max_size:
        return size, [(member, 0) for member in ordered]
    return size, [(member, rank // max_size) for rank, member in enumerate(ordered)]


def star_rounds(edges: Iterable[tuple[Node, Node]], rounds: int) -> tuple[set[tuple[Node, Node]], list[int]]:
    """The pipeline's rounds in one process (for tests): (edges after `rounds` rounds, unsettled
    nodes at the start of each round and after the last)."""
    current = {(a, b) if a < b else (b, a) for a, b in edges if a != b}
    counts = []
    for _ in range(rounds + 1):
        neighbours: dict[Node, set[Node]] = {}
        for a, b in current:
            neighbours.setdefault(a, set()).add(b)
            neighbours.setdefault(b, set()).add(a)
        counts.append(sum(unsettled(u, n) for u, n in neighbours.items()))
        if len(counts) > rounds:
            break
        large = {e for u, n in neighbours.items() for e in large_star(u, n) if e[0] != e[1]}
        smaller: dict[Node, set[Node]] = {}
        for a, b in large:
            smaller.setdefault(b, set()).add(a)
        current = {e for u, s in smaller.items() for e in small_star(u, s) if e[0] != e[1]}
    return current, counts


class UnionFind:
    def __init__(self) -> None:
        self.index: dict[Hashable, int] = {}
        self.parent: list[int] = []
        self.size: list[int] = []

    def _node(self, item: Hashable) -> int:
        found = self.index.get(item)
        if found is None:
            found = self.index[item] = len(self.parent)
            self.parent.append(found)
            self.size.append(1)
        return found

    def find(self, node: int) -> int:
        parent = self.parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(self, a: Hashable, b: Hashable) -> None:
        ra, rb = self.find(self._node(a)), self.find(self._node(b))
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def components(self) -> list[list]:
        """Every component as its sorted members, components ordered by their smallest member."""
        groups: dict[int, list] = {}
        for item, node in self.index.items():
            groups.setdefault(self.find(node), []).append(item)
        return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def connected_components(edges: Iterable[tuple[Node, Node]]) -> list[list[Node]]:
    """Connected components of an undirected edge list in one process (nodes without edges do not
    appear): the reference for the distributed computation."""
    uf = UnionFind()
    for a, b in edges:
        uf.union(a, b)
    return uf.components()


def spanning_stars(edges: Iterable[tuple[Node, Node]]) -> list[tuple[Node, Node]]:
    """Edges with the components of `edges`, as few as there can be: each component's smallest node
    linked to each of its other nodes, in order. Components of a union of edge sets are those of the
    union of their spanning stars, so verification sends on each chunk's stars instead of its
    edges: a cluster whose members each verify several earlier ones gives the rounds one edge per
    member, and stars, which are settled already."""
    return [(component[0], member) for component in connected_components(edges) for member in component[1:]]
