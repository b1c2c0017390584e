"""Writes the dedup index of the documents a run kept (`lemur_corpus.dedup.index` has the format).

    kept nodes (record, sketch of the signature) ─▶ (kind, part) by a hash of (build, id) ─▶ group ─▶ one Parquet
      file a part, written by the worker that holds it, with its sha256 ─▶ per kind: the header
      (settings, builds, every file with its checksum), after the empty parts are written

Parts are written in parallel; the header step only lists the files' checksums (one small element a
part), so no worker ever holds the index. A kind's number of parts follows the documents the driver
plans for it (`index_parts`), so a part, which one worker groups and writes whole, holds about as many
rows however large the corpus; readers take the files from the header, whatever their number.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import apache_beam as beam

from lemur_corpus.dedup.index import (
    HEADER_NAME,
    INDEX_DIR,
    file_entry,
    header_bytes,
    make_header,
    part_bytes,
    part_name,
    shard_of,
    sketch_of,
)
from lemur_corpus.dedup.minhash import from_bytes
from lemur_corpus.io import join, makedirs, write_atomic
from lemur_corpus.pipelines.dedup_common import Node

DEFAULT_PARTS = 4
"""A kind's parts at least (`IndexTarget.parts`)."""

PLANNED_DOCUMENTS_PER_PART = 50_000
"""Documents the driver plans for a kind (`sources.planned_documents`, before anything is read) per
part of its index, past `DEFAULT_PARTS`: a part holds at most this many rows (the kept share of them,
as the estimate is right). With a fixed number of parts, a part grew with the corpus, and the worker
that grouped and wrote it with it (`benchmarks/scale.py --runner dask-cluster`: the index's writer
among the largest worker's highest samples at a million documents). A row is a document's id, its
16-byte hash and its sketch."""


@dataclasses.dataclass(frozen=True)
class IndexTarget:
    """Where and as what a run writes the index of what it kept."""

    out_dir: str
    """The run's output folder; the index goes to `<out_dir>/dedup-index/<kind>/`."""
    build_id: str
    settings: dict[str, dict[str, Any]]
    """Kind → `index_settings` (every kind gets an index, empty when it kept nothing)."""
    parts: int = DEFAULT_PARTS
    """A kind's parts at least; more where the documents planned for it ask for more (`index_parts`)."""

    def folder(self, kind: str) -> str:
        return join(self.out_dir, INDEX_DIR, kind)


def index_parts(planned: int, minimum: int = DEFAULT_PARTS) -> int:
    """A kind's index files: `minimum`, or one per `PLANNED_DOCUMENTS_PER_PART` planned documents
    where that is more (the same inputs plan the same, so the split is as deterministic as the rows)."""
    return max(minimum, math.ceil(planned / PLANNED_DOCUMENTS_PER_PART))


def index_node(node: Node) -> Node:
    """(record, signature) → (record, 4-bit sketch): what the index keeps of a document's signature,
    made as soon as it is signed, so what waits for the decisions is an eighth of the signature."""
    record, signature = node
    return record, sketch_of(from_bytes(signature)) if signature is not None else None


class IndexRowFn(beam.DoFn):
    """A kept node (record, sketch: `index_node`) → ((kind, part), row)."""

    def __init__(self, target: IndexTarget, parts: Mapping[str, int]) -> None:
        self.target, self.parts = target, dict(parts)

    def process(self, node: Node) -> Iterator[Any]:
        record, sketch = node
        settings = self.target.settings[record.kind]
        sketch = sketch if settings["near"] else None
        row = (self.target.build_id, record.source, record.id, bytes.fromhex(record.content_hash), sketch)
        yield (record.kind, shard_of(self.target.build_id, record.id, self.parts[record.kind])), row


class WritePartFn(beam.DoFn):
    def __init__(self, target: IndexTarget, parts: Mapping[str, int]) -> None:
        self.target, self.parts = target, dict(parts)

    def process(self, element: tuple[tuple[str, int], list]) -> Iterator[tuple[str, dict[str, Any]]]:
        (kind, part), rows = element
        rows = list(rows)
        name = part_name(part, self.parts[kind])
        data = part_bytes(rows)
        makedirs(self.target.folder(kind))
        write_atomic(join(self.target.folder(kind), name), data)
        yield kind, file_entry(name, data, len(rows))


class WriteHeaderFn(beam.DoFn):
    """A kind → its empty parts and its header; yields what the manifest records of it."""

    def __init__(self, target: IndexTarget, parts: Mapping[str, int]) -> None:
        self.target, self.parts = target, dict(parts)

    def process(self, kind: str, entries: list[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
        target = self.target
        files = {e["name"]: e for k, e in entries if k == kind}
        folder = target.folder(kind)
        makedirs(folder)
        for part in range(self.parts[kind]):
            name = part_name(part, self.parts[kind])
            if name not in files:
                data = part_bytes([])
                write_atomic(join(folder, name), data)
                files[name] = file_entry(name, data, 0)
        documents = sum(e["rows"] for e in files.values())
        header = make_header(target.settings[kind], [{"id": target.build_id, "documents": documents}],
                             list(files.values()))
        data = header_bytes(header)
        write_atomic(join(folder, HEADER_NAME), data)
        yield kind, {"path": f"{INDEX_DIR}/{kind}/{HEADER_NAME}", "sha256": hashlib.sha256(data).hexdigest(),
                     "documents": documents, "files": len(files),
                     "bytes": sum(e["bytes"] for e in files.values()) + len(data)}


class WriteIndex(beam.PTransform):
    """Kept nodes → the index files; yields (kind, {path, sha256, documents, files, bytes}) a kind.
    `planned` (kind → the documents the driver expects) sets each kind's number of parts (`index_parts`)."""

    def __init__(self, target: IndexTarget, planned: Mapping[str, int]) -> None:
        super().__init__()
        self.target = target
        self.parts = {kind: index_parts(planned.get(kind, 0), target.parts) for kind in target.settings}

    def expand(self, kept: beam.PCollection) -> beam.PCollection:
        target, parts = self.target, self.parts
        entries = (
            kept
            | "Rows" >> beam.ParDo(IndexRowFn(target, parts))
            | "GroupParts" >> beam.GroupByKey()
            | "WriteParts" >> beam.ParDo(WritePartFn(target, parts))
        )
        return (
            kept.pipeline
            | "Kinds" >> beam.Create(sorted(target.settings))
            | "WriteHeaders" >> beam.ParDo(WriteHeaderFn(target, parts), entries=beam.pvalue.AsList(entries))
        )
