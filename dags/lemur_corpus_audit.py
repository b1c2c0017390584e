"""lemur_corpus_audit: the daily re-audit of the published build; it fails loudly on drift.

    locate_published ─▶ reaudit

`locate_published` reads `<output_root>/latest.json` (written by lemur_corpus_build) and checks that the
`latest` link names the same build and that its manifest is byte-for-byte the one that was published.
`reaudit` runs `corpus audit` on it: every shard is re-read and its tokens, documents, sha256 and
weights are compared with the manifest and the mixture targets. Any difference fails the run with the
full list of what drifted, and neither task is retried: drift is not transient. With nothing published
yet (or while a rebuild of the published date is running) the run is skipped, not failed.
"""

from __future__ import annotations

import logging

from airflow.sdk import DAG, Param, Variable, task

import lemur_corpus_ops as ops

try:  # Airflow >= 3.1; earlier 3.x releases export them from airflow.exceptions
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
except ImportError:  # pragma: no cover
    from airflow.exceptions import AirflowFailException, AirflowSkipException

log = logging.getLogger("lemur_corpus")

DAG_ID = "lemur_corpus_audit"
SCHEDULE = "@daily"


@task(retries=0)
def locate_published(params: dict | None = None) -> dict:
    """The published build, after checking the pointer, the link and the manifest agree."""
    params = params or {}
    try:
        root = ops.check_output_root(params["output_root"])
        record = ops.read_published(root)
    except (ValueError, ops.PublishError) as exc:
        raise AirflowFailException(str(exc)) from None
    if record is None:
        raise AirflowSkipException(f"nothing is published under {root} yet ({ops.POINTER_NAME} is absent)")
    problems = ops.check_published(root, record)
    if problems:
        raise AirflowFailException("DRIFT in the published build:\n  " + "\n  ".join(problems))
    build = ops.published_build(root)
    log.info("published build: %s (logical date %s, run %s, published %s)", build, record.get("logical_date"),
             record.get("run_id"), record.get("published_at"))
    return {"build_dir": build, "record": record}


@task(retries=0)
def reaudit(published: dict) -> dict:
    """`corpus audit` of the published build; any mismatch fails the run, listing every one."""
    cli = Variable.get(ops.CLI_VARIABLE, default=ops.DEFAULT_CLI)
    try:
        result = ops.run_cli(ops.audit_argv(cli, published["build_dir"]), log).json()
    except ops.CliFailed as exc:
        raise AirflowFailException(
            f"DRIFT: the published build {published['build_dir']} no longer passes its audit: "
            f"{ops.audit_failure(exc)}") from None
    log.info("published build %s still passes its audit: %s tokens, %s documents", published["build_dir"],
             result.get("total_tokens"), result.get("total_documents"))
    for folder in ops.variant_dirs(published["build_dir"]):  # its variants are published with it
        try:
            ops.run_cli(ops.audit_argv(cli, folder), log)
        except ops.CliFailed as exc:
            raise AirflowFailException(f"DRIFT: the published variant {folder} no longer passes its audit: "
                                       f"{ops.audit_failure(exc)}") from None
    return {"build_dir": published["build_dir"], "ok": result.get("ok"), "total_tokens": result.get("total_tokens")}


with DAG(
    dag_id=DAG_ID,
    description="Daily re-audit of the published Lemur corpus build; fails on any drift",
    schedule=SCHEDULE,
    doc_md=__doc__,
    **ops.DAG_SETTINGS,
    params={
        "output_root": Param(ops.DEFAULT_OUTPUT_ROOT, type="string", minLength=1,
                             description="The output root lemur_corpus_build publishes to"),
    },
) as dag:
    reaudit(locate_published())
