"""`corpus filter`: the filters of one kind over JSONL / Parquet / WARC files, as the build runs them.

    one read task per file ─▶ the build's reader ─▶ normalize ─▶ run_chain (the build's filters)
      ─▶ kept records of that file + one verdict per record, in input order

Each file is one task; a worker streams it (memory does not grow with the file), so files are
filtered in parallel under any Beam runner and the output does not depend on how they were spread.
Outputs in the folder:

- `kept-NNNNN-of-MMMMM.jsonl.zst`: the kept records of input file N (sorted paths), in input order,
  as read (the id and text fields under their own names, every other field kept) with the text as
  the filters left it (normalized; C4 lines removed) and what the filters learned (`language`,
  `language_score`) added;
- `verdicts.jsonl`: one line per input record, in input order: `id, kept, reason, signals` (signals
  keyed `<filter>.<signal>`), plus `origin` (file:line), and `meta` / `removed` when a filter set
  them. Records that could not be read or were empty after normalization are there too, with the
  reasons `read.<why>` and `normalize.<why>`: nothing leaves without a line. With `decontam` in the
  chain, `contamination` lists the benchmark items a record holds, also when another filter dropped
  it first (`meta.contamination` has each match's part and containment when `decontam` dropped it);
- `summary.json`: documents and bytes in, kept, and dropped per reason, and the contamination report
  (lemur_corpus.filters.decontam.report: per benchmark, item and source).

A record without an id is identified by its place (`FILE:LINE`, or `FILE#rowN` for Parquet).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import zstandard
from apache_beam.options.pipeline_options import PipelineOptions

from lemur_corpus.accounting import FILTER, Drop
from lemur_corpus.config import BuildConfig, FieldMap, FiltersConfig, InputConfig, MixtureConfig, lemur_mixture_sources
from lemur_corpus.document import Document, Kind
from lemur_corpus.errors import InputFileError, file_error_dict_line
from lemur_corpus.filters.base import ChainResult, Filter, run_chain, setup_filters
from lemur_corpus.filters.decontam.report import (
    ContaminationRecord,
    add_record,
    contamination_record,
    empty_report,
    merge_reports,
)
from lemur_corpus.io import atomic_writer, makedirs, match_files, write_atomic
from lemur_corpus.normalize import normalize_document
from lemur_corpus.pipelines.build import resolve_beam_args
from lemur_corpus.pipelines.direct_runner import beam_pipeline
from lemur_corpus.pipelines.ledger import Progress
from lemur_corpus.pipelines.loose_files import (
    INPUT_NAME,
    SUMMARY_NAME,
    as_command_document,
    check_text_field,
    command_failed,
    detect_text_field,
    failing_honestly,
    json_line,
    kept_name,
    kept_record,
    original_id,
    prepare_out_dir,
)
from lemur_corpus.sources import ReadTask, plan_input, read_task

log = logging.getLogger("corpus")

VERDICTS_NAME = "verdicts.jsonl"
PARTS = ".filter-parts"
FILTER_NAMES = (VERDICTS_NAME, SUMMARY_NAME, PARTS)
"""What `corpus filter` writes besides `kept-*` files (and FAILED.json when it fails)."""
TEXT_SOURCE = "refinedweb"
"""Text records count towards this mixture source (nothing in the command depends on it)."""
DEFAULT_FIELDS: dict[str, dict[str, str | None]] = {
    "text": {"id": "id", "lang": "lang", "path": None},
    "code": {"id": "hexsha", "lang": "lang", "path": "max_stars_repo_path", "text": "content"},
}
"""Field names when the command line names none: generic records for text, The Stack for code."""


def command_config(paths: list[str], kind: Kind, filters: FiltersConfig, fields: FieldMap,
                   allow_empty_files: bool = False) -> BuildConfig:
    """A build config whose one input is the command's files. Code records are bucketed by language
    as in the build (the code filters judge the bucket), so the mixture is Lemur's table."""
    return BuildConfig(
        name="filter",
        allow_empty_files=allow_empty_files,
        inputs=[InputConfig(name=INPUT_NAME, format="jsonl", kind=kind, paths=paths,
                            source=TEXT_SOURCE if kind == "text" else None, fields=fields)],
        filters=filters,
        mixture=MixtureConfig(sources=lemur_mixture_sources()),
    )


def build_filters(kind: str, filters: FiltersConfig, only: list[str] | None) -> list[Filter]:
    """The chain of one kind: the named filters in that order, else the configured ones."""
    if kind == "text":
        from lemur_corpus.filters.text import build_text_filters

        return build_text_filters(filters.text, only)
    from lemur_corpus.filters.code import build_code_filters

    return build_code_filters(filters.code, only)


def _rounded(signals: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in signals.items()}


def verdict_record(doc: Document, result: ChainResult) -> dict[str, Any]:
    """One line of verdicts.jsonl for a document the filters judged."""
    record: dict[str, Any] = {"id": original_id(doc.id), "kept": result.kept, "reason": result.reason,
                              "signals": _rounded(result.signals()), "origin": doc.origin}
    meta: dict[str, Any] = {}
    removed: dict[str, int] = {}
    for name, verdict in result.verdicts:
        meta.update(verdict.meta)
        removed.update({f"{name}.{k}": v for k, v in verdict.removed.items()})
    if meta:
        record["meta"] = meta
    if removed:
        record["removed"] = removed
    return record


def drop_record(drop: Drop, stage: str) -> dict[str, Any]:
    """One line of verdicts.jsonl for a record that never reached the filters."""
    ident = original_id(drop.id) if drop.id else drop.origin
    record: dict[str, Any] = {"id": ident, "kept": False, "reason": f"{stage}.{drop.reason}", "signals": {},
                              "origin": drop.origin}
    if drop.detail:
        record["detail"] = drop.detail
    return record


class Tally:
    """Documents and bytes in, kept, and dropped per reason, and what the filters changed in the kept
    ones (`edits`: `pii.email`, `c4.lines.javascript`...), for summary.json."""

    def __init__(self) -> None:
        self.counts: dict[str, Any] = {"documents": 0, "bytes": 0, "kept": 0, "kept_bytes": 0, "dropped": {},
                                       "edits": {}, "contamination": empty_report()}

    def contaminated(self, record: ContaminationRecord) -> None:
        add_record(self.counts["contamination"], record)

    def edited(self, result: ChainResult) -> None:
        for name, verdict in result.verdicts:
            for key, count in verdict.removed.items():
                self.counts["edits"][f"{name}.{key}"] = self.counts["edits"].get(f"{name}.{key}", 0) + count

    def add(self, kept: bool, reason: str, nbytes: int, kept_bytes: int = 0) -> None:
        c = self.counts
        c["documents"] += 1
        c["bytes"] += nbytes
        if kept:
            c["kept"] += 1
            c["kept_bytes"] += kept_bytes
        else:
            entry = c["dropped"].setdefault(reason, {"docs": 0, "bytes": 0})
            entry["docs"] += 1
            entry["bytes"] += nbytes


def merge_tallies(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total = Tally().counts
    for part in parts:
        for key in ("documents", "bytes", "kept", "kept_bytes"):
            total[key] += part[key]
        for reason, entry in part["dropped"].items():
            into = total["dropped"].setdefault(reason, {"docs": 0, "bytes": 0})
            into["docs"] += entry["docs"]
            into["bytes"] += entry["bytes"]
        for key, count in part.get("edits", {}).items():
            total["edits"][key] = total["edits"].get(key, 0) + count
        total["contamination"] = merge_reports([total["contamination"], part.get("contamination") or empty_report()])
    total["dropped"] = dict(sorted(total["dropped"].items(), key=lambda kv: (-kv[1]["docs"], kv[0])))
    total["edits"] = dict(sorted(total["edits"].items()))
    return total


class FilterFileFn(beam.DoFn):
    """Reads one file, normalizes and filters every record, writes its kept records and verdicts."""

    def __init__(self, config: BuildConfig, kind: str, only: list[str] | None, out_dir: str, count: int,
                 id_field: str, text_field: str) -> None:
        self.config, self.kind, self.only, self.out_dir, self.count = config, kind, only, out_dir, count
        self.id_field, self.text_field = id_field, text_field

    def setup(self) -> None:
        self.filters = build_filters(self.kind, self.config.filters, self.only)
        setup_filters(self.filters)
        self.progress = Progress(FILTER)

    def process(self, element: tuple[int, ReadTask]) -> Iterator[dict[str, Any]]:
        index, task = element
        tally = Tally()
        parts = os.path.join(self.out_dir, PARTS)
        error = None
        with atomic_writer(os.path.join(self.out_dir, kept_name(index, self.count))) as kept_file, \
                atomic_writer(os.path.join(parts, f"{index:05d}.jsonl")) as verdicts:
            writer = zstandard.ZstdCompressor(level=3).stream_writer(kept_file, closefd=False)
            try:
                for record, kept in self._judge(task, tally):
                    verdicts.write(json_line(record))
                    if kept is not None:
                        writer.write(json_line(kept))
            except InputFileError as exc:
                error = exc.to_dict()
            writer.flush(zstandard.FLUSH_FRAME)
        summary = {"task": index, "path": task.path, "error": error, **tally.counts}
        write_atomic(os.path.join(parts, f"{index:05d}.summary.json"), json.dumps(summary).encode())
        log.info("filter %s: %d records, %d kept", task.label, tally.counts["documents"], tally.counts["kept"])
        yield summary

    def _judge(self, task: ReadTask, tally: Tally) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
        for item in read_task(task, self.config):
            if isinstance(item, Drop):
                tally.add(False, f"read.{item.reason}", item.nbytes)
                yield drop_record(item, "read"), None
                continue
            doc = as_command_document(item, self.kind)  # records without an id: named FILE:LINE
            normalized = normalize_document(doc)
            if isinstance(normalized, Drop):
                tally.add(False, f"normalize.{normalized.reason}", doc.nbytes)
                yield drop_record(normalized, "normalize"), None
                continue
            result = run_chain(normalized, self.filters)
            self.progress.tick(not result.kept)
            verdict = verdict_record(normalized, result)
            contamination = contamination_record(normalized, result, self.filters)
            if contamination is not None:  # also when another filter dropped it before `decontam` ran
                tally.contaminated(contamination)
                verdict["contamination"] = [{"benchmark": b, "item": i} for b, i in contamination.items]
            if result.doc is None:
                tally.add(False, result.reason, doc.nbytes)
                yield verdict, None
            else:
                tally.add(True, "", doc.nbytes, result.doc.nbytes)
                tally.edited(result)
                yield verdict, kept_record(result.doc, self.id_field, self.text_field)


def _collect(out_dir: str, count: int) -> dict[str, Any]:
    """verdicts.jsonl (the files' verdicts in file order, streamed) and the merged summary."""
    parts = os.path.join(out_dir, PARTS)
    summaries = []
    with atomic_writer(os.path.join(out_dir, VERDICTS_NAME)) as target:
        for index in range(count):
            with open(os.path.join(parts, f"{index:05d}.jsonl"), "rb") as part:
                shutil.copyfileobj(part, target, 1 << 20)
            with open(os.path.join(parts, f"{index:05d}.summary.json"), "rb") as handle:
                summaries.append(json.load(handle))
    errors = [s["error"] for s in summaries if s["error"]]
    if errors:
        raise command_failed("filter", [file_error_dict_line(e) for e in errors])
    shutil.rmtree(parts)
    summary = merge_tallies(summaries)
    summary["files"] = [{"path": s["path"], "kept_file": kept_name(s["task"], count), "documents": s["documents"],
                         "kept": s["kept"]} for s in summaries]
    write_atomic(os.path.join(out_dir, SUMMARY_NAME), (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def run_filter_files(paths: list[str], kind: Kind, out_dir: str, filters: FiltersConfig, *,
                     only: list[str] | None = None, fields: FieldMap | None = None,
                     beam_args: list[str] | None = None, overwrite: bool = False,
                     allow_empty_files: bool = False) -> dict[str, Any]:
    """Validate everything (files, filter names, models), run the pipeline, return the summary."""
    options = PipelineOptions(resolve_beam_args(list(beam_args or [])))  # a wrong runner stops us here
    defaults = DEFAULT_FIELDS[kind]
    given = fields or FieldMap()
    field_map = FieldMap(
        text=given.text or defaults.get("text"), id=given.id or defaults["id"],
        lang=given.lang or defaults["lang"], path=given.path or defaults["path"],
    )
    files = match_files(paths, allow_empty=allow_empty_files)  # every path: a readable, non-empty file
    text_field = field_map.text or detect_text_field(files[0].path)
    field_map = field_map.model_copy(update={"text": text_field})
    check_text_field([f.path for f in files], text_field)  # the command's own flag in the message
    config = command_config(paths, kind, filters, field_map, allow_empty_files)
    tasks, files = plan_input(config.inputs[0], config)
    if kind == "text":  # a configured fastText model is probed in a child process before it loads here
        from lemur_corpus.filters.text import check_text_filters

        check_text_filters(filters.text, only)
    setup_filters(build_filters(kind, filters, only))  # unknown names, missing models: fail before reading
    prepare_out_dir(out_dir, "filter", FILTER_NAMES, overwrite)
    with failing_honestly(out_dir, "filter", FILTER_NAMES):
        makedirs(os.path.join(out_dir, PARTS))
        fn = FilterFileFn(config, kind, only, out_dir, len(tasks), field_map.id or "id", text_field)
        with beam_pipeline(options) as p:
            (
                p
                | "Files" >> beam.Create(list(enumerate(tasks)), reshuffle=False)  # "Spread" reshuffles them
                | "Spread" >> beam.Reshuffle()
                | "Filter" >> beam.ParDo(fn)
            )
        return _collect(out_dir, len(tasks))
