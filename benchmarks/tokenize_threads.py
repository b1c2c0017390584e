"""Workers that tokenize on their own thread against workers that split each batch over a thread pool.

    .venv/bin/python benchmarks/tokenize_threads.py [--docs 20000] [--runner mp] [--workers 2] [--repeat 3]

`tokenizers` splits every `encode_batch` over a rayon pool of one thread per core unless
`TOKENIZERS_PARALLELISM` is off. A build's workers are one per core already, so that pool puts N x N
threads on N cores. `TokenizeFn.setup` turns it off (`lemur_corpus.tokenizer.encode_on_calling_thread`)
unless the environment sets it, so that tokenization runs on the calling thread like every other stage
and the profile can time it by that thread's CPU. This benchmark checks what that costs or saves in
time.

The same build (`benchmarks/scale.py`'s corpus and config: real code and web text, a third
near-copies, seeded) runs --repeat times each way, alternating, each in a fresh process:

- pool: `TOKENIZERS_PARALLELISM=true` in the environment, so every worker's batches go to the pool
  (what the build did before);
- one thread: the variable unset, the build's default.

It prints each run's wall time and CPU (driver and workers), the medians, and the ratio of the
medians (pool over one thread; above 1: the default is faster). Both ways must write the same
documents and tokens (the tests check the bytes). The machine's cores may be shared with other
work, so the runs alternate and the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, positive_int  # noqa: E402
from benchmarks.scale import DOCS_PER_FILE, build_config, files_per_kind, make_corpus, measure  # noqa: E402

VARIABLE = "TOKENIZERS_PARALLELISM"
WAYS = {"pool": "true", "one thread": None}
"""Each way's value of the variable in the build's environment (None: unset, the default)."""


def run_once(config_file: Path, value: str | None, runner: str, workers: int) -> dict:
    """One build in a fresh process with the variable set to `value` (or unset)."""
    saved = os.environ.pop(VARIABLE, None)
    try:
        if value is not None:
            os.environ[VARIABLE] = value
        return measure(config_file, runner, workers)
    finally:
        os.environ.pop(VARIABLE, None)
        if saved is not None:
            os.environ[VARIABLE] = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--docs", type=positive_int, default=20_000)
    parser.add_argument("--runner", choices=("mp", "dask", "dask-cluster"), default="mp",
                        help="mp: DirectRunner multi_processing; dask: DaskRunner on a LocalCluster; "
                             "dask-cluster: a real scheduler and --workers worker processes")
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--repeat", type=positive_int, default=3)
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args()
    data = Path(args.data)
    if not data.exists():
        raise SystemExit(f"real sample data not found at {data} (pass --data or set LEMUR_SHARED_DATA)")
    runs: dict[str, list[dict]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.monotonic()
        inputs = make_corpus(folder, args.docs, files_per_kind(args.docs, DOCS_PER_FILE), 0.3, args.seed, data)
        config_file = folder / "config.json"
        # every document tokenized: the tokenizer's threads are what this measures
        config_file.write_text(json.dumps(build_config(inputs, args.docs, tokenize="all")))
        print(f"{args.docs:,} documents generated in {time.monotonic() - started:.0f} s; runner {args.runner}, "
              f"{args.workers} workers, {args.repeat} runs each way, alternating")
        for k in range(args.repeat):
            for way, value in WAYS.items():
                r = run_once(config_file, value, args.runner, args.workers)
                runs[way].append(r)
                print(f"  run {k + 1} {way:<10}: wall {r['wall_s']:6.1f} s, CPU {r['cpu_s']:6.1f} s, "
                      f"{r['docs_out']:,} documents and {r['tokens_out']:,} tokens out")
    outputs = {(r["docs_out"], r["tokens_out"]) for way in WAYS for r in runs[way]}
    if len(outputs) != 1:
        raise SystemExit(f"the builds wrote different outputs (documents, tokens): {sorted(outputs)}")
    wall = {way: statistics.median(r["wall_s"] for r in runs[way]) for way in WAYS}
    cpu = {way: statistics.median(r["cpu_s"] for r in runs[way]) for way in WAYS}
    mb = runs["one thread"][0]["bytes_in"] / 1e6
    for way in WAYS:
        print(f"{way:<10} median wall {wall[way]:6.1f} s ({mb / wall[way] / args.workers:.3f} MB/s per worker), "
              f"CPU {cpu[way]:6.1f} s")
    print(f"pool / one thread: wall x{wall['pool'] / wall['one thread']:.2f}, "
          f"CPU x{cpu['pool'] / cpu['one thread']:.2f} (the same documents and tokens out)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
