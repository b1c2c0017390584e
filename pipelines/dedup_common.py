"""What the dedup transforms share: the decision of a removed document, the small records that
travel instead of documents, and the statistics they emit (`pipelines/dedup.py`,
`pipelines/dedup_near.py`, `pipelines/dedup_components.py`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple, TypeVar

import apache_beam as beam

from lemur_corpus.dedup.exact import DedupRecord
from lemur_corpus.dedup.stats import stat
from lemur_corpus.manifest import cluster_size_metric

STATS = "stats"
REMOVED = "removed"

Node = tuple[DedupRecord, bytes | None]
"""A document as dedup sees it: its small record and its MinHash signature (None when near-dedup
is off for its kind or it has no token)."""
SignedNode = tuple[DedupRecord, bytes]
"""A node with a signature: the only kind near-dedup sees (`NearDuplicates` filters the others out)."""
AnyNode = TypeVar("AnyNode", bound=Node)


class Payload(NamedTuple):
    """What verification compares, keyed by the document's id (`lemur_corpus.dedup.verify`)."""

    record: DedupRecord
    """The document's small record: verification hands it on with the document's edges, so the walk
    joins records only of documents that have an edge (its `content_hash` picks one payload when an
    id was read twice, as `first_node` does)."""
    keep: tuple
    """The document's place in `keep` order (`dedup.exact.survivor_key`; its id comes last)."""
    data: bytes
    """The shingle set (`verify: exact`) or the signature (`signature`, `off`), little-endian uint32."""


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
    return min(payloads, key=lambda p: p.record.content_hash) if payloads else None


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
