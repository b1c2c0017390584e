"""The whole build as one Beam pipeline (DESIGN §3):

    read ─▶ normalize ─▶ filter ─▶ dedup ─▶ tokenize ─▶ mix ─▶ shards ─▶ manifest (last)

`prepare` does everything that needs no data on the driver — validates the config and the runner,
loads the tokenizer's identity, lists the inputs, clears a previous unfinished build — so mistakes
stop the build before any worker starts. `run_build` runs the pipeline and returns the manifest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from corpus.accounting import FILTER, NORMALIZE
from corpus.config import BuildConfig
from corpus.errors import ConfigError, CorpusError
from corpus.io import InputFile, exists, join, makedirs, read_bytes
from corpus.manifest import (
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
from corpus.mixture import MixturePlan
from corpus.normalize import normalize_document
from corpus.sources import ReadTask, plan_input
from corpus.tokenizer import TokenizerIdentity, tokenizer_identity
from filters.code import check_code_filters
from filters.text import check_text_filters
from pipelines.dedup import dedup
from pipelines.filter import FilterFn
from pipelines.ledger import Ledger, StageFn
from pipelines.mix import mix
from pipelines.read import read_inputs
from pipelines.shard import DROPS_DIR, SHARDS_DIR, write_drop_log, write_shards
from pipelines.tokenize import tokenize

log = logging.getLogger("corpus")

# Beam's own DaskRunner recomputes side inputs, runs only the last transform and loses finish_bundle
# outputs: `DaskRunner` means the fixed one (pipelines/dask_runner.py).
RUNNER_ALIASES = {"DaskRunner": "pipelines.dask_runner.DaskRunner"}


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
            raise ConfigError(f"unknown Beam runner {runner!r}: {exc}") from None
    return out


def _clear_previous(out_dir: str, overwrite: bool) -> None:
    import shutil

    if exists(join(out_dir, MANIFEST_NAME)):
        if not overwrite:
            raise ConfigError(f"{out_dir} already holds a finished build (manifest.json); pass --overwrite to replace it")
    if "://" in out_dir:
        from apache_beam.io.filesystems import FileSystems

        for name in (MANIFEST_NAME, FAILED_NAME):
            if exists(join(out_dir, name)):
                FileSystems.delete([join(out_dir, name)])
        for sub in (SHARDS_DIR, DROPS_DIR):
            if exists(join(out_dir, sub)):
                FileSystems.delete([join(out_dir, sub)])
        return
    import os

    for name in (MANIFEST_NAME, FAILED_NAME):  # the manifest goes first: the folder is now unfinished
        if os.path.exists(os.path.join(out_dir, name)):
            os.unlink(os.path.join(out_dir, name))
    for sub in (SHARDS_DIR, DROPS_DIR):
        shutil.rmtree(os.path.join(out_dir, sub), ignore_errors=True)


def plan_inputs(config: BuildConfig) -> tuple[list[ReadTask], dict[str, list[InputFile]]]:
    """List every input's files and plan its read tasks on the driver; no record is read.

    `prepare` and `corpus validate` share it, so a missing or empty input file stops both the same way.
    """
    tasks: list[ReadTask] = []
    files: dict[str, list[InputFile]] = {}
    for inp in config.inputs:
        input_tasks, input_files = plan_input(inp, config)
        tasks.extend(input_tasks)
        files[inp.name] = input_files
        log.info("input %s: %d files, %d read tasks", inp.name, len(input_files), len(input_tasks))
    return tasks, files


@dataclasses.dataclass
class Preflight:
    beam_args: list[str]
    tokenizer: TokenizerIdentity
    tasks: list[ReadTask]
    files: dict[str, list[InputFile]]


def preflight(config: BuildConfig, beam_args: list[str] | None = None) -> Preflight:
    """Every check that needs no data and writes nothing; `prepare` and `corpus validate` both run it."""
    args = resolve_beam_args(list(beam_args or []))
    if config.filters.code.enabled:  # a grammar that does not load stops the build here, not in a worker
        check_code_filters(config.filters.code)
    if config.filters.text.enabled:  # so does a configured fastText model that does not load
        check_text_filters(config.filters.text)
    identity = tokenizer_identity(config.tokenizer, config.shards.dtype)
    tasks, files = plan_inputs(config)
    return Preflight(args, identity, tasks, files)


def prepare(config: BuildConfig, out_dir: str, beam_args: list[str] | None = None, overwrite: bool = False) -> BuildPlan:
    checked = preflight(config, beam_args)
    args, identity, tasks, files = checked.beam_args, checked.tokenizer, checked.tasks, checked.files
    makedirs(out_dir)
    _clear_previous(out_dir, overwrite)
    return BuildPlan(config, out_dir, tasks, files, identity, args, code_version(),
                     dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))


class WriteManifestFn(beam.DoFn):
    def __init__(self, plan: BuildPlan) -> None:
        self.plan = plan
        self.schema = manifest_schema()  # read on the driver: workers need not have manifests/

    def process(self, _: Any, accounting: dict, dedup_stats: list, mixture: MixturePlan,  # type: ignore[no-untyped-def]
                shards: list, drop_logs: list, file_errors: list):
        plan = self.plan
        errors = [f"{e['path']}{', line ' + str(e['line']) if e.get('line') else ''}: {e['reason']}"
                  for e in sorted(file_errors, key=lambda e: (e["path"], e.get("line") or 0))]
        if mixture.error:
            errors.append(f"mixture: {mixture.error}")
        if not errors:
            runner = PipelineOptions(plan.beam_args).view_as(StandardOptions).runner or "DirectRunner"
            manifest, problems = build_manifest(
                config=plan.config, inputs=plan.files, tokenizer=plan.tokenizer, accounting=accounting,
                dedup_stats=dedup_stats, plan=mixture, shards=shards, drop_logs=drop_logs, code=plan.code,
                run={"runner": runner, "options": plan.beam_args, "started": plan.started,
                     "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
            )
            # A manifest that breaks its schema is a writer bug: the build fails and says where.
            problems = [f"accounting: {p}" for p in problems] + [
                f"manifest schema: {p}" for p in schema_problems(manifest, self.schema)]
            if not problems:
                yield write_manifest(plan.out_dir, manifest, self.schema)
                return
            errors.extend(problems)
        yield write_failure(plan.out_dir, errors)


def construct(p: beam.Pipeline, plan: BuildPlan) -> None:
    config = plan.config
    ledger = Ledger()
    docs, file_errors = read_inputs(p, plan.tasks, config, ledger)
    docs = ledger.stage("Normalize", NORMALIZE, docs, StageFn(normalize_document, NORMALIZE))
    docs = ledger.stage("Filter", FILTER, docs, FilterFn(config.filters))
    docs, dedup_stats = dedup(docs, config, ledger)
    tokenized = tokenize(docs, config.tokenizer, plan.tokenizer, config.shards.write_jsonl, ledger)
    copies, mixture, _ = mix(tokenized, config)
    shards = write_shards(copies, plan.out_dir, plan.tokenizer.dtype, config.shards.target_tokens, config.seed,
                          config.shards.write_jsonl, file_errors, mixture)
    drop_logs = write_drop_log(ledger.all_drops(p), plan.out_dir, config.shards.log_files, file_errors)
    accounting = ledger.accounting(p)
    # The last transform, and every sink feeds it: a runner that computes only what the last transform
    # needs still runs the whole build (tests/test_runners.py checks that nothing is left out).
    (
        p
        | "ManifestSeed" >> beam.Create([None])
        | "WriteManifest" >> beam.ParDo(
            WriteManifestFn(plan),
            accounting=beam.pvalue.AsSingleton(accounting),
            dedup_stats=beam.pvalue.AsList(dedup_stats),
            mixture=beam.pvalue.AsSingleton(mixture),
            shards=beam.pvalue.AsList(shards),
            drop_logs=beam.pvalue.AsList(drop_logs),
            file_errors=beam.pvalue.AsList(file_errors),
        )
    )


def run_build(config: BuildConfig, out_dir: str, beam_args: list[str] | None = None,
              overwrite: bool = False) -> dict[str, Any]:
    """Run the whole build; return the manifest, or raise `CorpusError` with every reason it failed."""
    plan = prepare(config, out_dir, beam_args, overwrite)
    started = time.monotonic()
    with beam.Pipeline(options=PipelineOptions(plan.beam_args)) as p:
        construct(p, plan)
    log.info("pipeline finished in %.1f s", time.monotonic() - started)
    failed = join(out_dir, FAILED_NAME)
    if exists(failed):
        import json

        errors = json.loads(read_bytes(failed))["errors"]
        raise CorpusError("the build failed:\n  " + "\n  ".join(errors))
    if not exists(join(out_dir, MANIFEST_NAME)):
        raise CorpusError(f"the pipeline ended without writing {MANIFEST_NAME} in {out_dir}")
    return read_manifest(out_dir)
