"""`corpus dedup`: exact + MinHash near-dedup of JSONL / Parquet files, with the build's transforms.

    read (the build's readers) ─▶ DedupDecide (the build's dedup: the kept document of each removal)
      ─▶ join on id ─▶ kept records + one cluster row per document ─▶ shards by a hash of the id

With `against` (earlier runs' indexes, `--against`), a document that duplicates one of theirs is
removed first (`reason` `published_exact_duplicate` or `published_near_duplicate`, `duplicate_of` the
earlier document's id and `duplicate_of_build` its build's id); the others are deduplicated among
themselves. Every run writes the index of what it kept into `dedup-index/<kind>/` (build id:
`--build-id`, default `dedup-` and a digest of the settings and input files), for the next run to dedup against.

Outputs in the folder: `kept-NNNNN-of-MMMMM.jsonl.zst` (the kept records, as read: the id and text
fields under their own names plus every other field), `clusters.jsonl` (`id, cluster, kept` for every
input document; `cluster` is the id of the kept document that stands for it, so a kept document is
its own cluster; a removed one also has `reason`, `duplicate_of` (that kept document: every removed
document has a kept document it was verified against) and `similarity` (their Jaccard as verified,
1.0 for an exact duplicate of it)), `dropped.jsonl` (records that could not be read, with file and
line), and `summary.json` (counts and the dedup statistics). Texts are deduplicated as given (no
normalization), so kept records are byte-for-byte the input's texts.

An id read twice is an error that names the ids and where they were read; nothing is written then.
A record without an id is identified by `FILE:LINE` (or `FILE#rowN` for Parquet).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import xxhash
import zstandard
from apache_beam.options.pipeline_options import PipelineOptions

from lemur_corpus.accounting import Table, imbalances, to_report
from lemur_corpus.config import BuildConfig, FieldMap, InputConfig, MixtureConfig, MixtureSource
from lemur_corpus.dedup.config import DedupConfig
from lemur_corpus.dedup.index import INDEX_DIR, IndexHandle, content_build_id, index_settings, open_indexes
from lemur_corpus.document import Document
from lemur_corpus.errors import file_error_dict_line
from lemur_corpus.io import atomic_writer, exists, join, makedirs, match_files, read_bytes, write_atomic
from lemur_corpus.manifest import dedup_section
from lemur_corpus.pipelines.build import resolve_beam_args
from lemur_corpus.pipelines.dedup import DedupDecide, near_params
from lemur_corpus.pipelines.dedup_against import AgainstSpec, against_specs
from lemur_corpus.pipelines.dedup_common import first_node
from lemur_corpus.pipelines.dedup_index import IndexTarget, WriteIndex
from lemur_corpus.pipelines.direct_runner import beam_pipeline
from lemur_corpus.pipelines.ledger import Accounting, gather
from lemur_corpus.pipelines.loose_files import (
    INPUT_NAME,
    SUMMARY_NAME,
    as_command_document,
    check_text_field,
    command_failed,
    detect_text_field,
    failing_honestly,
    json_lines,
    kept_name,
    kept_record,
    original_id,
    prepare_out_dir,
    read_failed,
    write_failed,
)
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.read import ReadInputs
from lemur_corpus.sources import plan_input

log = logging.getLogger("corpus")

SOURCE_NAME = "input"
CLUSTERS_NAME = "clusters.jsonl"
DROPPED_NAME = "dropped.jsonl"
CLUSTER_PARTS = ".clusters-parts"
MAX_NAMED_DUPLICATES = 20
DUPLICATE_IDS = "duplicate_ids"
INDEX_NODES = "index_nodes"


def command_config(paths: list[str], dedup: DedupConfig, id_field: str | None, text_field: str | None,
                   allow_empty_files: bool = False) -> BuildConfig:
    """A build config whose one input is the command's files (mixture: a single source). The files
    are read as text records whatever the command's kind: the build adds fields to code records for
    its code filters (the file path), and kept records must be the input's records, field for field;
    `as_command_document` then gives each document the command's kind."""
    return BuildConfig(
        name="dedup",
        allow_empty_files=allow_empty_files,
        inputs=[InputConfig(name=INPUT_NAME, format="jsonl", kind="text", paths=paths, source=SOURCE_NAME,
                            fields=FieldMap(id=id_field, text=text_field))],
        dedup=dedup,
        mixture=MixtureConfig(sources={SOURCE_NAME: MixtureSource(kind="text", weight=100.0)}),
    )


class ClusterRowFn(beam.DoFn):
    """Joined on id: a kept record or not, one cluster row, or the id's duplicate reads."""

    def __init__(self, id_field: str, text_field: str, shards: int) -> None:
        self.id_field, self.text_field, self.shards = id_field, text_field, shards

    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        doc_id, grouped = element
        docs: list[Document] = sorted(grouped["doc"], key=lambda d: d.origin)
        if not docs:
            return
        if len(docs) > 1:
            yield beam.pvalue.TaggedOutput(DUPLICATE_IDS, (original_id(doc_id), [d.origin for d in docs]))
            return
        doc = docs[0]
        decisions = sorted(grouped["decision"])
        shard = xxhash.xxh64_intdigest(doc_id.encode("utf-8")) % self.shards
        ident = original_id(doc_id)
        if decisions:
            decision = decisions[0]
            kept_id = decision.survivor if decision.build else original_id(decision.survivor)
            row = {"id": ident, "cluster": kept_id, "kept": False, "reason": decision.reason,
                   "duplicate_of": kept_id, "similarity": decision.similarity}
            if decision.build:
                row["duplicate_of_build"] = decision.build
        else:
            row = {"id": ident, "cluster": ident, "kept": True}
            yield shard, ("kept", ident, kept_record(doc, self.id_field, self.text_field))
            node = first_node(grouped.get("node") or [])
            if node is not None:
                yield beam.pvalue.TaggedOutput(INDEX_NODES, (dataclasses.replace(node[0], id=ident), node[1]))
        yield shard, ("row", ident, row)


class WriteShardFn(beam.DoFn):
    """One shard: its kept records (zstd JSONL) and its cluster rows, sorted by id."""

    def __init__(self, out_dir: str, shards: int) -> None:
        self.out_dir, self.shards = out_dir, shards

    def process(self, element: tuple[int, list[tuple[str, str, dict]]], failed: list) -> Iterator[int]:
        if failed:
            return
        index, items = element
        items = sorted(items, key=lambda item: (item[1], item[0]))
        kept = [record for tag, _, record in items if tag == "kept"]
        rows = [record for tag, _, record in items if tag == "row"]
        path = join(self.out_dir, kept_name(index, self.shards))
        with atomic_writer(path) as handle:
            handle.write(zstandard.ZstdCompressor(level=3).compress(json_lines(kept)))
        parts = join(self.out_dir, CLUSTER_PARTS)
        makedirs(parts)
        write_atomic(join(parts, f"{index:05d}.jsonl"), json_lines(rows))
        log.info("dedup: wrote shard %d/%d (%d kept of %d)", index + 1, self.shards, len(kept), len(rows))
        yield len(kept)


class SummaryFn(beam.DoFn):
    """Writes `summary.json`, or `FAILED.json` naming duplicate ids and unreadable files."""

    def __init__(self, out_dir: str, against: list[dict[str, Any]] | None = None) -> None:
        self.out_dir, self.against = out_dir, against or []

    def process(self, _: Any, stats: list, duplicates: list, duplicate_count: list, drops: list,
                file_errors: list, written: list, accounting: Table, index: list) -> Iterator[dict[str, Any]]:
        errors = [file_error_dict_line(e) for e in sorted(file_errors, key=lambda e: (e["path"], e.get("line") or 0))]
        errors += [f"accounting: {problem}" for problem in imbalances(to_report(accounting))]
        if duplicates:
            count = duplicate_count[0] if duplicate_count else len(duplicates)
            named = "; ".join(f"{ident!r} (read at {', '.join(origins)})" for ident, origins in sorted(duplicates))
            more = f"; and {count - len(duplicates)} more" if count > len(duplicates) else ""
            errors.append(f"{count} id(s) occur more than once in the input: {named}{more}. "
                          "Ids must be unique (choose another field with --id-field)")
        if errors:
            write_failed(self.out_dir, errors)
            return
        dropped = sorted(drops, key=lambda d: d.origin)
        write_atomic(join(self.out_dir, DROPPED_NAME), json_lines(d.to_dict() for d in dropped))
        section = dedup_section(stats)
        exact = {k: v.get("removed", 0) for k, v in section.get("exact", {}).items()}
        near = {k: v.get("removed", 0) for k, v in section.get("near", {}).items()}
        earlier = sum(v.get("removed", 0) for v in section.get("against", {}).values())
        summary = {
            "documents": (sum(v.get("documents", 0) for v in section.get("exact", {}).values())
                          or sum(v.get("documents", 0) for v in section.get("near", {}).values())) + earlier,
            "against_removed": earlier,
            "dedup_against": self.against,
            "kept": sum(written),
            "exact_removed": sum(exact.values()),
            "near_removed": sum(near.values()),
            "unreadable_records": len(dropped),
            "dedup": section,
            "dedup_index": {kind: entry for kind, entry in sorted(index)},
        }
        write_atomic(join(self.out_dir, SUMMARY_NAME), (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
        yield summary


def construct(p: beam.Pipeline, config: BuildConfig, kind: str, out_dir: str, id_field: str, text_field: str,
              shards: int, against: dict[str, AgainstSpec] | None = None, index: IndexTarget | None = None,
              handles: dict[str, list[IndexHandle]] | None = None) -> None:
    tasks, _ = plan_input(config.inputs[0], config)
    read = p | "Read" >> ReadInputs(tasks, config)
    file_errors = read.file_errors
    docs = read.docs | "AsCommandDocuments" >> beam.Map(as_command_document, kind)
    decided = docs | "Decide" >> DedupDecide(config.dedup, against, keep_nodes=index is not None)
    accounting = gather(p, [read]) | "Accounting" >> Accounting()  # every record read is kept or dropped
    joined = {"doc": docs | "KeyById" >> beam.Map(lambda d: (d.id, d)), "decision": decided.removed}
    if decided.nodes is not None:
        joined["node"] = decided.nodes | "NodesById" >> beam.Map(lambda n: (n[0].id, n))
    rows = (
        joined
        | "JoinDecisions" >> beam.CoGroupByKey()
        | "ClusterRows" >> MultiOutputParDo(ClusterRowFn(id_field, text_field, shards), DUPLICATE_IDS,
                                            *((INDEX_NODES,) if index else ()), main="rows")
    )
    index_written = (rows[INDEX_NODES] | "WriteIndex" >> WriteIndex(index) if index is not None
                     else p | "NoIndex" >> beam.Create([]))
    duplicates = rows[DUPLICATE_IDS] | "SomeDuplicates" >> beam.combiners.Top.Smallest(MAX_NAMED_DUPLICATES)
    duplicate_count = rows[DUPLICATE_IDS] | "CountDuplicates" >> beam.combiners.Count.Globally()
    failed = (
        (duplicates | "AnyDuplicates" >> beam.FlatMap(lambda top: top[:1]),
         file_errors | "AnyFileErrors" >> beam.Map(lambda e: e))
        | "FlattenFailures" >> beam.Flatten()
    )
    written = (
        rows["rows"]
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(WriteShardFn(out_dir, shards), failed=beam.pvalue.AsList(failed))
    )
    (
        p
        | "SummarySeed" >> beam.Create([None])
        | "Summary" >> beam.ParDo(
            SummaryFn(out_dir, [h.record() for hs in (handles or {}).values() for h in hs]),
            stats=beam.pvalue.AsList(decided.stats),
            duplicates=beam.pvalue.AsSingleton(duplicates),
            duplicate_count=beam.pvalue.AsList(duplicate_count),
            drops=beam.pvalue.AsList(read.drops),
            file_errors=beam.pvalue.AsList(file_errors),
            written=beam.pvalue.AsList(written),
            accounting=beam.pvalue.AsSingleton(accounting),
            index=beam.pvalue.AsList(index_written),
        )
    )


def _concatenate_clusters(out_dir: str) -> str:
    """clusters.jsonl: the shards' rows in shard order (each shard sorted by id), streamed."""
    parts = os.path.join(out_dir, CLUSTER_PARTS)
    target = os.path.join(out_dir, CLUSTERS_NAME)
    with atomic_writer(target) as handle:
        for name in sorted(os.listdir(parts)):
            with open(os.path.join(parts, name), "rb") as part:
                while chunk := part.read(1 << 20):
                    handle.write(chunk)
    import shutil

    shutil.rmtree(parts)
    return target


def _fill_empty_shards(out_dir: str, shards: int) -> None:
    """Shards no document hashed to still exist (empty), so `kept-*-of-N` is always N files."""
    for index in range(shards):
        path = join(out_dir, kept_name(index, shards))
        if not exists(path):
            write_atomic(path, zstandard.ZstdCompressor(level=3).compress(b""))


def run_dedup_files(paths: list[str], kind: str, out_dir: str, dedup: DedupConfig, *, id_field: str = "id",
                    text_field: str | None = None, shards: int = 4, beam_args: list[str] | None = None,
                    overwrite: bool = False, allow_empty_files: bool = False, against: list[str] | None = None,
                    build_id: str | None = None, index_parts: int = 4) -> dict[str, Any]:
    """Run the command's pipeline; return the summary, or raise `CorpusError` naming what failed.
    `against`: earlier runs' output folders or indexes (checked whole before anything is written)."""
    options = PipelineOptions(resolve_beam_args(list(beam_args or [])))  # a wrong runner stops us here
    params = near_params(dedup)  # so do LSH parameters datasketch would refuse (fewer than 2 bands)
    files = match_files(paths, allow_empty=allow_empty_files)  # every path: a readable, non-empty file
    build_id = build_id or content_build_id("dedup", {"kind": kind, "dedup": dedup.model_dump(mode="json"),
                                                      "files": [(f.path, f.size) for f in files]})
    settings = {kind: index_settings(kind, dedup.near(kind), params.get(kind))}
    handles = {kind: open_indexes(against, kind, settings[kind], build_id)} if against else {}
    specs = against_specs(dedup, handles, params) if handles else None
    target = IndexTarget(out_dir, build_id, settings, index_parts)
    text_field = text_field or detect_text_field(files[0].path)
    check_text_field([f.path for f in files], text_field)
    config = command_config(paths, dedup, id_field, text_field, allow_empty_files)
    names = (CLUSTERS_NAME, DROPPED_NAME, CLUSTER_PARTS, INDEX_DIR)
    prepare_out_dir(out_dir, "dedup", names, overwrite)
    with failing_honestly(out_dir, "dedup", names):
        with beam_pipeline(options) as p:
            construct(p, config, kind, out_dir, id_field, text_field, shards, specs, target, handles)
        errors = read_failed(out_dir)
        if errors is not None:
            raise command_failed("dedup", errors)
        _concatenate_clusters(out_dir)
        _fill_empty_shards(out_dir, shards)
        summary: dict[str, Any] = json.loads(read_bytes(join(out_dir, SUMMARY_NAME)))
        return summary
