"""Connected components of the verified near-duplicate edges, across workers.

    edges ((kind, a), (kind, b)) keyed both ways
      ─▶ round 1: large-star (group by node) ─▶ small-star (group by larger end) ─▶ round 2 ...
      ─▶ after `rounds` rounds: group by node ─▶ each settled star's centre labels its members
      ─▶ (id, (kind, centre id, part))

The algorithm and its convergence test are `lemur_corpus.dedup.clusters`. Every step groups the edges
by one node: a worker holds one node's neighbours at a time, never the graph (a settled star's
centre holds its component's names: bounded by the largest component). Beam has no loops: the rounds
are unrolled. A large-star step counts the round in `component_rounds` (a maximum) when it finds a
node not yet settled; `unconverged_nodes` counts the nodes still unsettled after the last round
(0: the components are exact). A node the centres did not reach is decided alone
(`DecideComponents`), which can keep a duplicate, never remove a document wrongly.

A settled component leaves the rounds early, so that the rounds it no longer needs carry nothing
(the multi_processing DirectRunner does not run a stage whose input is empty: `bounded_bundles`).
In a large-star step, a node whose one neighbour is smaller (a leaf) certifies itself to that
neighbour, and a node smaller than all its neighbours (a centre) sends itself their number. In the
small-star step that groups by the centre, a centre certified by all its neighbours is a settled
star: every neighbour's only neighbour is the centre, so the star is a whole component. A settled
star is unchanged by a round, so the centre marks itself to retire, and in the next round's
large-star step it labels its members as the final step would, and emits no edge: the component's
edges end there. The labels are the same whichever round gives them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam

from lemur_corpus.dedup.clusters import label_component, large_star, small_star, unsettled
from lemur_corpus.pipelines.dedup_common import STATS, SummedStats, tagged_stat
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.profile import COMPONENTS, profiled

Name = tuple
"""A node: (kind, *its keep key), the id last (`dedup.exact.survivor_key`). Names sort in keep
order, so a component's smallest name is its first document in keep order: the one its walk keeps
first, whatever else happens, and the one that names the component."""
Label = tuple[str, str, int]
"""Where a document is decided: (kind, id of its component's first document in keep order, part)."""

LABELS = "labels"

# Messages travel among a node's neighbours, as tuples that start with an int (a name starts with its
# kind, a string): a leaf's certificate to its one neighbour, a centre's number of neighbours, and
# a settled centre's mark to retire in the next round.
LEAF, DEGREE, RETIRE = 1, 2, 3


class Values(NamedTuple):
    names: set[Name]
    """The node's neighbours (in a small-star step: its smaller ones)."""
    leaves: set[Name]
    """Neighbours that certified the node is their only neighbour."""
    degree: int | None
    """The node's number of neighbours, sent by itself as a centre."""
    retire: bool
    """The node is a settled star's centre: it labels its component and ends its edges."""


def read_values(values: Iterable[Any]) -> Values:
    names: set[Name] = set()
    leaves: set[Name] = set()
    degree, retire = None, False
    for value in values:
        if not isinstance(value[0], int):
            names.add(value)
        elif value[0] == LEAF:
            leaves.add(value[1])
        elif value[0] == DEGREE:
            degree = value[1]
        else:
            retire = True
    return Values(names, leaves, degree, retire)


def both_ways(edge: tuple[Name, Name]) -> Iterator[tuple[Name, Name]]:
    a, b = edge
    yield a, b
    yield b, a


def star_labels(centre: Name, members: set[Name], max_size: dict[str, int]) -> Iterator[Any]:
    """A settled star's labels (tagged `LABELS`) and statistics (tagged `STATS`): one group per
    component, or parts of `max_size[kind]` members for a bigger one."""
    kind = centre[0]
    limit = max_size[kind]
    size, parts = label_component(centre, members, limit)
    yield tagged_stat("near", kind, "components")
    yield tagged_stat("near", kind, "component_nodes", size)
    yield tagged_stat("near", kind, "max_component_size", size)
    if size > limit:
        yield tagged_stat("near", kind, "split_components")
        yield tagged_stat("near", kind, "component_parts", parts[-1][1] + 1)
    for member, part in parts:
        yield beam.pvalue.TaggedOutput(LABELS, (member[-1], (kind, centre[-1], part)))


class LargeStarFn(beam.DoFn):
    """A node and its neighbours (keyed both ways) → large-star edges keyed by their larger end, the
    node's certificate or number of neighbours; a retiring centre's labels instead."""

    def __init__(self, round_number: int, max_size: dict[str, int]) -> None:
        self.round_number, self.max_size = round_number, max_size

    @profiled(COMPONENTS)
    def process(self, element: tuple[Name, Iterable[Any]]) -> Iterator[Any]:
        node, values = element
        found = read_values(values)
        neighbours = found.names
        if not neighbours:
            return  # only certificates of a centre that retired: nothing of its component is left
        smallest = min(neighbours)
        if found.retire and node < smallest:
            yield from star_labels(node, neighbours, self.max_size)
            return
        if unsettled(node, neighbours):
            yield tagged_stat("near", node[0], "component_rounds", self.round_number)
        if smallest < node and len(neighbours) == 1:
            yield smallest, (LEAF, node)
        elif node < smallest:
            yield node, (DEGREE, len(neighbours))
        for centre, larger in large_star(node, neighbours):
            yield larger, centre


class SmallStarFn(beam.DoFn):
    """A node and its smaller neighbours → small-star edges, keyed both ways for the next round; a
    centre certified by every neighbour → its mark to retire."""

    @profiled(COMPONENTS)
    def process(self, element: tuple[Name, Iterable[Any]]) -> Iterator[tuple[Name, Any]]:
        node, values = element
        found = read_values(values)
        if found.degree is not None and not found.names and len(found.leaves) == found.degree:
            yield node, (RETIRE,)
        for edge in small_star(node, found.names):
            yield from both_ways(edge)


class LabelFn(beam.DoFn):
    """A node of the final graph and its neighbours: a settled star's centre labels every member of
    its component (split into parts above the kind's `max_component_size`)."""

    def __init__(self, max_size: dict[str, int]) -> None:
        self.max_size = max_size

    @profiled(COMPONENTS)
    def process(self, element: tuple[Name, Iterable[Any]]) -> Iterator[Any]:
        node, values = element
        neighbours = read_values(values).names
        if unsettled(node, neighbours):
            yield tagged_stat("near", node[0], "unconverged_nodes")
        if not neighbours or min(neighbours) < node:
            return  # a leaf: its centre labels it
        yield from star_labels(node, neighbours, self.max_size)


class ComponentLabels(NamedTuple):
    labels: beam.PCollection
    """(id, Label) of every document with a verified edge (several for a node of an unsettled graph)."""
    stats: list[beam.PCollection]


class ConnectedComponents(beam.PTransform):
    """Verified edges ((kind, a), (kind, b)) → the component label of every document that has one."""

    def __init__(self, rounds: int, max_size: dict[str, int]) -> None:
        super().__init__()
        self.rounds, self.max_size = rounds, max_size

    def expand(self, edges: beam.PCollection) -> ComponentLabels:
        """`edges`: every verified edge keyed both ways, (a, b) and (b, a)."""
        labels, stats = [], []
        for number in range(1, self.rounds + 1):
            large = (
                edges
                | f"Round{number:02d}GroupByNode" >> beam.GroupByKey()
                | f"Round{number:02d}LargeStar" >> MultiOutputParDo(
                    SummedStats(LargeStarFn(number, self.max_size)), STATS, LABELS, main="edges")
            )
            labels.append(large[LABELS])
            stats.append(large[STATS])
            edges = (
                large["edges"]
                | f"Round{number:02d}GroupByLarger" >> beam.GroupByKey()
                | f"Round{number:02d}SmallStar" >> beam.ParDo(SmallStarFn())
            )
        final = (
            edges
            | "FinalGroupByNode" >> beam.GroupByKey()
            | "Label" >> MultiOutputParDo(SummedStats(LabelFn(self.max_size)), STATS, LABELS)
        )
        labels.append(final[LABELS])
        stats.append(final[STATS])
        return ComponentLabels(labels | "Labels" >> beam.Flatten(), stats)
