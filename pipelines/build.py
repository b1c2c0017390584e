"""The whole build as one Beam pipeline (docs/design.md, The stages):

    read ─▶ normalize ─▶ filter ─▶ dedup ─▶ tokenize ─▶ mix ─▶ shards ─▶ manifest (last)

`prepare` does everything that needs no data on the driver — validates the config and the runner,
loads the tokenizer's identity, lists the inputs, clears a previous unfinished build — so mistakes
stop the build before any worker starts. `run_build` runs the pipeline and returns the manifest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from lemur_corpus.accounting import NORMALIZE, READ, Drop, Table
from lemur_corpus.config import BuildConfig
from lemur_corpus.errors import ConfigError, CorpusError, InputFileError, file_error_dict_line, interrupted
from lemur_corpus.filters.code import check_code_filters
from lemur_corpus.filters.decontam.report import finished_report
from lemur_corpus.filters.text import check_text_filters
from lemur_corpus.folders import PROBE_PREFIX, Owned, claim
from lemur_corpus.io import InputFile, exists, join, makedirs, read_bytes
from lemur_corpus.manifest import (
    FAILED_NAME,
    MANIFEST_NAME,
    build_manifest,
    code_version,
    manifest_schema,
    read_manifest,
    schema_problems,
    write_failure,
    write_manifest,
)
from lemur_corpus.mixture import MixturePlan
from lemur_corpus.normalize import normalize_document
from lemur_corpus.pipelines.dedup import Dedup, near_params
from lemur_corpus.pipelines.filter import FilterStage, input_chains
from lemur_corpus.pipelines.ledger import Accounting, DocumentStage, StageFn, gather
from lemur_corpus.pipelines.mix import Mix
from lemur_corpus.pipelines.profile import profile_from_metrics, run_profile
from lemur_corpus.pipelines.read import ReadInputs
from lemur_corpus.pipelines.shard import DROPS_DIR, SHARDS_DIR, WriteDropLog, WriteShards
from lemur_corpus.pipelines.tokenize import Tokenize
from lemur_corpus.sources import ReadTask, plan_input
from lemur_corpus.tokenizer import TokenizerIdentity, tokenizer_identity

log = logging.getLogger("corpus")

# Beam's own DaskRunner recomputes side inputs, runs only the last transform and loses finish_bundle
# outputs: `DaskRunner` means the fixed one (pipelines/dask_runner.py).
RUNNER_ALIASES = {"DaskRunner": "lemur_corpus.pipelines.dask_runner.DaskRunner"}


@dataclasses.dataclass
class BuildPlan:
    config: BuildConfig
    out_dir: str
    tasks: list[ReadTask]
    files: dict[str, list[InputFile]]
    tokenizer: TokenizerIdentity
    beam_args: list[str]
    code: dict[str, Any]
    started: str
    decontamination: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Kind -> identity of the decontamination index its chains use (`decontam_indexes`)."""


def resolve_beam_args(beam_args: list[str]) -> list[str]:
    """Expand runner aliases and check the runner exists before anything runs."""
    out = []
    for arg in beam_args:
        if arg.startswith("--runner="):
            name = arg.split("=", 1)[1]
            arg = "--runner=" + RUNNER_ALIASES.get(name, name)
        out.append(arg)
    options = PipelineOptions(out)
    runner = options.view_as(StandardOptions).runner
    if runner:
        from apache_beam.runners.runner import create_runner

        try:
            create_runner(runner)
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"unknown Beam runner {runner!r}: {exc}; this project also provides "
                              f"{', '.join(sorted(RUNNER_ALIASES))} ({', '.join(sorted(RUNNER_ALIASES.values()))})"
                              ) from None
    return out


BUILD_FOLDER = Owned(
    command="build",
    finished=MANIFEST_NAME,
    names=frozenset({MANIFEST_NAME, FAILED_NAME}),
    patterns=(
        (SHARDS_DIR, re.compile(r"shard-\d{5}\.(?:bin|idx|docs\.jsonl\.zst|jsonl\.zst)")),
        (DROPS_DIR, re.compile(r"drops-\d{5}-of-\d{5}\.jsonl\.zst")),
        ("", re.compile(re.escape(PROBE_PREFIX) + r"[0-9a-f]{12}")),
    ),
)
"""What a build writes in its folder: everything else there is the user's and is never touched."""


def _clear_previous(out_dir: str, overwrite: bool) -> None:
    """Claim a local folder (`folders.claim`); a remote one is cleared by name."""
    if "://" not in out_dir:
        claim(out_dir, BUILD_FOLDER, overwrite)
        return
    if exists(join(out_dir, MANIFEST_NAME)) and not overwrite:
        raise ConfigError(f"{out_dir} already holds a finished build (manifest.json); pass --overwrite to replace it")
    from apache_beam.io.filesystems import FileSystems

    makedirs(out_dir)
    for name in (MANIFEST_NAME, FAILED_NAME):  # the manifest goes first: the folder is now unfinished
        if exists(join(out_dir, name)):
            FileSystems.delete([join(out_dir, name)])
    for sub in (SHARDS_DIR, DROPS_DIR):
        if exists(join(out_dir, sub)):
            FileSystems.delete([join(out_dir, sub)])


def plan_inputs(config: BuildConfig) -> tuple[list[ReadTask], dict[str, list[InputFile]]]:
    """List every input's files and plan its read tasks on the driver; no record is read.

    `prepare` and `corpus validate` share it, so a missing or empty input file stops both the same way.
    """
    tasks: list[ReadTask] = []
    files: dict[str, list[InputFile]] = {}
    problems: list[InputFileError] = []
    for inp in config.inputs:  # every input is checked: one run names every problem
        try:
            input_tasks, input_files = plan_input(inp, config)
        except InputFileError as exc:
            problems.append(exc)
            continue
        tasks.extend(input_tasks)
        files[inp.name] = input_files
        log.info("input %s: %d files, %d read tasks", inp.name, len(input_files), len(input_tasks))
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise InputFileError(problems[0].path, f"{problems[0].reason}; and {len(problems) - 1} more input "
                             "problem(s):\n  " + "\n  ".join(str(p) for p in problems[1:]), problems[0].line)
    return tasks, files


@dataclasses.dataclass
class Preflight:
    beam_args: list[str]
    tokenizer: TokenizerIdentity
    tasks: list[ReadTask]
    files: dict[str, list[InputFile]]
    decontamination: dict[str, Any] = dataclasses.field(default_factory=dict)


def decontam_indexes(config: BuildConfig) -> dict[str, dict[str, Any]]:
    """Kind -> identity of the decontamination index (file, sha256, settings, sources) of the kinds whose
    chains run `decontam` (the configured chain or an input's own); loading it here makes an unreadable
    index, or one built with other settings, stop the build before any worker starts."""
    from lemur_corpus.filters.decontam import NAME, index_identity

    found: dict[str, dict[str, Any]] = {}
    for kind in ("code", "text"):
        section = getattr(config.filters, kind)
        chains = [section.filters] + [getattr(inp.filters, kind) or [] for inp in config.inputs if inp.filters]
        if section.enabled and any(NAME in chain for chain in chains):
            found[kind] = index_identity(section.decontam)
    return found


def preflight(config: BuildConfig, beam_args: list[str] | None = None) -> Preflight:
    """Every check that needs no data and writes nothing; `prepare` and `corpus validate` both run it."""
    args = resolve_beam_args(list(beam_args or []))
    if config.filters.code.enabled:  # a grammar that does not load stops the build here, not in a worker
        check_code_filters(config.filters.code)
    if config.filters.text.enabled:  # so does a configured fastText model that does not load
        check_text_filters(config.filters.text)
    near_params(config.dedup)  # LSH parameters datasketch would refuse (fewer than 2 bands): a ConfigError
    identity = tokenizer_identity(config.tokenizer, config.shards.dtype)
    decontamination = decontam_indexes(config)
    tasks, files = plan_inputs(config)
    return Preflight(args, identity, tasks, files, decontamination)


def prepare(config: BuildConfig, out_dir: str, beam_args: list[str] | None = None,
            overwrite: bool = False) -> BuildPlan:
    checked = preflight(config, beam_args)
    args, identity, tasks, files = checked.beam_args, checked.tokenizer, checked.tasks, checked.files
    _clear_previous(out_dir, overwrite)
    return BuildPlan(config, out_dir, tasks, files, identity, args, code_version(),
                     dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), checked.decontamination)


FIRST_BAD_RECORDS = 5
"""Bad records a failed build names (the drop log holds all of them)."""


class FirstBadRecordsFn(beam.CombineFn):
    """The `FIRST_BAD_RECORDS` read drops first by (origin, reason): what a failed build names."""

    def create_accumulator(self) -> list[Drop]:
        return []

    def add_input(self, acc: list[Drop], drop: Drop) -> list[Drop]:
        return self.merge_accumulators([acc, [drop]])

    def merge_accumulators(self, accs: Any) -> list[Drop]:
        merged = [d for acc in accs for d in acc]
        return sorted(merged, key=lambda d: (d.origin, d.reason, d.id))[:FIRST_BAD_RECORDS]

    def extract_output(self, acc: list[Drop]) -> list[Drop]:
        return acc


def bad_record_problems(accounting: Table, first: list[Drop], limit: int | None) -> list[str]:
    """The build's failure when more records than `limit` could not be read (`max_bad_records`)."""
    bad = sum(docs for (stage, _, key), (docs, _) in accounting.items() if stage == READ and key.startswith("dropped:"))
    if limit is None or bad <= limit:
        return []
    named = "; ".join(f"{d.origin}: {d.reason}" for d in sorted(first, key=lambda d: d.origin))
    return [f"{bad:,} input records could not be read as documents, more than max_bad_records = {limit:,} "
            f"(first: {named}); every one is in drops/ with its file and line"]


class WriteManifestFn(beam.DoFn):
    def __init__(self, plan: BuildPlan) -> None:
        self.plan = plan
        self.schema = manifest_schema()  # read on the driver: workers need not have manifests/

    def process(self, _: Any, accounting: dict, dedup_stats: list, mixture: MixturePlan,
                shards: list, drop_logs: list, file_errors: list, first_bad: list,
                filter_edits: list, contamination: dict) -> Iterator[str]:
        plan = self.plan
        errors = [file_error_dict_line(e) for e in sorted(file_errors, key=lambda e: (e["path"], e.get("line") or 0))]
        if mixture.error:
            errors.append(f"mixture: {mixture.error}")
        errors += bad_record_problems(accounting, [b for bad in first_bad for b in bad], plan.config.max_bad_records)
        if not errors:
            runner = PipelineOptions(plan.beam_args).view_as(StandardOptions).runner or "DirectRunner"
            manifest, problems = build_manifest(
                config=plan.config, inputs=plan.files, tokenizer=plan.tokenizer, accounting=accounting,
                dedup_stats=dedup_stats, plan=mixture, shards=shards, drop_logs=drop_logs, code=plan.code,
                run={"runner": runner, "options": plan.beam_args, "started": plan.started,
                     "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
                filter_edits=filter_edits,
                decontamination=finished_report(contamination, plan.decontamination) if plan.decontamination else None,
            )
            # A manifest that breaks its schema is a writer bug: the build fails and says where.
            problems = [f"accounting: {p}" for p in problems] + [
                f"manifest schema: {p}" for p in schema_problems(manifest, self.schema)]
            if not problems:
                yield write_manifest(plan.out_dir, manifest, self.schema)
                return
            errors.extend(problems)
        yield write_failure(plan.out_dir, errors)


class WriteManifest(beam.PTransform):
    """The last transform: every sink feeds it, so a runner that computes only what the last
    transform needs still runs the whole build (tests/test_runners.py checks that nothing is left
    out). Writes `manifest.json`, or `FAILED.json` with every reason the build failed."""

    def __init__(self, plan: BuildPlan, **results: beam.PCollection) -> None:
        super().__init__()
        self.plan, self.results = plan, results

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        r = self.results
        return (
            pbegin
            | "Seed" >> beam.Create([None])
            | "Write" >> beam.ParDo(
                WriteManifestFn(self.plan),
                accounting=beam.pvalue.AsSingleton(r["accounting"]),
                dedup_stats=beam.pvalue.AsList(r["dedup_stats"]),
                mixture=beam.pvalue.AsSingleton(r["mixture"]),
                shards=beam.pvalue.AsList(r["shards"]),
                drop_logs=beam.pvalue.AsList(r["drop_logs"]),
                file_errors=beam.pvalue.AsList(r["file_errors"]),
                first_bad=beam.pvalue.AsList(r["first_bad"]),
                filter_edits=beam.pvalue.AsList(r["filter_edits"]),
                contamination=beam.pvalue.AsSingleton(r["contamination"]),
            )
        )


def construct(p: beam.Pipeline, plan: BuildPlan) -> None:
    """The build's stages, one composite transform each (their labels are the top level of the
    graph: one box per stage in a runner's UI); each returns its documents and its accounting."""
    config = plan.config
    read = p | "Read" >> ReadInputs(plan.tasks, config)
    normalized = read.docs | "Normalize" >> DocumentStage(NORMALIZE, StageFn(normalize_document, NORMALIZE))
    filtered = normalized.docs | "Filter" >> FilterStage(config.filters, input_chains(config.inputs))
    deduped = filtered.docs | "Dedup" >> Dedup(config.dedup)
    tokenized = deduped.docs | "Tokenize" >> Tokenize(config.tokenizer, plan.tokenizer, config.shards.write_jsonl)
    mixed = tokenized.docs | "Mix" >> Mix(config)
    shards = mixed.copies | "WriteShards" >> WriteShards(
        plan.out_dir, plan.tokenizer.dtype, config.shards.target_tokens, config.seed, config.shards.write_jsonl,
        read.file_errors, mixed.plan)
    ledger = gather(p, [read, normalized, filtered, deduped, tokenized])
    drop_logs = ledger.drops | "WriteDropLog" >> WriteDropLog(plan.out_dir, config.shards.log_files, read.file_errors)
    accounting = ledger | "Accounting" >> Accounting()
    first_bad = read.drops | "FirstBadRecords" >> beam.CombineGlobally(FirstBadRecordsFn())
    _ = p | "WriteManifest" >> WriteManifest(
        plan, accounting=accounting, dedup_stats=deduped.stats, mixture=mixed.plan, shards=shards,
        drop_logs=drop_logs, file_errors=read.file_errors, first_bad=first_bad, filter_edits=filtered.edits,
        contamination=filtered.contamination)


def run_build(config: BuildConfig, out_dir: str, beam_args: list[str] | None = None,
              overwrite: bool = False) -> dict[str, Any]:
    """Run the whole build; return the manifest, or raise `CorpusError` with every reason it failed."""
    plan = prepare(config, out_dir, beam_args, overwrite)
    started = time.monotonic()
    try:
        with beam.Pipeline(options=PipelineOptions(plan.beam_args)) as p:
            construct(p, plan)
        result = p.result
    except BaseException as exc:  # a crash or Ctrl-C: the folder says so, it never looks finished
        if not exists(join(out_dir, MANIFEST_NAME)) and not exists(join(out_dir, FAILED_NAME)):
            reason = "interrupted" if interrupted(exc) else f"{type(exc).__name__}: {str(exc)[:2000]}"
            write_failure(out_dir, [reason])
        raise
    log.info("pipeline finished in %.1f s", time.monotonic() - started)
    failed = join(out_dir, FAILED_NAME)
    if exists(failed):
        import json

        errors = json.loads(read_bytes(failed))["errors"]
        raise CorpusError("the build failed:\n  " + "\n  ".join(errors))
    if not exists(join(out_dir, MANIFEST_NAME)):
        raise CorpusError(f"the pipeline ended without writing {MANIFEST_NAME} in {out_dir}")
    return add_profile(out_dir, profile_from_metrics(result))


def add_profile(out_dir: str, stages: dict[str, dict[str, float | int]]) -> dict[str, Any]:
    """The finished build's manifest with its per-stage CPU profile (`pipelines/profile.py`) in the
    volatile `run` section; a runner that reports no metrics leaves the manifest as it is."""
    manifest = read_manifest(out_dir)
    if not stages:
        log.warning("the runner reported no metrics: the manifest has no run.profile")
        return manifest
    read = manifest["accounting"]["stages"].get("read", {})
    docs = sum(g["in"]["docs"] for g in read.values())
    nbytes = sum(g["in"]["bytes"] for g in read.values())
    manifest["run"]["profile"] = run_profile(stages, docs, nbytes)
    write_manifest(out_dir, manifest, manifest_schema())
    return manifest
