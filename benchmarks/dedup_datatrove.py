"""Near-duplicate dedup against datatrove: the same files, the same worker processes, wall time.

    .venv/bin/python benchmarks/dedup_datatrove.py [--docs 5000] [--workers 2] [--repeat 1]
    (datatrove runs in .venv-datatrove, as `make bench-datatrove` sets it up: benchmarks/compare_datatrove.py)

Input: the same as benchmarks/e2e_datatrove.py's (its `make_input`): --docs English documents of real
prose from ../shared/data/web, a third of them edited near-copies of recent ones, dealt into --files
`.jsonl.zst` files (`id`, `text`).

datatrove (in its own virtualenv, this file run with `--datatrove`), the 4 stages of its MinHash
example and nothing else (no filters, no tokenizer), `LocalPipelineExecutor` with
min(--workers, tasks) processes:

1. JsonlReader (the input files, zstd) -> MinhashDedupSignature, one task per file;
2. MinhashDedupBuckets, one task per bucket; 3. MinhashDedupCluster, 1 task;
4. JsonlReader (the input files) -> MinhashDedupFilter -> JsonlWriter (the kept documents, uncompressed),
   one task per file.

MinHash: 256 hashes (16 buckets x 16 hashes; a Jaccard threshold near 0.84), 5-word shingles, 64-bit.
Documents kept: the lines the JsonlWriter wrote.

Ours: `corpus dedup --kind text --threshold 0.8` of the same files: exact dedup (content hash), then
MinHash near-dedup (256 permutations, 5-word shingles: the config's defaults; its own LSH bands for the
0.8 threshold, verified pairs, connected components), kept records written to kept-*.jsonl.zst with
clusters.jsonl, the dedup index and summary.json; DirectRunner multi_processing with --workers
workers. Documents kept: summary.json's `kept`.

Each side runs in a fresh process; the time is that process's wall time, start-up included. The
ratio is datatrove's time over ours. The machine's cores may be shared: the two runs are back to
back, so the ratio is more telling than either time; with `--repeat N` the pair runs N times and the
ratio is of the two sides' median times (`e2e_datatrove.repeated`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
THRESHOLD = 0.8


# ---------------------------------------------------------------------------------------------
# The datatrove side: runs inside .venv-datatrove, imports only the standard library and datatrove.


def datatrove_dedup(spec_path: str) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    spec = json.loads(Path(spec_path).read_text())
    work, inputs, workers, files = Path(spec["work"]), spec["inputs"], spec["workers"], spec["files"]
    buckets = spec["buckets"]
    config = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=buckets,
                           hashes_per_bucket=spec["hashes_per_bucket"], n_grams=5)
    logs = str(work / "logs")

    def executor(name: str, pipeline: list[Any], tasks: int) -> LocalPipelineExecutor:
        return LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks),
                                     logging_dir=f"{logs}/{name}")

    executor("1-signatures", [
        JsonlReader(inputs, glob_pattern="*.jsonl.zst", compression="zstd"),
        MinhashDedupSignature(output_folder=str(work / "signatures"), config=config),
    ], files).run()
    executor("2-buckets", [MinhashDedupBuckets(input_folder=str(work / "signatures"),
                                               output_folder=str(work / "buckets"), config=config)], buckets).run()
    executor("3-cluster", [MinhashDedupCluster(input_folder=str(work / "buckets"),
                                               output_folder=str(work / "remove_ids"), config=config)], 1).run()
    executor("4-filter", [
        JsonlReader(inputs, glob_pattern="*.jsonl.zst", compression="zstd"),
        MinhashDedupFilter(input_folder=str(work / "remove_ids")),
        JsonlWriter(str(work / "output"), compression=None),
    ], files).run()
    kept = 0
    for path in (work / "output").rglob("*.jsonl"):
        with path.open("rb") as f:
            kept += sum(1 for line in f if line.strip())
    Path(spec["result"]).write_text(json.dumps({"kept": kept}))


# ---------------------------------------------------------------------------------------------
# Our side and the comparison (our .venv).


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sys.path.insert(0, str(ROOT))
    from benchmarks.e2e_datatrove import add_input_arguments

    add_input_arguments(parser)
    args = parser.parse_args()
    if args.datatrove:
        datatrove_dedup(args.datatrove)
        return 0

    from benchmarks.e2e_datatrove import (
        BUCKETS,
        DATATROVE_PYTHON,
        HASHES_PER_BUCKET,
        checked_data,
        repeated,
        timed,
        write_input,
    )

    data = checked_data(args.data)
    corpus = Path(sys.executable).parent / "corpus"
    if not corpus.exists():
        raise SystemExit(f"{corpus} not found: run this with the project's .venv/bin/python")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_input(folder, args, data)

        def run_ours(run: int) -> float:
            wall, _ = timed([str(corpus), "dedup", "--input", *files, "--kind", "text", "--threshold",
                             str(THRESHOLD), "--out", str(folder / f"ours-{run}"), "--",
                             "--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"])
            return wall

        def run_theirs(run: int) -> float:
            spec = {"work": str(folder / f"dt-{run}"), "inputs": str(folder / "in"), "files": len(files),
                    "workers": args.workers, "buckets": BUCKETS, "hashes_per_bucket": HASHES_PER_BUCKET,
                    "result": str(folder / f"dt-result-{run}.json")}
            (folder / "spec.json").write_text(json.dumps(spec))
            wall, _ = timed([str(DATATROVE_PYTHON), __file__, "--datatrove", str(folder / "spec.json")])
            return wall

        ours_s, theirs_s = repeated(args.repeat, run_ours, run_theirs)
        summary = json.loads((folder / "ours-0" / "summary.json").read_text())
        kept = json.loads((folder / "dt-result-0.json").read_text())["kept"]
    print(f"  ours:       {ours_s:7.1f} s | {summary['kept']:,} of {summary['documents']:,} documents kept "
          f"({summary['exact_removed']:,} exact, {summary['near_removed']:,} near duplicates removed)")
    print(f"  datatrove:  {theirs_s:7.1f} s | {kept:,} of {args.docs:,} documents kept")
    median = f", medians of {args.repeat} runs each" if args.repeat > 1 else ""
    print(f"  datatrove / ours: x{theirs_s / ours_s:.2f} (wall time, same input, {args.workers} workers each{median})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
