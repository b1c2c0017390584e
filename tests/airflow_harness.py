"""Runs the DAGs for tests/test_dags.py inside the Airflow virtualenv (.venv-airflow), never in .venv.

Airflow and the pipeline pin conflicting packages, so the tests (in .venv) start this script with the
Airflow venv's python, in a temporary AIRFLOW_HOME with a fresh sqlite metadata DB, no scheduler, no
executor and no network. It runs a list of steps in ONE process, because Airflow's first task of a
process builds the in-process execution API (several seconds) and every later task reuses it:

    {"kind": "describe"}                         DagBag of dags/: import errors, graphs, schedules, params
    {"kind": "run", "name", "dag_id", "logical_date", "conf", "env"}
                                                 `dag.test()`: one real DAG run, tasks in this process
    {"kind": "flip_byte", "glob"}                corrupt one byte of the first file matching (drift)

and writes one JSON result per step to --results. The output of each run (task logs, the CLI's
progress and errors) goes to `<work>/<name>.log`, so a test can check the message a task failed with.

    .venv-airflow/bin/python tests/airflow_harness.py --dags dags --steps steps.json --results out.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import glob
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

HEAVY_MODULES = ("apache_beam", "corpus", "pipelines", "filters", "pyarrow", "torch", "tokenizers", "numpy")
"""What a DAG file must not import at parse time (the scheduler parses every file every few seconds)."""


@contextlib.contextmanager
def output_to(path: str) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors, so child processes too) to `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as target:
        os.dup2(target.fileno(), 1)
        os.dup2(target.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextlib.contextmanager
def environment(extra: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _seconds(value: Any) -> float | None:
    return value.total_seconds() if isinstance(value, dt.timedelta) else None


def describe_task(task: Any) -> dict[str, Any]:
    return {
        "upstream": sorted(task.upstream_task_ids),
        "downstream": sorted(task.downstream_task_ids),
        "retries": task.retries,
        "retry_delay_s": _seconds(task.retry_delay),
        "retry_exponential_backoff": bool(task.retry_exponential_backoff),
        "max_retry_delay_s": _seconds(task.max_retry_delay),
        "execution_timeout_s": _seconds(task.execution_timeout),
        "trigger_rule": str(getattr(task.trigger_rule, "value", task.trigger_rule)),
    }


def describe_dag(dag: Any) -> dict[str, Any]:
    params = {}
    for name in dag.params:
        param = dag.params.get_param(name)
        params[name] = {"default": param.value if param.has_value else None, "schema": param.schema,
                        "description": param.description}
    return {
        "schedule": dag.schedule if isinstance(dag.schedule, str) else repr(dag.schedule),
        "timetable": type(dag.timetable).__name__,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "tags": sorted(dag.tags),
        "params": params,
        "tasks": {t.task_id: describe_task(t) for t in dag.tasks},
    }


def load_dagbag(dags: str) -> tuple[Any, dict[str, Any]]:
    from pathlib import Path

    from airflow.dag_processing.dagbag import BundleDagBag

    before = set(sys.modules)
    started = time.perf_counter()
    # What the dag processor and the workers use: the bundle's folder is on sys.path, so the DAG files
    # import their helper module (dags/lemur_corpus_ops.py) as they do in a deployment.
    bag = BundleDagBag(dag_folder=dags, bundle_path=Path(dags), bundle_name="dags-folder")
    seconds = time.perf_counter() - started
    loaded = {m.split(".")[0] for m in set(sys.modules) - before}
    return bag, {
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "dag_ids": sorted(bag.dag_ids),
        "files": sorted(os.path.basename(s.file) for s in bag.dagbag_stats),
        "parse_seconds": seconds,
        "heavy_modules_loaded": sorted(m for m in loaded if m in HEAVY_MODULES),
        "dags": {dag_id: describe_dag(bag.get_dag(dag_id)) for dag_id in sorted(bag.dag_ids)},
    }


def run_dag(bag: Any, step: dict[str, Any], work: str) -> dict[str, Any]:
    import pendulum

    dag = bag.get_dag(step["dag_id"])
    log_path = os.path.join(work, f"{step['name']}.log")
    started = time.perf_counter()
    with environment(step.get("env", {})), output_to(log_path):
        run = dag.test(logical_date=pendulum.parse(step["logical_date"]), run_conf=step.get("conf") or {})
    tasks = {
        ti.task_id: {"state": str(getattr(ti.state, "value", ti.state)), "try_number": ti.try_number}
        for ti in run.get_task_instances()
    }
    return {"state": str(getattr(run.state, "value", run.state)), "run_id": run.run_id, "tasks": tasks,
            "log": log_path, "seconds": time.perf_counter() - started}


def flip_byte(step: dict[str, Any]) -> dict[str, Any]:
    matches = sorted(glob.glob(step["glob"], recursive=True))
    if not matches:
        raise SystemExit(f"flip_byte: nothing matches {step['glob']}")
    path = matches[0]
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    return {"path": path}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", required=True, help="the DAG folder")
    parser.add_argument("--steps", required=True, help="JSON list of steps")
    parser.add_argument("--results", required=True, help="where to write the JSON results")
    args = parser.parse_args()
    work = os.path.dirname(os.path.abspath(args.results))
    with open(args.steps, encoding="utf-8") as handle:
        steps = json.load(handle)

    from airflow.utils import db

    started = time.perf_counter()
    with output_to(os.path.join(work, "db-migrate.log")):
        db.initdb()
    results: dict[str, Any] = {"db_migrate_seconds": time.perf_counter() - started, "steps": {}}
    bag = None
    for step in steps:
        if step["kind"] == "describe":
            bag, results["steps"][step["name"]] = load_dagbag(args.dags)
        elif step["kind"] == "run":
            if bag is None:
                bag, _ = load_dagbag(args.dags)
            results["steps"][step["name"]] = run_dag(bag, step, work)
        elif step["kind"] == "flip_byte":
            results["steps"][step["name"]] = flip_byte(step)
        else:
            raise SystemExit(f"unknown step kind {step['kind']!r}")
        with open(args.results, "w", encoding="utf-8") as handle:  # partial results survive a crash
            json.dump(results, handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
