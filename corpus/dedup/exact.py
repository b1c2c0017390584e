"""Exact dedup: documents of one kind with the same content hash are one document.

Only small records (id, hash, length, stars) travel to the grouping step; document bodies are
shuffled once, when the decisions are joined back to them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import xxhash

from lemur_corpus.dedup.config import SurvivorRule
from lemur_corpus.document import Document, pickled_by_fields, utf8_len


@pickled_by_fields
@dataclasses.dataclass(frozen=True, slots=True)
class DedupRecord:
    id: str
    kind: str
    source: str
    content_hash: str
    nbytes: int
    stars: int


def content_hash(text: str) -> str:
    """128-bit xxh3 of the UTF-8 text: collisions are negligible at 10^12 documents."""
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))


def dedup_record(doc: Document) -> DedupRecord:
    stars = doc.meta.get("stars", 0)
    return DedupRecord(
        id=doc.id,
        kind=doc.kind,
        source=doc.source,
        content_hash=content_hash(doc.text),
        nbytes=utf8_len(doc.text),
        stars=int(stars) if isinstance(stars, (int, float)) else 0,
    )


def survivor_key(record: DedupRecord, rule: SurvivorRule) -> tuple:
    """Sort key whose minimum survives; the id breaks every tie, so the choice is deterministic."""
    if rule == "most_stars":
        return (-record.stars, record.id)
    if rule == "longest":
        return (-record.nbytes, record.id)
    return (record.id,)


def split_group(records: Iterable[DedupRecord], rule: SurvivorRule) -> tuple[DedupRecord, list[DedupRecord]]:
    """(survivor, removed) of one group of identical documents."""
    ordered = sorted(records, key=lambda r: survivor_key(r, rule))
    return ordered[0], ordered[1:]
