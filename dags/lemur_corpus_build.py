"""lemur_corpus_build: the weekly corpus build, published only once it passes its audit.

    validate ─▶ build ─▶ audit ─▶ regenerate_manifests ─▶ publish

Incremental by default: each run dedups its documents against the last published build (its dedup
index), so nothing published is ever removed and every removal names the earlier build
(`corpus build --dedup-against`); param `dedup_against` names other builds or a merged index
(`corpus dedup-index merge`) instead, and `incremental: false` makes a full rebuild. The build's
manifest records what it was deduplicated against, and its audit checks those indexes.

Every task runs the pipeline's `corpus` command line in the pipeline's own virtualenv (Airflow Variable
`lemur_corpus_cli`, default `<checkout>/.venv/bin/corpus`) as a child process; this file imports neither
Beam nor the `corpus` package, so it parses fast. Each run builds into `<output_root>/builds/<logical
date>/`: rerunning a date replaces that date's build, and a retry clears the attempt before it. A failed
task fails the run and nothing after it runs, so a build that fails validation or its audit is never
published. Only the build is retried (with exponential backoff): validation and audit are deterministic,
and a user error (exit status 2: config, arguments, input files) fails at once without retries.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import DAG, Param, Variable, get_current_context, task

import lemur_corpus_ops as ops

try:  # Airflow >= 3.1; earlier 3.x releases export them from airflow.exceptions
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # pragma: no cover
    from airflow.exceptions import AirflowException, AirflowFailException

log = logging.getLogger("lemur_corpus")

DAG_ID = "lemur_corpus_build"
SCHEDULE = "@weekly"
BUILD_RETRIES = 2
BUILD_RETRY_DELAY = dt.timedelta(minutes=10)
BUILD_MAX_RETRY_DELAY = dt.timedelta(hours=2)
BUILD_TIMEOUT = dt.timedelta(hours=48)
"""A Lemur-scale build (90B tokens) runs for hours on Dataflow; past two days something is stuck."""


def corpus_cli() -> str:
    """Read at run time (never at parse time, which would query the metadata DB on every parse)."""
    return Variable.get(ops.CLI_VARIABLE, default=ops.DEFAULT_CLI)


def run(argv: list[str]) -> ops.CliResult:
    """Run a `corpus` command; turn its failure into the Airflow exception that says whether to retry."""
    try:
        return ops.run_cli(argv, log)
    except ops.CliFailed as exc:
        message = f"{ops.command_name(exc.argv)} failed: {exc}"
        if exc.retryable:
            raise AirflowException(message) from None
        raise AirflowFailException(message) from None


@task(retries=0)
def validate(params: dict | None = None) -> dict:
    """Fail fast, before anything is written or cleared: config, runner, inputs, output folder."""
    context = get_current_context()
    params = params or {}
    try:
        root = ops.check_output_root(params["output_root"])
        beam = ops.beam_args(params["runner"], params["beam_options"])
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None
    config = ops.from_checkout(params["config"]) if params["config"] else None
    key = ops.date_key(context.get("logical_date"), context["dag_run"].run_after)
    out = ops.build_dir(root, key)
    against = ops.dedup_against(root, out, params.get("incremental", True), params.get("dedup_against") or [])
    log.info("dedup against: %s", ", ".join(against) if against else "nothing (a full build)")
    cli = corpus_cli()
    report = run(ops.validate_argv(cli, config, out, beam)).json()
    log.info("validated: build %s (config hash %s), runner %s, output %s",
             report["name"], report["config_hash"][:12], report["runner"], out)
    return {"cli": cli, "config": config, "beam_args": beam, "output_root": root, "date": key,
            "build_dir": out, "config_hash": report["config_hash"], "name": report["name"], "dedup_against": against}


@task(retries=BUILD_RETRIES, retry_delay=BUILD_RETRY_DELAY, retry_exponential_backoff=True,
      max_retry_delay=BUILD_MAX_RETRY_DELAY, execution_timeout=BUILD_TIMEOUT)
def build(plan: dict) -> dict:
    """Run the Beam pipeline into the date's folder, replacing any earlier attempt or run of that date."""
    ti = get_current_context()["ti"]
    log.info("attempt %s of %s: building %s", ti.try_number, BUILD_RETRIES + 1, plan["build_dir"])
    if ops.withdraw_if_published(plan["output_root"], plan["build_dir"]):
        log.warning("%s was the published build: latest is withdrawn until this rebuild passes its audit",
                    plan["build_dir"])
    summary = run(ops.build_argv(plan["cli"], plan["config"], plan["build_dir"], plan["beam_args"],
                                 plan.get("dedup_against") or [])).json()
    totals = summary["totals"]
    log.info("built %s: %s shards, %s documents, %s tokens", plan["build_dir"], totals["shards"],
             totals["documents"], totals["tokens"])
    return {**plan, "manifest_sha256": ops.manifest_sha256(plan["build_dir"]),
            "totals": {k: totals[k] for k in ("shards", "documents", "tokens")}}


@task(retries=0)
def audit(built: dict) -> dict:
    """Re-measure the shards against the manifest and the mixture targets; any mismatch fails the run."""
    try:
        result = ops.run_cli(ops.audit_argv(built["cli"], built["build_dir"]), log).json()
    except ops.CliFailed as exc:
        raise AirflowFailException(
            f"audit of {built['build_dir']} failed, not publishing: {ops.audit_failure(exc)}") from None
    log.info("audit passed: %s tokens, %s documents, code:text %s", result.get("total_tokens"),
             result.get("total_documents"), result.get("code_text_ratio"))
    for folder in ops.variant_dirs(built["build_dir"]):  # each variant is published with the build: audit it
        try:
            variant = ops.run_cli(ops.audit_argv(built["cli"], folder), log).json()
        except ops.CliFailed as exc:
            raise AirflowFailException(f"audit of variant {folder} failed, not publishing: "
                                       f"{ops.audit_failure(exc)}") from None
        log.info("variant %s passed its audit: %s tokens, code:text %s", folder, variant.get("total_tokens"),
                 variant.get("code_text_ratio"))
    return {**built, "audit": {k: result.get(k) for k in ("ok", "total_tokens", "total_documents",
                                                           "code_text_ratio", "tolerance")}}


@task(retries=0)
def regenerate_manifests(audited: dict) -> dict:
    """Store the audited build's manifest under <output_root>/manifests and rebuild its index.json."""
    index_root = ops.manifests_dir(audited["output_root"])
    index = run(ops.regenerate_argv(audited["cli"], index_root, [audited["build_dir"]])).json()
    log.info("manifest index %s/index.json: %d build(s)", index_root, len(index.get("builds", [])))
    return {**audited, "manifests": index_root}


@task(retries=0)
def publish(indexed: dict) -> dict:
    """Atomically point <output_root>/latest(.json) at the audited build."""
    context = get_current_context()
    try:
        record = ops.publish(
            indexed["output_root"], indexed["build_dir"],
            expected_manifest_sha256=indexed["manifest_sha256"],
            record={"logical_date": indexed["date"], "dag_id": DAG_ID, "run_id": context["run_id"],
                    "name": indexed["name"], "config_hash": indexed["config_hash"],
                    "totals": indexed["totals"], "audit": indexed["audit"]},
        )
    except ops.PublishError as exc:
        raise AirflowFailException(str(exc)) from None
    log.info("published %s as %s/latest", record["build"], indexed["output_root"])
    return record


with DAG(
    dag_id=DAG_ID,
    description="Weekly Lemur corpus build: validate, build, audit, index the manifests, publish latest",
    schedule=SCHEDULE,
    doc_md=__doc__,
    **ops.DAG_SETTINGS,
    params={
        "config": Param(None, type=["null", "string"],
                        description="Build config (YAML) path; null builds the embedded default"),
        "runner": Param("DirectRunner", type="string", minLength=1,
                        description="Beam runner: DirectRunner, DaskRunner, DataflowRunner, FlinkRunner, ..."),
        "beam_options": Param([], type="array", items={"type": "string"},
                              description="More Beam pipeline options, e.g. --direct_num_workers=2"),
        "output_root": Param(ops.DEFAULT_OUTPUT_ROOT, type="string", minLength=1,
                             description="Local or mounted folder holding builds/, manifests/ and latest"),
        "incremental": Param(True, type="boolean",
                             description="Dedup against earlier builds (true) or rebuild in full (false)"),
        "dedup_against": Param([], type="array", items={"type": "string"},
                               description="Builds or merged dedup indexes to dedup against; empty: the last "
                               "published build"),
    },
) as dag:
    publish(regenerate_manifests(audit(build(validate()))))
