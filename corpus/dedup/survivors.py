"""Survivors by construction: which documents of one connected component are kept.

The documents are walked in `keep` order (`exact.survivor_key`: smallest id, most stars or longest,
ties by id). A document is removed only when it has a verified edge (similarity >= threshold) to a
document already kept; it then names that document (`duplicate_of`, the kept neighbour with the
highest similarity, ties by keep order) and the similarity. Otherwise it is kept, and can absorb its
own neighbours later in the walk.

So a chain A~B~C where C resembles only B keeps C when B is removed for A: removing C "because of
B" (what taking whole components as clusters does) removes a document whose only near-duplicate is
gone. Every removal has a kept document at similarity >= threshold: removal precision is limited
only by the verification's measurement (none with exact verification, the estimate's error with
signature verification).

The walk needs the component's members and the edges among them, on one worker; a component larger
than `max_component_size` is cut into parts (see `clusters.label_component`) and each part is walked
alone: an edge to a document of another part is not used (counted), which can keep a document, never
remove one wrongly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from lemur_corpus.dedup.config import SurvivorRule
from lemur_corpus.dedup.exact import DedupRecord, survivor_key

Edge = tuple[str, float]
"""(the other document's id, similarity) of a verified edge."""


@dataclasses.dataclass(frozen=True, slots=True)
class Removal:
    record: DedupRecord
    duplicate_of: str
    """The id of the kept document it matched."""
    similarity: float


@dataclasses.dataclass(slots=True)
class Walk:
    kept: list[DedupRecord]
    removed: list[Removal]
    outside_edges: int
    """Edges whose other end is not among the walked documents (another part of a split component)."""

    def clusters(self) -> list[tuple[DedupRecord, list[DedupRecord]]]:
        """(kept document, the documents removed as its duplicates) for every kept document that
        absorbed at least one, in keep order of the kept document."""
        absorbed: dict[str, list[DedupRecord]] = {}
        for removal in self.removed:
            absorbed.setdefault(removal.duplicate_of, []).append(removal.record)
        return [(k, absorbed[k.id]) for k in self.kept if k.id in absorbed]


def walk(members: Iterable[tuple[DedupRecord, Iterable[Edge]]], rule: SurvivorRule) -> Walk:
    """Keep or remove each of `members` (record, its verified edges, in either direction)."""
    records: dict[str, DedupRecord] = {}
    adjacency: dict[str, dict[str, float]] = {}
    pending: list[tuple[str, str, float]] = []
    for record, edges in members:
        current = records.get(record.id)
        if current is None or record.content_hash < current.content_hash:  # an id read twice: one stands
            records[record.id] = record
        pending.extend((record.id, other, similarity) for other, similarity in edges)
    outside = 0
    for a, b, similarity in pending:
        if a == b:
            continue
        if b not in records:
            outside += 1
            continue
        for x, y in ((a, b), (b, a)):
            known = adjacency.setdefault(x, {})
            known[y] = max(similarity, known.get(y, similarity))
    rank = {doc_id: i for i, doc_id in enumerate(sorted(records, key=lambda i: survivor_key(records[i], rule)))}
    kept: list[DedupRecord] = []
    removed: list[Removal] = []
    is_kept: set[str] = set()
    for doc_id in sorted(records, key=rank.__getitem__):
        matches = [(similarity, other) for other, similarity in adjacency.get(doc_id, {}).items() if other in is_kept]
        if matches:
            similarity, other = min(matches, key=lambda m: (-m[0], rank[m[1]]))
            removed.append(Removal(records[doc_id], other, similarity))
        else:
            kept.append(records[doc_id])
            is_kept.add(doc_id)
    return Walk(kept, removed, outside)
