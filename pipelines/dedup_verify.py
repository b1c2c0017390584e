"""Near dedup's verification and decisions: a chunk's pairs verified, its edges handed on to the
components (as spanning stars) and to the walk, each document with an edge labelled by its component,
and each component walked in keep order (`dedup_near.NearDuplicates` composes them)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue

from lemur_corpus.dedup.clusters import spanning_stars
from lemur_corpus.dedup.config import DedupConfig, SurvivorRule
from lemur_corpus.dedup.exact import DedupRecord
from lemur_corpus.dedup.survivors import walk
from lemur_corpus.dedup.verify import Verifier
from lemur_corpus.document import KINDS
from lemur_corpus.pipelines.dask_combine import GLOBAL_WINDOWS
from lemur_corpus.pipelines.dedup_common import (
    PAYLOAD_DATA,
    PAYLOAD_KEEP,
    Payload,
    payload_hash,
    payload_record,
    removal_outputs,
    removed_outputs,
    tagged_stat,
)
from lemur_corpus.pipelines.dedup_components import Label, Name
from lemur_corpus.pipelines.profile import COMPONENTS, MINHASH, profiled

NAMES = "names"
RECORDS = "records"

Chunk = tuple[str, int]
"""(anchor id, block): the key of a verification chunk, the last two fields of a `Rank`
(`dedup_near`)."""


class VerifyFn(beam.DoFn):
    """A chunk's tasks and the payloads of their documents: for each later document, each pair's
    similarity with the earlier documents paired with it; the edges that reach the threshold go to
    the components (as names, the chunk's `spanning_stars`: the same components with one edge per
    member, so a cluster whose members verify several earlier ones each does not send the rounds
    an edge per pair; `both_ways` keys them both ways as they leave) and to the walk (as the later
    document's edges, every one with its similarity, and on `RECORDS` the record of every document
    with an edge once per bundle, when it ends).

    An earlier document is paired with many later ones in a large cluster (up to `bucket_window` per
    bucket): its record went out once per edge and its name twice, each through a shuffle
    (`benchmarks/scale.py --runner dask-cluster`: the MinHash stage's CPU per input MB x1.91 from
    250,000 to a million documents before, x1.31-1.36 after). Per bundle it holds one record's
    fields per document with an edge."""

    def __init__(self, config: DedupConfig) -> None:
        self.config = config

    def setup(self) -> None:
        self.verifiers = {kind: Verifier(near.verify, near.threshold)
                          for kind in KINDS if (near := self.config.near(kind)).enabled}

    def start_bundle(self) -> None:
        self.records: dict[str, Payload] = {}
        """id → the payload whose record goes out for it (an id read twice: the smallest hash's, as
        `first_payload` picks and `GroupMemberFn` across bundles), its fields only (no shingles)."""

    def _note(self, doc_id: str, payload: Payload) -> None:
        held = self.records.get(doc_id)
        if held is None or payload_hash(payload) < payload_hash(held):
            self.records[doc_id] = (payload[0],)

    def finish_bundle(self) -> Iterator[Any]:
        records, self.records = self.records, {}
        for doc_id in sorted(records):
            yield beam.pvalue.TaggedOutput(
                RECORDS, WindowedValue((doc_id, payload_record(records[doc_id])), 0, GLOBAL_WINDOWS))

    @profiled(MINHASH)
    def process(self, element: tuple[Chunk, dict[str, list[Any]]]) -> Iterator[Any]:
        _, grouped = element
        payloads: dict[str, Payload] = {}
        for doc_id, item in grouped["payload"]:
            held = payloads.get(doc_id)
            if held is None or payload_hash(item) < payload_hash(held):
                payloads[doc_id] = item
        linked: list[tuple[Name, Name]] = []
        for later, earliers in sorted(grouped["task"]):
            mine = payloads.get(later)
            if mine is not None:
                yield from self._verify(later, mine, {i: payloads[i] for i in earliers if i in payloads}, linked)
        for edge in spanning_stars(linked):
            yield beam.pvalue.TaggedOutput(NAMES, edge)

    def _verify(self, later: str, mine: Payload, earlier: dict[str, Payload],
                linked: list[tuple[Name, Name]]) -> Iterator[Any]:
        """One later document against the earlier documents of its pairs (those with a payload); its
        edges' names added to `linked`."""
        if not earlier:
            return
        ids = sorted(earlier)
        record = payload_record(mine)
        kind, source = record.kind, record.source
        name = (kind, *mine[PAYLOAD_KEEP])
        yield tagged_stat("near", kind, "verify_groups")
        yield tagged_stat("near", kind, "max_verify_group", len(ids))
        yield tagged_stat("near", kind, "candidate_pairs", len(ids))
        yield tagged_stat("near_by_source", source, "candidate_pairs", len(ids))
        results = self.verifiers[kind].similarities(mine[PAYLOAD_DATA], [earlier[i][PAYLOAD_DATA] for i in ids])
        edges = []
        for doc_id, (similarity, is_edge) in zip(ids, results, strict=True):
            metric = "verified_edges" if is_edge else "rejected_pairs"
            yield tagged_stat("near", kind, metric)
            yield tagged_stat("near_by_source", source, metric)
            if is_edge:
                edges.append((doc_id, similarity))
                self._note(doc_id, earlier[doc_id])
                linked.append(((kind, *earlier[doc_id][PAYLOAD_KEEP]), name))
        if edges:
            yield later, edges
            self._note(later, mine)


def both_ways(edge: tuple[Name, Name]) -> tuple[tuple[Name, Name], tuple[Name, Name]]:
    """A verified edge (a, b) as `ConnectedComponents` reads it: keyed by either end."""
    a, b = edge
    return (a, b), (b, a)


class GroupMemberFn(beam.DoFn):
    """Joined on id: a document with an edge → (its label, (record, its edges)). Its record came
    from every verification that found one of its edges (an id read twice: the smallest hash's, as
    `first_payload` picked)."""

    @profiled(COMPONENTS)
    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        doc_id, grouped = element
        records: list[DedupRecord] = grouped["record"]
        if not records:
            return
        record = min(records, key=lambda r: r.content_hash)
        labels: list[Label] = sorted(grouped["label"])
        label = labels[0] if labels else (record.kind, doc_id, 0)  # unsettled, unreached: decided alone
        edges = [edge for edges in grouped["edges"] for edge in edges]
        yield label, (record, edges)


class DecideComponentFn(beam.DoFn):
    """One component (or one part of a split one) → kept and removed documents, walked in keep
    order. A part after the first also uses its edges to the component's first document in keep
    order (the label's centre), which the first part keeps for certain."""

    def __init__(self, rule: SurvivorRule) -> None:
        self.rule = rule

    @profiled(COMPONENTS)
    def process(self, element: tuple[Label, Iterable[tuple[DedupRecord, list]]]) -> Iterator[Any]:
        (kind, centre, part), members = element
        result = walk(members, self.rule, kept_elsewhere=(centre,) if part else ())
        if result.outside_edges:
            yield tagged_stat("near", kind, "edges_outside_parts", result.outside_edges)
        for kept, removals in result.clusters():
            yield from removal_outputs("near", kept, [(r.record, r.similarity) for r in removals])
        # a split component's later parts: removals for the centre (its cluster is counted in part 0)
        yield from removed_outputs("near", centre, [(r.record, r.similarity) for r in result.absorbed_elsewhere()])
