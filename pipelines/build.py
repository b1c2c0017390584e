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
from lemur_corpus.dedup.index import INDEX_DIR, IndexHandle, content_build_id, index_settings, open_indexes
from lemur_corpus.document import KINDS
from lemur_corpus.errors import ConfigError, CorpusError, InputFileError, file_error_dict_line, interrupted
from lemur_corpus.filters.code import check_code_filters
from lemur_corpus.filters.decontam.report import finished_report
from lemur_corpus.filters.text import check_text_filters
from lemur_corpus.folders import PROBE_PREFIX, Owned, claim, marker_command
from lemur_corpus.io import InputFile, exists, join, link_or_copy, makedirs, read_bytes
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
from lemur_corpus.partial_pools import samples_below_one_epoch
from lemur_corpus.pipelines.dedup import Dedup, near_params
from lemur_corpus.pipelines.dedup_against import against_specs
from lemur_corpus.pipelines.dedup_index import IndexTarget
from lemur_corpus.pipelines.direct_runner import beam_pipeline
from lemur_corpus.pipelines.filter import FilterStage, input_chains
from lemur_corpus.pipelines.ledger import Accounting, DocumentStage, StageFn, accounting_side_input, gather
from lemur_corpus.pipelines.mix import Mix
from lemur_corpus.pipelines.profile import groupings_from_metrics, profile_from_metrics, run_profile
from lemur_corpus.pipelines.read import ReadInputs
from lemur_corpus.pipelines.shard import DROPS_DIR, SHARDS_DIR, RemoveSpills, WriteDropLog, WriteShards, drop_log_parts
from lemur_corpus.pipelines.tokenize import Tokenize
from lemur_corpus.pipelines.tokenize_sampled import TokenizeSampled
from lemur_corpus.pipelines.variants import MAIN, WriteVariantShards, bytes_added, variant_dir
from lemur_corpus.sources import ReadTask, plan_input, planned_documents
from lemur_corpus.token_spill import SPILL_NAME, remove_spills
from lemur_corpus.tokenizer import TokenizerIdentity, tokenizer_identity
from lemur_corpus.variants import SHARED_DIR, VARIANTS_DIR

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
    index: IndexTarget | None = None
    """Where the dedup index of the kept documents goes, and the build's id in it."""
    against: dict[str, list[IndexHandle]] = dataclasses.field(default_factory=dict)
    """Kind -> the checked earlier indexes this build dedups against (`--dedup-against`)."""

    def dedup_index_record(self, written: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
        """The manifest's `dedup_index`: this build's id, the index it wrote, what it was deduplicated against."""
        if self.index is None:
            return None
        return {"build_id": self.index.build_id, "written": {kind: entry for kind, entry in sorted(written)},
                "against": [h.record() for kind in sorted(self.against) for h in self.against[kind]]}


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
    _check_option_values(options)
    return out


def _check_option_values(options: PipelineOptions) -> None:
    """Parse every option now (the runner's own too: `create_runner` registered them), so a wrong
    value is one line before anything runs, not Beam's argparse usage (a hundred lines) half-way."""
    import contextlib
    import io

    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            options.get_all_options()
    except SystemExit:
        lines = [line for line in printed.getvalue().splitlines() if "error:" in line]
        problem = lines[-1].split("error:", 1)[1].strip() if lines else printed.getvalue().strip()
        raise ConfigError(f"Beam option: {problem}") from None


BUILD_FOLDER = Owned(
    command="build",
    finished=MANIFEST_NAME,
    names=frozenset({MANIFEST_NAME, FAILED_NAME, VARIANTS_DIR, INDEX_DIR}),  # the dedup index folder is written whole
    patterns=(
        (SHARDS_DIR, re.compile(r"shard-\d{5}\.(?:bin|idx|docs\.jsonl\.zst|jsonl\.zst|part-\d{5}\.bin)|" + SPILL_NAME)),
        (DROPS_DIR, re.compile(r"drops-\d{5}-of-\d{5}\.jsonl\.zst")),
        ("", re.compile(re.escape(PROBE_PREFIX) + r"[0-9a-f]{12}")),
    ),
)
"""What a build writes in its folder: everything else there is the user's and is never touched."""


def _check_variants_folder(out_dir: str) -> None:
    """`variants/` is replaced whole by a build: refuse one that holds anything a build did not write
    there (every entry is a variant folder with the build's marker, or the shared token bytes)."""
    import os

    folder = os.path.join(out_dir, VARIANTS_DIR)
    if not os.path.isdir(folder):
        return
    for name in sorted(os.listdir(folder)):
        if name != SHARED_DIR and marker_command(os.path.join(folder, name)) != BUILD_FOLDER.command:
            raise ConfigError(f"--out {out_dir}: {VARIANTS_DIR}/{name} was not written by `corpus build`; "
                              f"move it away (a build replaces {VARIANTS_DIR}/ whole)")


def _clear_previous(out_dir: str, overwrite: bool, variants: list[str] | None = None) -> None:
    """Claim a local folder (`folders.claim`), and each variant's folder; a remote one is cleared by name."""
    if "://" not in out_dir:
        _check_variants_folder(out_dir)
        claim(out_dir, BUILD_FOLDER, overwrite)
        for name in variants or []:
            claim(join(out_dir, VARIANTS_DIR, name), BUILD_FOLDER, overwrite)
        return
    if exists(join(out_dir, MANIFEST_NAME)) and not overwrite:
        raise ConfigError(f"{out_dir} already holds a finished build (manifest.json); pass --overwrite to replace it")
    from apache_beam.io.filesystems import FileSystems

    makedirs(out_dir)
    for name in (MANIFEST_NAME, FAILED_NAME):  # the manifest goes first: the folder is now unfinished
        if exists(join(out_dir, name)):
            FileSystems.delete([join(out_dir, name)])
    for sub in (SHARDS_DIR, DROPS_DIR, VARIANTS_DIR, INDEX_DIR):
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


def input_kinds(config: BuildConfig) -> list[str]:
    """The kinds of document the build's inputs yield (`local_env`, which has no `kind`, yields both)."""
    return sorted({kind for inp in config.inputs for kind in ((inp.kind,) if inp.kind else KINDS)})


def preflight(config: BuildConfig, beam_args: list[str] | None = None) -> Preflight:
    """Every check that needs no data and writes nothing; `prepare` and `corpus validate` both run it."""
    args = resolve_beam_args(list(beam_args or []))
    kinds = input_kinds(config)  # a kind with no input runs no filter: nothing to load
    if config.filters.code.enabled and "code" in kinds:  # a grammar that does not load stops the build here
        check_code_filters(config.filters.code)
    if config.filters.text.enabled and "text" in kinds:  # so does a configured fastText model that does not load
        check_text_filters(config.filters.text)
    near_params(config.dedup)  # LSH parameters datasketch would refuse (fewer than 2 bands): a ConfigError
    identity = tokenizer_identity(config.tokenizer, config.shards.dtype)
    decontamination = decontam_indexes(config)
    tasks, files = plan_inputs(config)
    return Preflight(args, identity, tasks, files, decontamination)


def default_build_id(config: BuildConfig, files: dict[str, list[InputFile]]) -> str:
    """A build's id in dedup indexes when none is given: the config's name and a digest of the config
    and the input files (path, size); the DAG passes its date instead."""
    listed = {name: [(f.path, f.size) for f in found] for name, found in sorted(files.items())}
    return content_build_id(config.name, {"config": config.model_dump(mode="json"), "files": listed})


def dedup_indexes(config: BuildConfig, out_dir: str, files: dict[str, list[InputFile]], against: list[str] | None,
                  build_id: str | None) -> tuple[IndexTarget, dict[str, list[IndexHandle]]]:
    """The index this build writes, and the earlier indexes it dedups against, each checked whole
    (settings, files, sha256; every kind): a problem stops the build before anything is written."""
    params = near_params(config.dedup)
    settings = {kind: index_settings(kind, config.dedup.near(kind), params.get(kind)) for kind in KINDS}
    build_id = build_id or default_build_id(config, files)
    handles = {kind: open_indexes(against, kind, settings[kind], build_id) for kind in KINDS} if against else {}
    return IndexTarget(out_dir, build_id, settings), handles


def prepare(config: BuildConfig, out_dir: str, beam_args: list[str] | None = None,
            overwrite: bool = False, against: list[str] | None = None, build_id: str | None = None) -> BuildPlan:
    checked = preflight(config, beam_args)
    args, identity, tasks, files = checked.beam_args, checked.tokenizer, checked.tasks, checked.files
    index, handles = dedup_indexes(config, out_dir, files, against, build_id)
    _clear_previous(out_dir, overwrite, [v.name for v in config.variants])
    return BuildPlan(config, out_dir, tasks, files, identity, args, code_version(),
                     dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), checked.decontamination, index, handles)


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


def build_errors(plan: BuildPlan, accounting: dict, mixture: MixturePlan, file_errors: list,
                 first_bad: list) -> list[str]:
    """Why the build failed, from what the pipeline gathered (none: it did not)."""
    errors = [file_error_dict_line(e) for e in sorted(file_errors, key=lambda e: (e["path"], e.get("line") or 0))]
    if mixture.error:
        errors.append(f"mixture: {mixture.error}")
    return errors + bad_record_problems(accounting, [b for bad in first_bad for b in bad], plan.config.max_bad_records)


def assemble(plan: BuildPlan, config: BuildConfig, schema: dict[str, Any], *, mixture: MixturePlan,
             shards: list, accounting: dict, dedup_stats: list, drop_logs: list, filter_edits: list,
             contamination: dict, extra: dict[str, Any] | None = None,
             dedup_index: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """A manifest of this build (or of one of its variants: `config` and `mixture` are the variant's),
    and its problems; a manifest that breaks its schema is a writer bug, reported as a problem."""
    runner = PipelineOptions(plan.beam_args).view_as(StandardOptions).runner or "DirectRunner"
    manifest, problems = build_manifest(
        config=config, inputs=plan.files, tokenizer=plan.tokenizer, accounting=accounting,
        dedup_stats=dedup_stats, plan=mixture, shards=shards, drop_logs=drop_logs, code=plan.code,
        run={"runner": runner, "options": plan.beam_args, "started": plan.started,
             "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
        filter_edits=filter_edits,
        decontamination=finished_report(contamination, plan.decontamination) if plan.decontamination else None,
        dedup_index=dedup_index,
    )
    manifest.update(extra or {})
    return manifest, [f"accounting: {p}" for p in problems] + [
        f"manifest schema: {p}" for p in schema_problems(manifest, schema)]


class WriteManifestFn(beam.DoFn):
    def __init__(self, plan: BuildPlan) -> None:
        self.plan = plan
        self.schema = manifest_schema()  # read on the driver: workers need not have manifests/

    def process(self, _: Any, accounting: dict, dedup_stats: list, mixture: MixturePlan,
                shards: list, drop_logs: list, file_errors: list, first_bad: list,
                filter_edits: list, contamination: dict, dedup_index: list,
                variants: list | None = None) -> Iterator[str]:
        plan = self.plan
        errors = build_errors(plan, accounting, mixture, file_errors, first_bad)
        if not errors:  # a failed build fails its variants alike: say it once
            errors = [f"variant {v['name']!r}: {e}" for v in sorted(variants or [], key=lambda v: v["name"])
                      for e in v["errors"]]
        if not errors:
            extra = {"variants": variant_summaries(variants)} if plan.config.variants else None
            manifest, problems = assemble(
                plan, plan.config, self.schema, mixture=mixture, shards=shards, accounting=accounting,
                dedup_stats=dedup_stats, drop_logs=drop_logs, filter_edits=filter_edits,
                contamination=contamination, extra=extra,
                dedup_index=plan.dedup_index_record(dedup_index))
            if not problems:
                yield write_manifest(plan.out_dir, manifest, self.schema)
                return
            errors.extend(problems)
        yield write_failure(plan.out_dir, errors)


def variant_summaries(variants: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The main manifest's `variants` section: where each variant is and what it cost."""
    return [{k: v for k, v in summary.items() if k != "errors"}
            for summary in sorted(variants or [], key=lambda v: v["name"])]


class WriteVariantManifestFn(beam.DoFn):
    """(variant, its shard records) -> the variant folder's manifest (or FAILED.json), with its own
    names for the drop log; yields the variant's summary for the main manifest."""

    def __init__(self, plan: BuildPlan) -> None:
        self.plan = plan
        self.schema = manifest_schema()

    def process(self, element: tuple[str, list[Any]], plans: dict[str, MixturePlan], accounting: dict,
                dedup_stats: list, shards: list, drop_logs: list, file_errors: list, first_bad: list,
                filter_edits: list, contamination: dict) -> Iterator[dict[str, Any]]:
        plan, (name, found) = self.plan, element
        records = sorted((r for r in found if r), key=lambda r: r["name"])
        folder = variant_dir(plan.out_dir, name)
        errors = build_errors(plan, accounting, plans[MAIN], file_errors, first_bad)
        summary: dict[str, Any] = {"name": name, "path": f"{VARIANTS_DIR}/{name}", "errors": errors}
        if errors:
            write_failure(folder, ["the main build failed"] + errors)
            yield summary
            return
        makedirs(join(folder, DROPS_DIR))
        for record in drop_logs:  # the same drop log, under the variant folder's own names
            link_or_copy(join(plan.out_dir, record["path"]), join(folder, record["path"]))
        config = plan.config.variant_config(name)
        spec = next(v for v in plan.config.variants if v.name == name).spec()
        cost = bytes_added(records)
        manifest, problems = assemble(
            plan, config, self.schema, mixture=plans[name], shards=records, accounting=accounting,
            dedup_stats=dedup_stats, drop_logs=drop_logs, filter_edits=filter_edits, contamination=contamination,
            extra={"variant": {"name": name, "spec": spec, "bytes": cost,
                               "of": {"name": plan.config.name, "config_hash": plan.config.config_hash()}}})
        if problems:
            write_failure(folder, problems)
            summary["errors"] = problems
            yield summary
            return
        write_manifest(folder, manifest, self.schema)
        ratio = manifest["mixture"]["code_text_ratio"]
        summary.update({"config_hash": manifest["build"]["config_hash"], "spec": spec,
                        "tokens": manifest["totals"]["tokens"], "shards": manifest["totals"]["shards"],
                        "code_text_ratio": {"target": ratio["target"], "realized": ratio["realized"]},
                        "bytes": cost})
        yield summary


SINGLETON_RESULTS = frozenset({"accounting", "mixture", "contamination"})
"""The build's results that are one value each; every other result is a list of what its stage emitted."""


def side_inputs(results: dict[str, beam.PCollection]) -> dict[str, Any]:
    """The build's results as the side inputs of a manifest writer."""
    return {name: accounting_side_input(pcoll) if name == "accounting"
            else beam.pvalue.AsSingleton(pcoll) if name in SINGLETON_RESULTS else beam.pvalue.AsList(pcoll)
            for name, pcoll in results.items()}


class WriteVariantManifests(beam.PTransform):
    """Every variant's manifest, after its shards and the drop log are written: (variant summary)."""

    def __init__(self, plan: BuildPlan, *, records: beam.PCollection, plans: beam.PCollection,
                 **results: beam.PCollection) -> None:
        super().__init__()
        self.plan, self.records, self.plans, self.results = plan, records, plans, results

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        r = self.results
        names = pbegin | "Names" >> beam.Create([(v.name, None) for v in self.plan.config.variants], reshuffle=False)
        return (
            (names, self.records) | "All" >> beam.Flatten()
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(
                WriteVariantManifestFn(self.plan),
                plans=beam.pvalue.AsSingleton(self.plans),
                **side_inputs({k: v for k, v in r.items() if k != "mixture"}),  # each variant has its plan
            )
        )


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
                **side_inputs(r),
            )
        )


def tokenizes_sampled(config: BuildConfig) -> bool:
    """Whether the build tokenizes only what its mixtures can sample: `mixture.tokenize: sampled` with a
    stated total in the main mixture and every variant's (a mixture without one needs every pool's
    exact size, so everything is tokenized, in the plain stage, with a warning)."""
    if config.mixture.tokenize != "sampled":
        return False
    if all(samples_below_one_epoch(m) for m in config.all_mixtures()):
        return True
    log.warning("mixture.tokenize: sampled tokenizes everything here: it needs mixture.enabled and a stated "
                "mixture.total_tokens (in every variant too); without one the total follows every pool's exact size")
    return False


def construct(p: beam.Pipeline, plan: BuildPlan) -> None:
    """The build's stages, one composite transform each (their labels are the top level of the
    graph: one box per stage in a runner's UI); each returns its documents and its accounting."""
    config = plan.config
    read = p | "Read" >> ReadInputs(plan.tasks, config)
    normalized = read.docs | "Normalize" >> DocumentStage(NORMALIZE, StageFn(normalize_document, NORMALIZE))
    filtered = normalized.docs | "Filter" >> FilterStage(config.filters, input_chains(config.inputs),
                                                     input_kinds(config))
    specs = against_specs(config.dedup, plan.against, near_params(config.dedup)) if plan.against else None
    planned = planned_documents(plan.tasks, config.inputs)  # sizes dedup's bucket groups and the drop log's files
    deduped = filtered.docs | "Dedup" >> Dedup(config.dedup, planned, plan.index, specs)
    spill_folder = join(plan.out_dir, SHARDS_DIR)
    if tokenizes_sampled(config):  # only what the mixture can sample (lemur_corpus.partial_pools)
        sampled = deduped.docs | "Tokenize" >> TokenizeSampled(config, plan.tokenizer, spill_folder)
        tokenized, mixed = sampled.stage, sampled.stage.docs | "Mix" >> Mix(config, sampled.partial)
    else:
        tokenized = deduped.docs | "Tokenize" >> Tokenize(config.tokenizer, plan.tokenizer,
                                                          config.shards.write_jsonl, spill_folder)
        mixed = tokenized.docs | "Mix" >> Mix(config)
    main_shards = WriteShards(
        plan.out_dir, plan.tokenizer.dtype, config.shards.target_tokens, config.seed, config.shards.write_jsonl,
        read.file_errors, mixed.plan, homes=bool(config.variants))
    shards = mixed.copies | "WriteShards" >> main_shards
    ledger = gather(p, [read, normalized, filtered, deduped, tokenized])
    drop_logs = ledger.drops | "WriteDropLog" >> WriteDropLog(
        plan.out_dir, drop_log_parts(sum(planned.values()), config.shards.log_files), read.file_errors)
    accounting = ledger.tallies | "Accounting" >> Accounting(ledger.drops)
    first_bad = read.drops | "FirstBadRecords" >> beam.CombineGlobally(FirstBadRecordsFn())
    spill_readers: list[beam.PCollection] = []  # what else reads spilled token ids
    if config.variants:  # one more stage, only in builds with variants (docs/design.md, Variants)
        assert main_shards.num_shards is not None and main_shards.token_homes is not None  # set by expand
        records = mixed.variant_copies | "WriteVariantShards" >> WriteVariantShards(
            plan.out_dir, plan.tokenizer.dtype, config.shards.target_tokens, config.seed, main_shards.num_shards,
            main_shards.token_homes, read.file_errors, mixed.plan)
        spill_readers.append(records)
    results = dict(accounting=accounting, dedup_stats=deduped.stats, mixture=mixed.plan,
                   shards=shards | "RemoveSpills" >> RemoveSpills(spill_folder, *spill_readers),
                   drop_logs=drop_logs, file_errors=read.file_errors, first_bad=first_bad,
                   filter_edits=filtered.edits, contamination=filtered.contamination)
    if config.variants:
        results["variants"] = p | "WriteVariantManifests" >> WriteVariantManifests(
            plan, records=records, plans=mixed.plans, **results)
    _ = p | "WriteManifest" >> WriteManifest(plan, **results, dedup_index=deduped.index_written)


def run_build(config: BuildConfig, out_dir: str, beam_args: list[str] | None = None,
              overwrite: bool = False, against: list[str] | None = None, build_id: str | None = None) -> dict[str, Any]:
    """Run the whole build; return the manifest, or raise `CorpusError` with every reason it failed.
    `against`: earlier builds or dedup indexes to dedup against; `build_id`: this build's id in its
    own dedup index (default: `default_build_id`)."""
    plan = prepare(config, out_dir, beam_args, overwrite, against, build_id)
    started = time.monotonic()
    try:
        with beam_pipeline(PipelineOptions(plan.beam_args)) as p:
            construct(p, plan)
        result = p.result
    except BaseException as exc:  # a crash or Ctrl-C: the folder says so, it never looks finished
        if not exists(join(out_dir, MANIFEST_NAME)) and not exists(join(out_dir, FAILED_NAME)):
            reason = "interrupted" if interrupted(exc) else f"{type(exc).__name__}: {str(exc)[:2000]}"
            write_failure(out_dir, [reason])
        _remove_spills_after_failure(out_dir)
        raise
    log.info("pipeline finished in %.1f s", time.monotonic() - started)
    failed = join(out_dir, FAILED_NAME)
    if exists(failed):
        import json

        errors = json.loads(read_bytes(failed))["errors"]
        raise CorpusError("the build failed:\n  " + "\n  ".join(errors))
    if not exists(join(out_dir, MANIFEST_NAME)):
        raise CorpusError(f"the pipeline ended without writing {MANIFEST_NAME} in {out_dir}")
    return add_profile(out_dir, profile_from_metrics(result), groupings_from_metrics(result))


def _remove_spills_after_failure(out_dir: str) -> None:
    """Best effort: a build that did not finish leaves no token spill files (a worker still writing
    may leave one; the next build in the folder clears it, as it clears every file a build writes)."""
    try:
        remove_spills(join(out_dir, SHARDS_DIR))
    except Exception:  # the build's own failure is what the user must see
        log.debug("token spill files not removed from %s", out_dir, exc_info=True)


def add_profile(out_dir: str, stages: dict[str, dict[str, float | int]],
                groupings: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """The finished build's manifest with its per-stage CPU profile (`pipelines/profile.py`) in the
    volatile `run` section, and what each grouping moved where the runner counts it
    (`run.groupings`); a runner that reports no metrics leaves the manifest as it is."""
    manifest = read_manifest(out_dir)
    if not stages:
        log.warning("the runner reported no metrics: the manifest has no run.profile")
        return manifest
    if groupings:
        manifest["run"]["groupings"] = groupings
    read = manifest["accounting"]["stages"].get("read", {})
    docs = sum(g["in"]["docs"] for g in read.values())
    nbytes = sum(g["in"]["bytes"] for g in read.values())
    manifest["run"]["profile"] = run_profile(stages, docs, nbytes)
    write_manifest(out_dir, manifest, manifest_schema())
    return manifest
