"""Connected components of the verified near-duplicate edges, across workers.

    edges ((kind, a), (kind, b)) keyed both ways
      ─▶ round 1: large-star (group by node) ─▶ small-star (group by larger end) ─▶ round 2 ...
      ─▶ after `rounds` rounds: group by node ─▶ each settled star's centre labels its members
      ─▶ (id, (kind, centre id, part))

The algorithm and its convergence test are `lemur_corpus.dedup.clusters`. Every step groups the edges
by one node: a worker holds one node's neighbours at a time, never the graph (a settled star's
centre holds its component's names: bounded by the largest component). Beam has no loops: the rounds
are unrolled, and a round over an already settled graph passes its edges through unchanged. Each
large-star step marks the nodes not yet settled (the mark travels with the node); `component_rounds`
is the last round that found one, `unconverged_nodes` the nodes still unsettled after the last round
(0: the components are exact). A node the centres did not reach is decided alone (`DecideComponents`), which can keep a
duplicate, never remove a document wrongly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam

from lemur_corpus.dedup.clusters import label_component, large_star, small_star, unsettled
from lemur_corpus.pipelines.dedup_common import STATS, tagged_stat
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.profile import COMPONENTS, profiled

Name = tuple
"""A node: (kind, *its keep key), the id last (`dedup.exact.survivor_key`). Names sort in keep
order, so a component's smallest name is its first document in keep order: the one its walk keeps
first, whatever else happens, and the one that names the component."""
Label = tuple[str, str, int]
"""Where a document is decided: (kind, id of its component's first document in keep order, part)."""


Marker = int
"""Travels with a node through the rounds, among its neighbours: the last round that found the node
unsettled. Carried on the data (not emitted as a statistic per round), so a round costs two
groupings and two light steps whatever the number of rounds."""


def both_ways(edge: tuple[Name, Name]) -> Iterator[tuple[Name, Name]]:
    a, b = edge
    yield a, b
    yield b, a


def _split(values: Iterable[Name | Marker]) -> tuple[set[Name], Marker]:
    names: set[Name] = set()
    marker = 0
    for value in values:
        if isinstance(value, int):
            marker = max(marker, value)
        else:
            names.add(value)
    return names, marker


class LargeStarFn(beam.DoFn):
    """A node and its neighbours (keyed both ways) → large-star edges keyed by their larger end."""

    def __init__(self, round_number: int) -> None:
        self.round_number = round_number

    @profiled(COMPONENTS)
    def process(self, element: tuple[Name, Iterable[Name | Marker]]) -> Iterator[tuple[Name, Name | Marker]]:
        node, values = element
        neighbours, marker = _split(values)
        if unsettled(node, neighbours):
            marker = self.round_number
        if marker:
            yield node, marker
        for smallest, larger in large_star(node, neighbours):
            yield larger, smallest


class SmallStarFn(beam.DoFn):
    """A node and its smaller neighbours → small-star edges, keyed both ways for the next round."""

    @profiled(COMPONENTS)
    def process(self, element: tuple[Name, Iterable[Name | Marker]]) -> Iterator[tuple[Name, Name | Marker]]:
        node, values = element
        smaller, marker = _split(values)
        if marker:
            yield node, marker
        for edge in small_star(node, smaller):
            yield from both_ways(edge)


class LabelFn(beam.DoFn):
    """A node of the final graph and its neighbours: a settled star's centre labels every member of
    its component (split into parts above the kind's `max_component_size`)."""

    def __init__(self, max_size: dict[str, int]) -> None:
        self.max_size = max_size

    @profiled(COMPONENTS)
    def process(self, element: tuple[Name, Iterable[Name | Marker]]) -> Iterator[Any]:
        node, values = element
        neighbours, marker = _split(values)
        kind = node[0]
        if marker:
            yield tagged_stat("near", kind, "component_rounds", marker)
        if unsettled(node, neighbours):
            yield tagged_stat("near", kind, "unconverged_nodes")
        if not neighbours or min(neighbours) < node:
            return  # a leaf: its centre labels it
        limit = self.max_size[kind]
        size, parts = label_component(node, neighbours, limit)
        yield tagged_stat("near", kind, "components")
        yield tagged_stat("near", kind, "component_nodes", size)
        yield tagged_stat("near", kind, "max_component_size", size)
        if size > limit:
            yield tagged_stat("near", kind, "split_components")
            yield tagged_stat("near", kind, "component_parts", parts[-1][1] + 1)
        for member, part in parts:
            yield member[-1], (kind, node[-1], part)


class ComponentLabels(NamedTuple):
    labels: beam.PCollection
    """(id, Label) of every document with a verified edge (several for a node of an unsettled graph)."""
    stats: beam.PCollection


class ConnectedComponents(beam.PTransform):
    """Verified edges ((kind, a), (kind, b)) → the component label of every document that has one."""

    def __init__(self, rounds: int, max_size: dict[str, int]) -> None:
        super().__init__()
        self.rounds, self.max_size = rounds, max_size

    def expand(self, edges: beam.PCollection) -> ComponentLabels:
        """`edges`: every verified edge keyed both ways, (a, b) and (b, a)."""
        for number in range(1, self.rounds + 1):
            edges = (
                edges
                | f"Round{number:02d}GroupByNode" >> beam.GroupByKey()
                | f"Round{number:02d}LargeStar" >> beam.ParDo(LargeStarFn(number))
                | f"Round{number:02d}GroupByLarger" >> beam.GroupByKey()
                | f"Round{number:02d}SmallStar" >> beam.ParDo(SmallStarFn())
            )
        labelled = (
            edges
            | "FinalGroupByNode" >> beam.GroupByKey()
            | "Label" >> MultiOutputParDo(LabelFn(self.max_size), STATS, main="labels")
        )
        return ComponentLabels(labelled["labels"], labelled[STATS])
