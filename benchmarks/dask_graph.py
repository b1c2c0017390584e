"""The build's Dask graph, counted: tasks by kind at a number of input files, nothing executed.

    .venv/bin/python benchmarks/dask_graph.py [--files 31] [--shuffle auto|p2p|tasks]

On the project's DaskRunner a build's partitions follow its input files (one per file, up to
`MAX_CREATE_PARTITIONS`), and every transform runs once per partition: the graph has a task per
partition per transform, plus each grouping's shuffle, except where the runner fuses a chain of
ParDos into one task per partition (`pipelines/dask_bundles.py`). Dask's scheduler and workers spend
CPU on every task (its state transitions, messages, and moving its result between workers), so the
graph's size is a large part of what the runner costs (`benchmarks/scale.py --runner dask-cluster`
prints the runner's share of the CPU).

A corpus of --files code and --files text files (`benchmarks/scale.py`'s generator, a few documents
each: the graph does not depend on the documents) is built with `--runner=DaskRunner` on a
LocalCluster of 2 workers, up to the moment the graph is handed to the scheduler; the tasks are then
counted by name (hashes and partition numbers removed), and the build stopped. Seven graphs in the
same run: the runner as it is; with every ParDo a task of its own (`dask_runner.FUSE_PARDOS` off, as
in Beam's DaskRunner); with each P2P grouping through `dask.dataframe` instead of written as
distributed's shuffle tasks (`dask_runner.P2P_TASKS` off, `pipelines/dask_p2p.py`); with both off;
with global combines' accumulators shuffled like any `CombinePerKey`'s instead of gathered by a
tree (`dask_runner.gathered_groups`); and with each `Flatten` through Dask's `repartition` instead of
one task per output partition (`dask_runner.FLATTEN_BY_PARTITION` off); and with a P2P grouping of
a `Flatten` transferring the Flatten's partitions instead of each input's
(`dask_runner.FLATTEN_INTO_SHUFFLE` off). Each baseline undoes one
change (or, "both", two); the ratios are the first graph's tasks over each baseline's.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import sys
import tempfile
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import DEFAULT_DATA, positive_int  # noqa: E402

DOCS_PER_FILE = 20


class GraphCounted(Exception):
    """Raised in place of computing the graph, once it is counted."""

    def __init__(self, counts: collections.Counter[str]) -> None:
        super().__init__("graph counted")
        self.counts = counts


def task_kind(key: object) -> str:
    name = str(key[0] if isinstance(key, tuple) else key)
    return re.sub(r"[-_][0-9a-f]{8,}.*$", "", name)


def count_graph(client: object, collections_: list, retries: int | None = None,
                optimize_graph: bool = True) -> None:
    """In place of `distributed.Client.compute`: counts the tasks of the graph the runner submits."""
    from dask.base import collections_to_expr

    graph = dict(collections_to_expr(collections_, optimize_graph=optimize_graph).__dask_graph__())
    raise GraphCounted(collections.Counter(task_kind(key) for key in graph))


def build_graph(config: object, out: str, shuffle: str, gather: bool = True, fuse: bool = True,
                p2p_tasks: bool = True, flatten_by_partition: bool = True,
                flatten_into_shuffle: bool = True) -> collections.Counter[str]:
    import distributed

    from lemur_corpus.pipelines import dask_combine, dask_runner
    from lemur_corpus.pipelines.build import run_build

    with contextlib.ExitStack() as patched:
        patched.enter_context(mock.patch.object(distributed.Client, "compute", count_graph))
        patched.enter_context(mock.patch.object(dask_runner, "FUSE_PARDOS", fuse))
        patched.enter_context(mock.patch.object(dask_runner, "P2P_TASKS", p2p_tasks))
        patched.enter_context(mock.patch.object(dask_runner, "FLATTEN_BY_PARTITION", flatten_by_partition))
        patched.enter_context(mock.patch.object(dask_runner, "FLATTEN_INTO_SHUFFLE", flatten_into_shuffle))
        if not gather:
            patched.enter_context(mock.patch.object(dask_combine, "is_global_combine", lambda applied: False))
        try:
            run_build(config, out, ["--runner=DaskRunner", "--dask_workers=2", f"--dask_shuffle={shuffle}"])
        except GraphCounted as counted:
            return counted.counts
    raise SystemExit("the build ran to the end: the graph was never handed to the scheduler")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=positive_int, default=31, help="input files of each kind (code, text)")
    parser.add_argument("--shuffle", choices=("auto", "p2p", "tasks"), default="auto")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    args = parser.parse_args()
    data = Path(args.data)
    if not data.exists():
        raise SystemExit(f"real sample data not found at {data} (pass --data or set LEMUR_SHARED_DATA)")
    import logging

    from benchmarks.scale import build_config, make_corpus
    from lemur_corpus.config import parse_config

    logging.basicConfig(level=logging.ERROR)
    count = 2 * args.files * DOCS_PER_FILE
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_corpus(Path(tmp), count, args.files, 0.3, 2023, data)
        config = parse_config(build_config(inputs, count))
        graphs = {"now": build_graph(config, f"{tmp}/now", args.shuffle),
                   "ParDos unfused": build_graph(config, f"{tmp}/unfused", args.shuffle, fuse=False),
                   "P2P via dataframe": build_graph(config, f"{tmp}/frames", args.shuffle, p2p_tasks=False),
                   "both": build_graph(config, f"{tmp}/both", args.shuffle, fuse=False, p2p_tasks=False),
                   "combines shuffled": build_graph(config, f"{tmp}/shuffled", args.shuffle, gather=False),
                   "Flatten repartition": build_graph(config, f"{tmp}/repartitioned", args.shuffle,
                                                      flatten_by_partition=False),
                   "Flatten tasks": build_graph(config, f"{tmp}/flatten-tasks", args.shuffle,
                                                flatten_into_shuffle=False)}
    counts = list(graphs.values())
    print(f"{2 * args.files} input files, --dask_shuffle={args.shuffle}: tasks by kind")
    print(f"  {'':<28}" + "".join(f" {name:>19}" for name in graphs))
    for kind in sorted(set().union(*counts), key=lambda k: -max(c[k] for c in counts))[:20]:
        print(f"  {kind:<28}" + "".join(f" {c[kind]:>19,}" for c in counts))
    totals = [sum(c.values()) for c in counts]
    print(f"  {'all':<28}" + "".join(f" {total:>19,}" for total in totals))
    now = totals[0]
    ratios = [f"{name}: x{now / total:.2f}" for name, total in zip(graphs, totals, strict=True) if name != "now"]
    print("  now / " + ", now / ".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
