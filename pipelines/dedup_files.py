"""`corpus dedup`: exact + MinHash near-dedup of JSONL / Parquet files, with the build's transforms.

    read tasks (one per input file) ─▶ the build's readers ─▶ DedupDecide (the build's dedup: the
      kept document of each removal) ─▶ join decisions and places (read task, origin) on id
      ─▶ each removal to its read task ─▶ the task reads its file again: one cluster row per
      document, kept records into a part per shard (by a hash of the id) ─▶ each shard's parts
      in task order, compressed

Texts never travel between workers: decisions are made on small records (`pipelines/dedup.py`),
and each read task learns which of its documents were removed and reads its file a second time
to write the kept ones, as datatrove's MinHash filter step does, so a worker holds one document of
a file at a time instead of its share of every text between shuffles. A file that does not read the
same the second time (another number of documents, a removed id missing) fails the run, naming it.

With `against` (earlier runs' indexes, `--against`), a document that duplicates one of theirs is
removed first (`reason` `published_exact_duplicate` or `published_near_duplicate`, `duplicate_of` the
earlier document's id and `duplicate_of_build` its build's id); the others are deduplicated among
themselves. Every run writes the index of what it kept into `dedup-index/<kind>/` (build id:
`--build-id`, default `dedup-` and a digest of the settings and input files), for the next run to dedup against.

Outputs in the folder: `kept-NNNNN-of-MMMMM.jsonl.zst` (the kept records whose id hashes to shard
N, as read: the id and text fields under their own names plus every other field; in input order,
files in sorted order), `clusters.jsonl` (`id, cluster, kept` for every input document, in input
order; `cluster` is the id of the kept document that stands for it, so a kept document is its own
cluster; a removed one also has `reason`, `duplicate_of` (that kept document: every removed
document has a kept document it was verified against) and `similarity` (their Jaccard as verified,
1.0 for an exact duplicate of it)), `dropped.jsonl` (records that could not be read, with file and
line), and `summary.json` (counts and the dedup statistics). Texts are deduplicated as given (no
normalization), so kept records are byte-for-byte the input's texts.

An id read twice is an error that names the ids and where they were read; nothing is written then.
A record without an id is identified by `FILE:LINE` (or `FILE#rowN` for Parquet).
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import apache_beam as beam
import xxhash
import zstandard
from apache_beam.options.pipeline_options import PipelineOptions

from lemur_corpus.accounting import Drop, Table, imbalances, to_report
from lemur_corpus.config import BuildConfig, FieldMap, InputConfig, MixtureConfig, MixtureSource
from lemur_corpus.dedup.config import DedupConfig
from lemur_corpus.dedup.index import INDEX_DIR, IndexHandle, content_build_id, index_settings, open_indexes
from lemur_corpus.errors import file_error_dict_line
from lemur_corpus.io import atomic_writer, exists, join, makedirs, match_files, read_bytes, write_atomic
from lemur_corpus.manifest import dedup_section
from lemur_corpus.pipelines.build import resolve_beam_args
from lemur_corpus.pipelines.dedup import DedupDecide, near_params
from lemur_corpus.pipelines.dedup_against import AgainstSpec, against_specs
from lemur_corpus.pipelines.dedup_common import first_node
from lemur_corpus.pipelines.dedup_index import IndexTarget, WriteIndex
from lemur_corpus.pipelines.direct_runner import beam_pipeline
from lemur_corpus.pipelines.ledger import Accounting, accounting_side_input, gather
from lemur_corpus.pipelines.loose_files import (
    INPUT_NAME,
    SUMMARY_NAME,
    as_command_document,
    check_text_field,
    command_failed,
    detect_text_field,
    failing_honestly,
    json_line,
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
from lemur_corpus.sources import ReadTask, plan_input, planned_documents, read_task

log = logging.getLogger("corpus")

SOURCE_NAME = "input"
CLUSTERS_NAME = "clusters.jsonl"
DROPPED_NAME = "dropped.jsonl"
CLUSTER_PARTS = ".clusters-parts"
KEPT_PARTS = ".kept-parts"
CHANGED = "changed"
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


def task_of(origin: str, tasks: dict[str, int]) -> int:
    """The read task (input file) a document came from, found by its origin: the readers name a
    record `FILE:LINE`, `FILE#rowN` (Parquet) or `FILE#RECORD-ID` (WARC)."""
    for separator in (":", "#row", "#"):
        path = origin.rpartition(separator)[0]
        if path in tasks:
            return tasks[path]
    raise ValueError(f"{origin!r} names none of the input files")


class LocateFn(beam.DoFn):
    """Joined on id: where a document was read and what dedup decided of it. A removed document's
    cluster row goes to its read task (the re-read keeps every document it is not told to remove),
    a kept one's index node to the index; an id read more than once is reported with its places."""

    def process(self, element: tuple[str, dict[str, list[Any]]]) -> Iterator[Any]:
        doc_id, grouped = element
        places: list[tuple[int, str]] = sorted(grouped["at"])
        if not places:
            return
        ident = original_id(doc_id)
        if len(places) > 1:
            yield beam.pvalue.TaggedOutput(DUPLICATE_IDS, (ident, [origin for _, origin in places]))
            return
        decisions = sorted(grouped["decision"])
        if decisions:
            decision = decisions[0]
            kept_id = decision.survivor if decision.build else original_id(decision.survivor)
            row = {"id": ident, "cluster": kept_id, "kept": False, "reason": decision.reason,
                   "duplicate_of": kept_id, "similarity": decision.similarity}
            if decision.build:
                row["duplicate_of_build"] = decision.build
            yield places[0][0], (doc_id, row)
            return
        node = first_node(grouped.get("node") or [])
        if node is not None:
            yield beam.pvalue.TaggedOutput(INDEX_NODES, (dataclasses.replace(node[0], id=ident), node[1]))


class WriteTaskFn(beam.DoFn):
    """One read task, read again: its cluster rows in input order (a part of clusters.jsonl), and
    its kept records (all but the removed ones it is given) into one part per shard they hash to,
    in input order. Yields (shard, (task, records)) per part written; on `CHANGED` a file that no
    longer reads as the first time (another number of documents, a removed id not found)."""

    def __init__(self, config: BuildConfig, kind: str, out_dir: str, shards: int, id_field: str,
                 text_field: str) -> None:
        self.config, self.kind, self.out_dir, self.shards = config, kind, out_dir, shards
        self.id_field, self.text_field = id_field, text_field

    def process(self, element: tuple[int, dict[str, list[Any]]], failed: list) -> Iterator[Any]:
        index, grouped = element
        if failed or not grouped["task"]:
            return
        task: ReadTask = grouped["task"][0]
        removed: dict[str, dict[str, Any]] = dict(grouped["removed"])
        kept: Counter[int] = Counter()
        documents = 0
        makedirs(join(self.out_dir, CLUSTER_PARTS))
        with contextlib.ExitStack() as stack:
            rows = stack.enter_context(atomic_writer(join(self.out_dir, CLUSTER_PARTS, f"{index:05d}.jsonl")))
            parts: dict[int, BinaryIO] = {}
            for item in read_task(task, self.config):
                if isinstance(item, Drop):
                    continue  # counted and logged by the first read
                documents += 1
                doc = as_command_document(item, self.kind)
                row = removed.pop(doc.id, None)
                if row is None:
                    ident = original_id(doc.id)
                    row = {"id": ident, "cluster": ident, "kept": True}
                    shard = xxhash.xxh64_intdigest(doc.id.encode("utf-8")) % self.shards
                    if shard not in parts:
                        parts[shard] = stack.enter_context(atomic_writer(self._part(shard, index)))
                    parts[shard].write(json_line(kept_record(doc, self.id_field, self.text_field)))
                    kept[shard] += 1
                rows.write(json_line(row))
        expected = sum(grouped["count"])
        if documents != expected or removed:
            missing = f", {len(removed):,} removed documents not found" if removed else ""
            yield beam.pvalue.TaggedOutput(CHANGED, f"{task.path}: changed while the run read it: {expected:,} "
                                                    f"documents the first time, {documents:,} the second{missing}")
        for shard in sorted(kept):
            yield shard, (index, kept[shard])
        log.info("dedup: %s: %d kept of %d", task.label, sum(kept.values()), documents)

    def _part(self, shard: int, index: int) -> str:
        folder = join(self.out_dir, KEPT_PARTS, f"{shard:05d}")
        makedirs(folder)
        return join(folder, f"{index:05d}.jsonl")


class WriteShardFn(beam.DoFn):
    """One shard: its parts in read-task order, compressed into kept-NNNNN-of-MMMMM.jsonl.zst."""

    def __init__(self, out_dir: str, shards: int) -> None:
        self.out_dir, self.shards = out_dir, shards

    def process(self, element: tuple[int, Iterable[tuple[int, int]]]) -> Iterator[int]:
        shard, parts = element
        parts = sorted(parts)
        paths = [join(self.out_dir, KEPT_PARTS, f"{shard:05d}", f"{index:05d}.jsonl") for index, _ in parts]
        size = sum(os.path.getsize(path) for path in paths)  # in the frame header, as one-shot compress puts it
        with atomic_writer(join(self.out_dir, kept_name(shard, self.shards))) as handle:
            with zstandard.ZstdCompressor(level=3).stream_writer(handle, size=size, closefd=False) as writer:
                for path in paths:
                    with open(path, "rb") as part:
                        shutil.copyfileobj(part, writer, 1 << 20)
        kept = sum(count for _, count in parts)
        log.info("dedup: wrote shard %d/%d (%d kept)", shard + 1, self.shards, kept)
        yield kept


class DuplicateIdsFn(beam.CombineFn):
    """Ids read more than once, (id, where it was read) -> (how many, the `MAX_NAMED_DUPLICATES`
    smallest, sorted): what the error names, in one combine."""

    def create_accumulator(self) -> tuple[int, list[Any]]:
        return 0, []

    def add_input(self, acc: tuple[int, list[Any]], duplicate: Any) -> tuple[int, list[Any]]:
        return acc[0] + 1, heapq.nsmallest(MAX_NAMED_DUPLICATES, [*acc[1], duplicate])

    def merge_accumulators(self, accs: Iterable[tuple[int, list[Any]]]) -> tuple[int, list[Any]]:
        accs = list(accs)
        return sum(count for count, _ in accs), heapq.nsmallest(MAX_NAMED_DUPLICATES, [d for _, ds in accs for d in ds])

    def extract_output(self, acc: tuple[int, list[Any]]) -> tuple[int, list[Any]]:
        return acc


class SummaryFn(beam.DoFn):
    """Writes `summary.json`, or `FAILED.json` naming duplicate ids and unreadable files."""

    def __init__(self, out_dir: str, against: list[dict[str, Any]] | None = None) -> None:
        self.out_dir, self.against = out_dir, against or []

    def process(self, _: Any, stats: list, duplicates: list, drops: list, file_errors: list, changed: list,
                written: list, accounting: Table, index: list) -> Iterator[dict[str, Any]]:
        errors = [file_error_dict_line(e) for e in sorted(file_errors, key=lambda e: (e["path"], e.get("line") or 0))]
        errors += sorted(changed)
        errors += [f"accounting: {problem}" for problem in imbalances(to_report(accounting))]
        if duplicates:
            ((count, named_ids),) = duplicates
            named = "; ".join(f"{ident!r} (read at {', '.join(origins)})" for ident, origins in named_ids)
            more = f"; and {count - len(named_ids)} more" if count > len(named_ids) else ""
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
    task_index = {task.path: number for number, task in enumerate(tasks)}
    read = p | "Read" >> ReadInputs(tasks, config)
    file_errors = read.file_errors
    docs = read.docs | "AsCommandDocuments" >> beam.Map(as_command_document, kind)
    planned = {kind: sum(planned_documents(tasks, config.inputs).values())}  # every document is `kind` here
    decided = docs | "Decide" >> DedupDecide(config.dedup, planned, against, keep_nodes=index is not None)
    ledger = gather(p, [read])
    accounting = ledger.tallies | "Accounting" >> Accounting(ledger.drops)  # every record read is kept or dropped
    # Texts stay where they were read: decisions travel to their read task, which reads its file again.
    places = docs | "Places" >> beam.Map(lambda d: (d.id, (task_of(d.origin, task_index), d.origin)))
    joined = {"at": places, "decision": decided.removed}
    if decided.nodes is not None:
        joined["node"] = decided.nodes | "NodesById" >> beam.Map(lambda n: (n[0].id, n))
    located = (
        joined
        | "JoinDecisions" >> beam.CoGroupByKey()
        | "Locate" >> MultiOutputParDo(LocateFn(), DUPLICATE_IDS, *((INDEX_NODES,) if index else ()),
                                       main="removed")
    )
    index_written = (located[INDEX_NODES] | "WriteIndex" >> WriteIndex(index, planned) if index is not None
                     else p | "NoIndex" >> beam.Create([]))
    # (how many, the first few): none at all when every id is unique
    duplicates = located[DUPLICATE_IDS] | "Duplicates" >> beam.CombineGlobally(DuplicateIdsFn()).without_defaults()
    failed = (
        (duplicates | "AnyDuplicates" >> beam.FlatMap(lambda found: found[1][:1]),
         file_errors | "AnyFileErrors" >> beam.Map(lambda e: e))
        | "FlattenFailures" >> beam.Flatten()
    )
    counts = places | "TaskOf" >> beam.Map(lambda place: (place[1][0], 1)) | "CountPerTask" >> beam.CombinePerKey(sum)
    rewritten = (
        {"task": p | "Tasks" >> beam.Create(list(enumerate(tasks)), reshuffle=False), "removed": located["removed"],
         "count": counts}
        | "JoinTasks" >> beam.CoGroupByKey()
        | "WriteTasks" >> MultiOutputParDo(WriteTaskFn(config, kind, out_dir, shards, id_field, text_field),
                                           CHANGED, main="parts", failed=beam.pvalue.AsList(failed))
    )
    written = rewritten["parts"] | "GroupShards" >> beam.GroupByKey() | "WriteShards" >> beam.ParDo(
        WriteShardFn(out_dir, shards))
    (
        p
        | "SummarySeed" >> beam.Create([None])
        | "Summary" >> beam.ParDo(
            SummaryFn(out_dir, [h.record() for hs in (handles or {}).values() for h in hs]),
            stats=beam.pvalue.AsList(decided.stats),
            duplicates=beam.pvalue.AsList(duplicates),
            drops=beam.pvalue.AsList(read.drops),
            file_errors=beam.pvalue.AsList(file_errors),
            changed=beam.pvalue.AsList(rewritten[CHANGED]),
            written=beam.pvalue.AsList(written),
            accounting=accounting_side_input(accounting),
            index=beam.pvalue.AsList(index_written),
        )
    )


def _concatenate_clusters(out_dir: str) -> str:
    """clusters.jsonl: the read tasks' rows in task order (each in input order), streamed."""
    parts = os.path.join(out_dir, CLUSTER_PARTS)
    target = os.path.join(out_dir, CLUSTERS_NAME)
    with atomic_writer(target) as handle:
        for name in sorted(os.listdir(parts)):
            with open(os.path.join(parts, name), "rb") as part:
                while chunk := part.read(1 << 20):
                    handle.write(chunk)
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
    names = (CLUSTERS_NAME, DROPPED_NAME, CLUSTER_PARTS, KEPT_PARTS, INDEX_DIR)
    prepare_out_dir(out_dir, "dedup", names, overwrite)
    with failing_honestly(out_dir, "dedup", names):
        with beam_pipeline(options) as p:
            construct(p, config, kind, out_dir, id_field, text_field, shards, specs, target, handles)
        errors = read_failed(out_dir)
        if errors is not None:
            raise command_failed("dedup", errors)
        _concatenate_clusters(out_dir)
        shutil.rmtree(join(out_dir, KEPT_PARTS), ignore_errors=True)
        _fill_empty_shards(out_dir, shards)
        summary: dict[str, Any] = json.loads(read_bytes(join(out_dir, SUMMARY_NAME)))
        return summary
