"""What the dedup transforms share: the decision of a removed document, the small records that
travel instead of documents, and the statistics they emit (`pipelines/dedup.py`,
`pipelines/dedup_near.py`, `pipelines/dedup_components.py`)."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindows

from lemur_corpus.dedup.exact import DedupRecord
from lemur_corpus.dedup.stats import is_max_metric, stat
from lemur_corpus.manifest import cluster_size_metric
from lemur_corpus.pipelines.outputs import WrappedFn

STATS = "stats"
REMOVED = "removed"

Node = tuple[DedupRecord, bytes | None]
"""A document as dedup sees it: its small record and its MinHash signature (None when near-dedup
is off for its kind or it has no token)."""
SignedNode = tuple[DedupRecord, bytes]
"""A node with a signature: the only kind near-dedup sees (`NearDuplicates` filters the others out)."""
AnyNode = TypeVar("AnyNode", bound=Node)


Payload = tuple
"""What verification compares, keyed by the document's id (`lemur_corpus.dedup.verify`), as it
travels: (the record's fields, keep, data), made by `payload`.

- the record's fields (`DedupRecord`'s, in order; `payload_record`): verification hands the record
  on with the document's edges, so the walk joins records only of documents that have an edge (its
  `content_hash`, `payload_hash`, picks one payload when an id was read twice, as `first_node` does);
- keep: the document's place in `keep` order (`dedup.exact.survivor_key`; its id comes last);
- data: the shingle set (`verify: exact`) or the signature (`signature`, `off`), little-endian uint32.

A plain tuple of str, int and bytes, because a payload crosses two stage boundaries, once per
document and then once per later document it is paired with: Beam's `FastPrimitivesCoder` encodes
such a tuple itself, and hands a NamedTuple or a dataclass to pickle, which costs a round trip
several times as much (`benchmarks/record_pickling.py`)."""
PAYLOAD_KEEP = 1
PAYLOAD_DATA = 2
_RECORD_FIELDS = operator.attrgetter(*(field.name for field in dataclasses.fields(DedupRecord)))
_CONTENT_HASH = [field.name for field in dataclasses.fields(DedupRecord)].index("content_hash")


def payload(record: DedupRecord, keep: tuple, data: bytes) -> Payload:
    return (_RECORD_FIELDS(record), keep, data)


def payload_record(item: Payload) -> DedupRecord:
    return DedupRecord(*item[0])


def payload_hash(item: Payload) -> str:
    """The record's `content_hash`, without making the record."""
    return item[0][_CONTENT_HASH]


class Decision(NamedTuple):
    reason: str
    """`exact_duplicate` or `near_duplicate`."""
    survivor: str
    """The id of the kept document this one duplicates (`duplicate_of`)."""
    similarity: float = 1.0
    """Jaccard similarity with that document as verified (1.0: identical text)."""
    build: str = ""
    """The id of the earlier build that published `survivor` (removals against a dedup index);
    empty when `survivor` is a document of this run."""


def tagged_stat(section: str, group: str, metric: str, value: float = 1) -> beam.pvalue.TaggedOutput:
    return beam.pvalue.TaggedOutput(STATS, stat(section, group, metric, value))


def first_node(nodes: Sequence[AnyNode]) -> AnyNode | None:
    """The node that stands for an id read twice (deterministic: smallest content hash)."""
    return min(nodes, key=lambda n: n[0].content_hash) if nodes else None


def first_payload(payloads: Sequence[Payload]) -> Payload | None:
    return min(payloads, key=payload_hash) if payloads else None


def removal_outputs(section: str, survivor: DedupRecord, removed: list[tuple[DedupRecord, float]],
                    ) -> Iterator[beam.pvalue.TaggedOutput]:
    """The decisions and statistics of one kept document and the documents removed as its
    duplicates, each with its similarity to it (`section`: exact or near)."""
    kind = survivor.kind
    yield tagged_stat(section, kind, "clusters")
    yield tagged_stat(section, kind, cluster_size_metric(len(removed) + 1))  # the report's histogram
    yield tagged_stat(section, kind, "max_cluster_size", len(removed) + 1)
    yield tagged_stat(f"{section}_by_source", survivor.source, "clusters")
    yield from removed_outputs(section, survivor.id, removed)


def removed_outputs(section: str, survivor: str, removed: list[tuple[DedupRecord, float]],
                    ) -> Iterator[beam.pvalue.TaggedOutput]:
    """The decision and statistics of each removed document, naming the kept document `survivor`."""
    for record, similarity in removed:
        yield tagged_stat(section, record.kind, "removed")
        yield tagged_stat(section, record.kind, "removed_bytes", record.nbytes)
        yield tagged_stat(f"{section}_by_source", record.source, "removed")
        yield beam.pvalue.TaggedOutput(REMOVED, (record.id, Decision(f"{section}_duplicate", survivor, similarity)))


class SummedStats(WrappedFn):
    """Runs `fn` with its statistics (its `STATS` outputs) added up per bundle, by sum or maximum
    as `CombineDedupStats` combines them (`dedup.stats.is_max_metric`), and sent when the bundle
    ends: one element per statistic and bundle instead of one per event. The dedup steps count
    per document and per pair (an exact group's documents, a verified pair twice, a removal
    three times), about five elements a document in all, which the runner moved through a flatten
    and a combine only to be added up. The sums are the same whatever the bundles (the statistics
    are counts, sizes and maxima: integers). What a bundle holds is one number per statistic it
    touched. Wrap a DoFn in it inside `MultiOutputParDo` (which delivers `finish_bundle` outputs on
    every runner)."""

    def start_bundle(self) -> None:
        super().start_bundle()
        self.sums: dict[tuple[str, str, str], float] = {}

    def process(self, element, *args, **kwargs):  # type: ignore[no-untyped-def]  # as WrappedFn.process
        outputs = []
        sums = self.sums
        for out in self.fn.process(element, *args, **kwargs) or ():
            if out.__class__ is TaggedOutput and out.tag == STATS:
                key, value = out.value
                before = sums.get(key)
                if before is None:
                    sums[key] = value
                else:
                    sums[key] = max(before, value) if is_max_metric(key) else before + value
            else:
                outputs.append(out)
        return outputs

    def finish_bundle(self) -> Iterator[Any]:
        yield from self.fn.finish_bundle() or ()
        sums, self.sums = self.sums, {}
        for key, value in sorted(sums.items()):
            yield TaggedOutput(STATS, GlobalWindows.windowed_value((key, value)))
