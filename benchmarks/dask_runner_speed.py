"""The DaskRunner's own cost: the whole build on a real Dask cluster, the runner as it is against
the runner with one of its changes undone (or an alternative), alternating runs on the same input.

    .venv/bin/python benchmarks/dask_runner_speed.py [--docs 32000] [--docs-per-file 1000] [--repeat 2]
        [--workers 2] [--dask-shuffle auto|p2p|tasks]
        [--baseline layout|flatten|flatten-shuffle|item-rows|trim|pieces|partitions|subgroups|gc|encode-trim]

The input is `benchmarks/scale.py`'s corpus (real code and English web text, a third near-copies),
one `.jsonl.zst` file per --docs-per-file documents, so the build has one partition per file (up to
`dask_runner.MAX_CREATE_PARTITIONS`). Each run is `scale.py`'s measurement: `run_build` in a fresh
driver process against a fresh `dask scheduler` and --workers `dask worker` processes over TCP
(`benchmarks/dask_cluster.py`).

- now: the runner as it is;
- baseline `layout` (the default): `dask_runner.FUSE_PARDOS` and `dask_runner.P2P_TASKS` off, in the
  driver that builds the graph: every ParDo a task of its own (as in Beam's DaskRunner) instead of
  chains fused into one task per partition (`pipelines/dask_bundles.py`), and each P2P grouping
  through `dask.dataframe` (a table task, aliases, a partition index task, the shuffle, a groups
  task) instead of distributed's shuffle tasks alone (`pipelines/dask_p2p.py`);
- baseline `flatten`: `dask_runner.FLATTEN_BY_PARTITION` off: each `Flatten` through Dask's
  `repartition` of its inputs' concatenation instead of one task per output partition;
- baseline `flatten-shuffle`: `dask_runner.FLATTEN_INTO_SHUFFLE` off: a P2P grouping of a `Flatten`
  (every `CoGroupByKey`: dedup's final join of the documents with the decisions) transfers the
  Flatten's partitions, each waiting for all of its inputs, instead of each input's partitions as
  they are ready (the documents waited in the workers' memory for the whole of dedup's decisions);
- baseline `item-rows`: `dask_runner.P2P_BLOBS` off: a P2P grouping moves a table row per item (its
  key hash, key encoding and pickled item: `dask_p2p.shuffle_frame`) instead of one pickled blob per
  output partition of each input partition (`dask_p2p.partition_blobs`);
- baseline `trim`: `dask_bundles.TRIM_HEAP` off: a worker keeps in its heaps what a chain's task
  freed (glibc's default) instead of handing it back after the task (`worker_memory.trim_heap`);
- baseline `pieces`: `dask_bundles.STREAM_CHAINS` and `dask_p2p.TRANSFER_FROM_UNPACK` off and
  `dask_p2p.ITEMS_PER_PIECE` unbounded: each ParDo of a chain runs on the whole partition in turn,
  every step's output held until the next has read it, a transfer hands its partition over in one
  table, and a grouping that reads a chain run on another grouping's output transfers the chain's
  held results instead of doing that grouping's unpack itself (the runner before the chains
  streamed: dedup's verification pairs, made in the join's unpack tasks, were held whole);
- baseline `subgroups`: `dask_p2p.SUBGROUPS` 1: a P2P grouping's unpack task groups its whole
  output partition at once, every item unpickled while the received table is held too, instead of
  one part of the partition after the other (`dask_p2p.groups_of_blobs`);
- baseline `encode-trim`: `tokenize.TRIM_AFTER_BATCH` off: a worker's heap trimmed only after each
  task, not after each batch the tokenizer encodes (what a task's batches freed stays resident until
  the task ends);
- baseline `gc`: `dask_runner.TUNE_WORKER_GC` off: each worker's cyclic garbage collector at
  CPython's thresholds instead of `worker_memory.GC_THRESHOLDS` for the run (`dask_worker_gc`);
- baseline `partitions`: `dask_runner.MAX_CREATE_PARTITIONS` raised from 64 to 256, so that above
  64 input files each file still gets a partition of its own instead of sharing one (a run with more
  files than 64 shows what more, smaller partitions cost and save; this one is the alternative, not
  a change undone).

Both write the same bytes (`tests/test_runners.py`). Printed for every run: wall time, the CPU of the
workers, the driver and the scheduler together, and the CPU no stage claims (the runner's: the
manifest's per-stage profile subtracted), the workers' garbage collector's seconds
(`DaskCluster.gc_timed`), the largest worker's peak RSS and the peak of the task
results the workers held as Dask accounts them (`DaskCluster.memory_sampled`); then the ratio of the
two sides' median wall and runner CPU. Runs alternate (now, baseline, now, ...) so that the other
load on a shared machine falls on both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import DEFAULT_DATA, positive_int  # noqa: E402

BASELINES = {
    "layout": {"FUSE_PARDOS": False, "P2P_TASKS": False},
    "flatten": {"FLATTEN_BY_PARTITION": False},
    "flatten-shuffle": {"FLATTEN_INTO_SHUFFLE": False},
    "partitions": {"MAX_CREATE_PARTITIONS": 256},
    "item-rows": {"P2P_BLOBS": False},
    "trim": {"TRIM_HEAP": False},
    "pieces": {"STREAM_CHAINS": False, "TRANSFER_FROM_UNPACK": False, "ITEMS_PER_PIECE": 2**62},
    "subgroups": {"SUBGROUPS": 1},
    "gc": {"TUNE_WORKER_GC": False},
    "encode-trim": {"TRIM_AFTER_BATCH": False},
}
"""What each baseline sets in `lemur_corpus.pipelines.dask_runner` (or, for a setting of the chains'
tasks, the P2P groupings or the tokenizer's DoFn, `dask_bundles`, `dask_p2p` or `tokenize`; see the
module docstring)."""


def measure_baseline(config_file: str, runner: str, workers: str, shuffle: str, baseline: str,
                     *address: str) -> dict:
    """`scale.measure_build` with the runner's settings of `baseline` (in this driver: the graph is
    made here)."""
    from benchmarks.scale import measure_build
    from lemur_corpus.pipelines import dask_bundles, dask_p2p, dask_runner, tokenize

    for name, value in BASELINES[baseline].items():
        setattr(next(m for m in (dask_bundles, dask_p2p, dask_runner, tokenize) if hasattr(m, name)), name, value)
    return measure_build(Path(config_file), runner, int(workers), shuffle, *address)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--docs", type=positive_int, default=32_000)
    parser.add_argument("--docs-per-file", type=positive_int, default=1000)
    parser.add_argument("--repeat", type=positive_int, default=2, help="runs of each side")
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--dask-shuffle", choices=("auto", "p2p", "tasks"), default="auto")
    parser.add_argument("--baseline", choices=tuple(BASELINES), default="layout",
                        help="which of the runner's changes the baseline undoes (see above)")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_baseline(*args.measure)))
        return 0
    data = Path(args.data)
    if not data.exists():
        raise SystemExit(f"real sample data not found at {data} (pass --data or set LEMUR_SHARED_DATA)")
    from benchmarks.scale import build_config, files_per_kind, make_corpus, measure

    runs: dict[str, list[dict]] = {"now": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = files_per_kind(args.docs, args.docs_per_file)
        inputs = make_corpus(folder, args.docs, files, 0.3, 2023, data)
        config_file = folder / "config.json"
        config_file.write_text(json.dumps(build_config(inputs, args.docs)))
        print(f"{args.docs:,} documents in {files} files per kind; dask-cluster of {args.workers} workers, "
              f"--dask_shuffle={args.dask_shuffle}; baseline: {args.baseline} {BASELINES[args.baseline]}")
        for run in range(args.repeat):
            for side, script, script_args in (("now", str(Path(__file__).parents[0] / "scale.py"), ()),
                                              ("baseline", __file__, (args.baseline,))):
                r = measure(config_file, "dask-cluster", args.workers, shuffle=args.dask_shuffle, script=script,
                            script_args=script_args)
                r["runner_cpu_s"] = r["cpu_s"] - (r["profile"] or {}).get("cpu_s", 0.0)
                runs[side].append(r)
                collected = sum(g["gc_s"] for g in r["gc_by_worker"].values())
                print(f"  {side:<8} run {run + 1}: wall {r['wall_s']:6.1f} s | CPU {r['cpu_s']:6.1f} s, runner "
                      f"{r['runner_cpu_s']:6.1f} s, garbage collector {collected:5.1f} s (workers) | "
                      f"largest worker {r['worker_rss_mib']:5.0f} MiB, task results "
                      f"held at most {r['dask_memory_mib']['managed']:4.0f} MiB (all workers) | "
                      f"{r['docs_out']:,} docs, {r['tokens_out']:,} tokens out", flush=True)
    now, base = runs["now"], runs["baseline"]
    if {(r["docs_out"], r["tokens_out"]) for r in now} != {(r["docs_out"], r["tokens_out"]) for r in base}:
        raise SystemExit("the two sides wrote different documents or tokens")

    def median(side: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in side)

    what = f"medians of {args.repeat} runs each" if args.repeat > 1 else "one run each"
    print(f"  now / baseline ({what}): wall x{median(now, 'wall_s') / median(base, 'wall_s'):.2f}, "
          f"runner CPU x{median(now, 'runner_cpu_s') / median(base, 'runner_cpu_s'):.2f}, all CPU "
          f"x{median(now, 'cpu_s') / median(base, 'cpu_s'):.2f}, largest worker "
          f"x{median(now, 'worker_rss_mib') / median(base, 'worker_rss_mib'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
