"""Clusters: connected components of the verified near-duplicate edges of one kind.

This is the one global step of near-dedup. Its worker holds only the documents that have at least
one verified edge, as ids (the edges, not the documents or signatures, are gathered), in a
union-find with path halving and union by size: O(E α(V)) time and memory

    union_find_bytes(V, E, L) = V * (NODE_BYTES + L) + E * EDGE_BYTES

for V documents with an edge, E edges and mean id length L: about 0.4 KB per document that has a
near-duplicate. 10^7 such documents need ~4 GB in one worker; The Stack's scale (~10^8 files with a
near-duplicate) would need ~40 GB, the point at which this step should become an iterative
distributed algorithm (large-star/small-star, Kiveris et al. 2014). The pipeline records V, E and
this bound in the manifest (`dedup.near.<kind>`), so a build shows how close it is.

Which member of a cluster survives is decided elsewhere, per cluster, with
`corpus/dedup/exact.py: split_group`, so this worker never needs more than ids.
"""

from __future__ import annotations

from collections.abc import Iterable

NODE_BYTES = 200
"""CPython cost of one node: its dict slot and key str header (~130 B), parent and size list
slots with their ints (~70 B); plus the id's characters."""
EDGE_BYTES = 170
"""CPython cost of one gathered edge: a 2-tuple (56 B) of two str headers (2 x 49 B), list slot."""


class UnionFind:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.parent: list[int] = []
        self.size: list[int] = []

    def _node(self, item: str) -> int:
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

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(self._node(a)), self.find(self._node(b))
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def components(self) -> list[list[str]]:
        """Every component as its sorted ids, components ordered by their smallest id."""
        groups: dict[int, list[str]] = {}
        for item, node in self.index.items():
            groups.setdefault(self.find(node), []).append(item)
        return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def connected_components(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Connected components of an undirected edge list (nodes without edges do not appear)."""
    uf = UnionFind()
    for a, b in edges:
        uf.union(a, b)
    return uf.components()


def union_find_bytes(nodes: int, edges: int, mean_id_length: float) -> int:
    """The memory bound of the global components step (see the module docstring)."""
    return int(nodes * (NODE_BYTES + mean_id_length) + edges * EDGE_BYTES)
