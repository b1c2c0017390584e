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
alone. A part knows one document of the others for sure: the component's first document in keep
order, which its own part always keeps (`kept_elsewhere`); an edge to any other document of another
part is not used (counted), which can keep a document, never remove one wrongly.
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
    """In keep order; `duplicate_of` is a document of `kept` or of `kept_elsewhere`."""
    outside_edges: int
    """Edges whose other end is neither walked here nor known to be kept (another part)."""

    def clusters(self) -> list[tuple[DedupRecord, list[Removal]]]:
        """(kept document, the removals naming it) for every kept document of this walk that
        absorbed at least one, in keep order of the kept document."""
        absorbed: dict[str, list[Removal]] = {}
        for removal in self.removed:
            absorbed.setdefault(removal.duplicate_of, []).append(removal)
        return [(k, absorbed[k.id]) for k in self.kept if k.id in absorbed]

    def absorbed_elsewhere(self) -> list[Removal]:
        """Removals naming a document kept outside this walk (`kept_elsewhere`)."""
        here = {k.id for k in self.kept}
        return [r for r in self.removed if r.duplicate_of not in here]


def walk(members: Iterable[tuple[DedupRecord, Iterable[Edge]]], rule: SurvivorRule,
         kept_elsewhere: Iterable[str] = ()) -> Walk:
    """Keep or remove each of `members` (record, its verified edges, in either direction);
    `kept_elsewhere`: ids not among them that are kept for certain (they come first in keep order)."""
    records: dict[str, DedupRecord] = {}
    adjacency: dict[str, dict[str, float]] = {}
    pending: list[tuple[str, str, float]] = []
    for record, edges in members:
        current = records.get(record.id)
        if current is None or record.content_hash < current.content_hash:  # an id read twice: one stands
            records[record.id] = record
        pending.extend((record.id, other, similarity) for other, similarity in edges)
    elsewhere = set(kept_elsewhere) - set(records)
    outside = 0
    for a, b, similarity in pending:
        if a == b:
            continue
        if b not in records and b not in elsewhere:
            outside += 1
            continue
        for x, y in ((a, b), (b, a)):
            known = adjacency.setdefault(x, {})
            known[y] = max(similarity, known.get(y, similarity))
    order = sorted(records, key=lambda i: survivor_key(records[i], rule))
    rank = {doc_id: -1 for doc_id in elsewhere}  # before every walked document
    rank.update((doc_id, i) for i, doc_id in enumerate(order))
    kept: list[DedupRecord] = []
    removed: list[Removal] = []
    is_kept: set[str] = set(elsewhere)
    for doc_id in order:
        matches = [(similarity, other) for other, similarity in adjacency.get(doc_id, {}).items() if other in is_kept]
        if matches:
            similarity, other = min(matches, key=lambda m: (-m[0], rank[m[1]]))
            removed.append(Removal(records[doc_id], other, similarity))
        else:
            kept.append(records[doc_id])
            is_kept.add(doc_id)
    return Walk(kept, removed, outside)
