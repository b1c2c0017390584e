"""How long the scheduler takes to parse our DAG files, against a bare DAG of the same shape.

Airflow's dag processor re-parses every DAG file every few seconds (`min_file_process_interval`), so a
DAG file must not import heavy modules at the top. Ours import Airflow and a stdlib helper only; the
pipeline (Beam, corpus) runs in child processes of the tasks. This prints, in one run:

- our two files' parse time (median of --repeat parses, each one importing the helper module afresh),
- the baseline: a DAG with the same number of TaskFlow tasks and params that imports nothing else,
- the ratio of the two, and what one parse would cost if the DAG imported the pipeline at the top
  (`import lemur_corpus.pipelines.build` in the pipeline's venv, a fresh interpreter each time).

Run it with the Airflow virtualenv (`make airflow`):

    .venv-airflow/bin/python benchmarks/dag_parse.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
HELPER = "lemur_corpus_ops"

BASELINE = textwrap.dedent('''\
    """A bare DAG shaped like ours: {tasks} TaskFlow tasks in a chain, {params} params, no other import."""
    import pendulum
    from airflow.sdk import DAG, Param, task

    with DAG("baseline_{name}", schedule="@daily", start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
             catchup=False, params={{f"p{{i}}": Param("x", type="string") for i in range({params})}}) as dag:
        previous = None
        for i in range({tasks}):
            @task(task_id=f"t{{i}}")
            def step(value=None):
                return value
            current = step(previous) if previous is not None else step()
            previous = current
    ''')


def parse_seconds(path: Path, bundle: Path) -> float:
    """Wall time of one parse of one file by the DagBag the dag processor uses."""
    from airflow.dag_processing.dagbag import BundleDagBag

    sys.modules.pop(HELPER, None)  # each parse pays for the helper import, as a fresh processor would
    bag = BundleDagBag(dag_folder=str(path), bundle_path=bundle, bundle_name="bench", collect_dags=False)
    started = time.perf_counter()
    found = bag.process_file(str(path))
    seconds = time.perf_counter() - started
    if not found or bag.import_errors:
        raise SystemExit(f"{path}: no DAG parsed ({bag.import_errors})")
    return seconds


def pipeline_import_seconds(python: Path, repeat: int) -> list[float]:
    code = "import time; t = time.perf_counter(); import lemur_corpus.pipelines.build; print(time.perf_counter() - t)"
    return [float(subprocess.run([str(python), "-c", code], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout) for _ in range(repeat)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="parses per file (median reported)")
    parser.add_argument("--pipeline-python", default=str(REPO / ".venv" / "bin" / "python"),
                        help="the pipeline venv's python, for the import-at-the-top comparison")
    args = parser.parse_args()
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

    shapes = {"lemur_corpus_build": (5, 4), "lemur_corpus_audit": (2, 1)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (tasks, params) in shapes.items():
            baseline = Path(tmp) / f"baseline_{name}.py"
            baseline.write_text(BASELINE.format(name=name, tasks=tasks, params=params))
            for _ in range(2):  # warm Airflow's own imports before timing anything
                parse_seconds(baseline, Path(tmp))
                parse_seconds(DAGS / f"{name}.py", DAGS)
            ours, base = [], []
            for _ in range(args.repeat):  # interleaved, so both see the same load on a shared machine
                ours.append(parse_seconds(DAGS / f"{name}.py", DAGS))
                base.append(parse_seconds(baseline, Path(tmp)))
            rows.append((name, statistics.median(ours), statistics.median(base)))

    print(f"DAG file parse time (median of {args.repeat}, BundleDagBag.process_file, warm interpreter)")
    print(f"{'file':<24}{'ours ms':>10}{'baseline ms':>14}{'ratio':>8}")
    for name, ours, base in rows:
        print(f"{name + '.py':<24}{1000 * ours:>10.1f}{1000 * base:>14.1f}{ours / base:>8.2f}")
    python = Path(args.pipeline_python)
    if python.exists():
        beam = statistics.median(pipeline_import_seconds(python, max(3, args.repeat // 5)))
        slowest = max(ours for _, ours, _ in rows)
        print(f"importing the pipeline at the top instead (`import lemur_corpus.pipelines.build`, fresh interpreter): "
              f"{1000 * beam:.0f} ms per parse, {beam / slowest:.0f}x our slowest file")
    else:
        print(f"(no pipeline venv at {python}: the import-at-the-top comparison is skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
