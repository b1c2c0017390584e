"""Near-dedup at scale: documents made from the real web pages of ../shared/data with seeded edits.

A synthetic corpus of N text documents is written to a temporary .jsonl.zst: a new document is 4-12
real paragraphs drawn from the pages (so it is unique), and with probability --dup-rate a document is
instead an edited copy of one of the last 2,000 documents (typos in up to 1% of words, a dropped or
swapped paragraph, changed numbers, an appended paragraph from another page, a truncated end): the
edits of the labelled web_neardup set, at strengths that put about 60% of the copies at Jaccard
>= 0.8. Each size is then measured in fresh processes:

  sign      the signature and band-key stage alone, streaming the file: documents/s per core and peak
            RSS (it must stay flat as N grows: a worker holds one document at a time);
  pipeline  `corpus dedup` (the build's Beam transforms) on the in-process DirectRunner: wall time,
            documents/s per core (CPU time), peak RSS, and the dedup statistics. The DirectRunner
            keeps every PCollection in memory, so this RSS includes the runner's copy of the data
            and grows with N; distributed runners spill and shuffle instead. With `--runner
            dask-cluster` the same command runs on a real Dask cluster (benchmarks/dask_cluster.py: a
            scheduler and --workers worker processes over TCP, fresh for each size) with the corpus
            dealt into one file per `--docs-per-file` documents (partitions follow files): then the
            driver's peak RSS and every worker's (from /proc) are printed, and what must stay flat
            as N grows is the workers' (issue 13: within +20% from 250k to 1M documents).
            `--worker-memory-limit` gives each worker a limit (`dask worker --memory-limit`):
            over 60% of it a worker spills task results to its local directory (it does not
            pause: `benchmarks/dask_cluster.py`'s WORKER_ENV). A second line gives the seconds the
            cluster's tasks spent by kind of task (Beam bundles, each step of Dask's tasks
            shuffles) in compute and in waiting for transfers, where the time goes as N grows;
            then the task results held at the fullest moment by the stage that made them (the
            scheduler polled every 2 s), and each worker's highest sampled memory with the stage it
            ran then, the task results it held and its P2P shuffle buffers.

Baseline in the same run: datasketch's `MinHash.bulk` (same shingles, permutations, hash) streamed
over the same file, for the sign stage.

    .venv/bin/python benchmarks/dedup_scale.py [--docs 50000 200000] [--stages sign pipeline]
        [--runner direct|dask-cluster] [--workers 2] [--docs-per-file 2500] [--worker-memory-limit 0]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import zstandard

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, memory_limit, positive_int, read_jsonl  # noqa: E402

RECENT = 2000
"""Edited copies are made of one of this many latest documents (bounded memory while generating)."""


def read_pages(data: Path) -> list[str]:
    return [r["text"] for r in read_jsonl(data / "web" / "trafilatura_pages.main.jsonl.zst")]


def edit(text: str, rng: random.Random, paragraphs: list[str]) -> str:
    """One realistic near-duplicate of `text` (the edit kinds of web_neardup, seeded)."""
    parts = [p for p in text.split("\n") if p.strip()]
    if len(parts) > 3 and rng.random() < 0.25:
        del parts[rng.randrange(len(parts))]
    if len(parts) > 3 and rng.random() < 0.3:
        i = rng.randrange(len(parts) - 1)
        parts[i], parts[i + 1] = parts[i + 1], parts[i]
    if rng.random() < 0.15:
        parts = parts[: max(1, int(len(parts) * 0.9))]
    if rng.random() < 0.3:
        parts.append(rng.choice(paragraphs))
    words = "\n".join(parts).split(" ")
    rate = rng.uniform(0.0, 0.01)
    for i in range(len(words)):
        if len(words[i]) > 3 and rng.random() < rate:
            j = rng.randrange(len(words[i]) - 1)
            w = words[i]
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    out = " ".join(words)
    return re.sub(r"\d+", lambda m: str(int(m.group()) + 1), out) if rng.random() < 0.3 else out


def generate(path: Path, count: int, dup_rate: float, seed: int, pages: list[str]) -> None:
    rng = random.Random(seed)
    paragraphs = [p for page in pages for p in page.split("\n") if len(p) > 60]
    recent: deque[str] = deque(maxlen=RECENT)
    with zstandard.ZstdCompressor(level=1).stream_writer(path.open("wb")) as out:
        for i in range(count):
            if recent and rng.random() < dup_rate:
                text = edit(rng.choice(recent), rng, paragraphs)
            else:
                text = "\n".join(rng.sample(paragraphs, rng.randint(4, 12)))
            recent.append(text)
            out.write((json.dumps({"id": f"doc{i:08d}", "text": text}) + "\n").encode("utf-8"))


def iter_texts(path: Path) -> Iterator[str]:
    with zstandard.ZstdDecompressor().stream_reader(path.open("rb")) as reader:
        for line in io.TextIOWrapper(reader, encoding="utf-8"):
            yield json.loads(line)["text"]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stage_sign(path: Path, baseline: bool) -> dict:
    from lemur_corpus.dedup.config import DedupConfig
    from lemur_corpus.dedup.lsh import band_keys, lsh_params
    from lemur_corpus.dedup.minhash import HASH_FUNCTIONS, MinHasher
    from lemur_corpus.dedup.shingles import shingles

    near = DedupConfig().text
    bands, rows = lsh_params(near)
    hasher = MinHasher(near.num_perm, near.seed, near.hash)
    hasher.signature("warm up", near.tokens, near.ngram, near.max_shingles)
    started, cpu = time.monotonic(), cpu_seconds()
    docs = 0
    if baseline:
        from datasketch import MinHash

        sets = (shingles(t, near.tokens, near.ngram, near.max_shingles) for t in iter_texts(path))
        for m in MinHash.generator(sets, num_perm=near.num_perm, seed=near.seed, hashfunc=HASH_FUNCTIONS[near.hash]):
            band_keys(m.hashvalues, bands, rows)
            docs += 1
    else:
        for text in iter_texts(path):
            signature, _ = hasher.signature(text, near.tokens, near.ngram, near.max_shingles)
            if signature is not None:
                band_keys(signature, bands, rows)
            docs += 1
    return {"docs": docs, "wall_s": time.monotonic() - started, "cpu_s": cpu_seconds() - cpu,
            "peak_rss_mib": peak_rss_mib()}


def stage_pipeline(paths: list[Path], beam_args: list[str]) -> dict:
    from lemur_corpus.dedup.config import DedupConfig
    from lemur_corpus.pipelines.dedup_files import run_dedup_files

    started, cpu = time.monotonic(), cpu_seconds()
    with tempfile.TemporaryDirectory() as out:
        summary = run_dedup_files([str(p) for p in paths], "text", out, DedupConfig(), shards=4, beam_args=beam_args)
    near = summary["dedup"]["near"]["text"]
    keep = ("documents", "candidate_pairs", "verified_edges", "clusters", "removed", "max_bucket_size",
            "component_nodes", "components", "max_component_size", "component_rounds", "unconverged_nodes",
            "pairs_not_compared", "duplicate_rate")
    return {"docs": summary["documents"], "wall_s": time.monotonic() - started, "cpu_s": cpu_seconds() - cpu,
            "peak_rss_mib": peak_rss_mib(), "exact_removed": summary["exact_removed"],
            **{k: near[k] for k in keep}}


def measure(stage: str, paths: list[Path], address: str = "") -> dict:
    """Runs one stage in a fresh process, so its peak RSS is its own (`address`: a Dask scheduler's)."""
    command = [sys.executable, __file__, "--measure", stage, json.dumps([str(p) for p in paths])]
    result = subprocess.run([*command, *([address] if address else [])], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"the {stage} stage failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_on_cluster(paths: list[Path], workers: int, memory_limit: str = "0") -> dict:
    """The pipeline stage against a fresh real Dask cluster (each worker with `memory_limit`, "0":
    none); its workers' CPU and peak RSS from /proc (they are not the measuring process's children)."""
    from benchmarks.dask_cluster import DaskCluster
    from benchmarks.dask_cluster import cpu_seconds as process_cpu

    with DaskCluster(workers=workers, memory_limit=memory_limit) as cluster:
        before = cluster.worker_stats()
        scheduler, scheduler_cpu = cluster.processes[0].pid, process_cpu(cluster.processes[0].pid)
        with cluster.held_sampled() as held, cluster.rss_by_running_stage() as running_at_peak:
            r = measure("pipeline", paths, cluster.address)
        after = cluster.worker_stats()
        scheduler_cpu = process_cpu(scheduler) - scheduler_cpu
        r["task_seconds"] = cluster.task_seconds()
    r["driver_rss_mib"] = r["peak_rss_mib"]
    r["running_at_peak"] = running_at_peak
    r["held_by_stage"] = held
    r["worker_rss_each_mib"] = [a["peak_rss_mib"] for a in after]
    r["worker_cpu_s"] = [a["cpu_s"] - b["cpu_s"] for a, b in zip(after, before, strict=True)]
    r["peak_rss_mib"] = max(r["worker_rss_each_mib"])
    r["cpu_s"] += sum(r["worker_cpu_s"]) + scheduler_cpu
    return r


def task_seconds_line(seconds: dict[str, dict[str, float]], top: int = 8) -> str:
    """The kinds of task that took longest (compute and transfer, the rest summed), one line."""
    ranked = sorted(seconds.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:top]
    return "; ".join(
        f"{name} {times.get('compute', 0):.1f} compute + {times.get('transfer', 0):.1f} transfer"
        + (f" + {rest:.1f} other" if (rest := sum(times.values()) - times.get('compute', 0)
                                     - times.get('transfer', 0)) >= 0.05 else "")
        for name, times in ranked)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--docs", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--stages", nargs="+", default=["sign", "pipeline"], choices=["sign", "pipeline"])
    parser.add_argument("--dup-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--runner", choices=("direct", "dask-cluster"), default="direct",
                        help="where the pipeline stage runs (the sign stages always run in one process)")
    parser.add_argument("--workers", type=positive_int, default=2, help="dask-cluster: worker processes")
    parser.add_argument("--docs-per-file", type=positive_int, default=2_500,
                        help="dask-cluster: documents per input file")
    parser.add_argument("--worker-memory-limit", default="0", type=memory_limit,
                        help="dask-cluster: each worker's memory limit (e.g. 1GiB; over 60%% of it a worker spills "
                             "task results to disk; default 0: none)")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        stage, paths_json, *address = args.measure
        paths = [Path(p) for p in json.loads(paths_json)]
        beam_args = ["--runner=DaskRunner", f"--dask_client_address={address[0]}"] if address else []
        result = {"sign": lambda: stage_sign(paths[0], False), "baseline": lambda: stage_sign(paths[0], True),
                  "pipeline": lambda: stage_pipeline(paths, beam_args)}[stage]()
        print(json.dumps(result))
        return 0
    pages = read_pages(Path(args.data))
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.docs:
            path = Path(tmp) / f"docs-{count}.jsonl.zst"
            started = time.monotonic()
            generate(path, count, args.dup_rate, args.seed, pages)
            print(f"\n{count:,} documents generated ({path.stat().st_size / 2**20:.0f} MiB zstd, "
                  f"{time.monotonic() - started:.0f} s); dup rate {args.dup_rate}, seed {args.seed}")
            wanted = set(args.stages) | ({"baseline"} if "sign" in args.stages else set())
            stages = [s for s in ("sign", "baseline", "pipeline") if s in wanted]
            files = [path]
            if args.runner == "dask-cluster" and "pipeline" in stages:
                from benchmarks.scale import split_text

                files = [Path(tmp) / f"docs-{count}-{k:03d}.jsonl.zst"
                         for k in range(max(1, round(count / args.docs_per_file)))]
                split_text(path, files)
            for stage in stages:
                if stage == "pipeline" and args.runner == "dask-cluster":
                    r = measure_on_cluster(files, args.workers, args.worker_memory_limit)
                else:
                    r = measure(stage, [path])
                rows.setdefault(stage, []).append(r)
                name = {"sign": "ours: sign+band keys", "baseline": "datasketch MinHash + band keys",
                        "pipeline": "ours: corpus dedup (Beam)"}[stage]
                extra = ""
                if stage == "pipeline":
                    extra = (f"; {r['candidate_pairs']:,} candidate pairs, {r['verified_edges']:,} verified edges, "
                             f"{r['clusters']:,} clusters, {r['removed']:,} near + "
                             f"{r['exact_removed']:,} exact removed "
                             f"(rate {r['duplicate_rate']:.3f}), max bucket {r['max_bucket_size']} "
                             f"({r['pairs_not_compared']:,} pairs outside the bucket window), "
                             f"{r['components']:,} components of {r['component_nodes']:,} documents "
                             f"(largest {r['max_component_size']:,}), settled in {r['component_rounds']} rounds "
                             f"({r['unconverged_nodes']:,} unsettled)")
                if r.get("worker_rss_each_mib"):
                    name = f"ours: corpus dedup on dask x{args.workers}"
                    extra += (f"; driver peak RSS {r['driver_rss_mib']:.0f} MiB, each worker: " + ", ".join(
                        f"{c:.0f} CPU-s, peak {m:.0f} MiB"
                        for c, m in zip(r["worker_cpu_s"], r["worker_rss_each_mib"], strict=True)))
                print(f"  {name:32s} wall {r['wall_s']:7.1f} s  {r['docs'] / r['cpu_s']:7.0f} docs/s/core  "
                      f"peak RSS {r['peak_rss_mib']:7.0f} MiB{extra}")
                if r.get("task_seconds"):
                    print("    Dask task seconds by kind: " + task_seconds_line(r["task_seconds"]))
                if (held := r.get("held_by_stage")) and held["at_peak"]:
                    print(f"    task results held at the fullest poll ({held['peak_mib']:.0f} MiB, all workers), by "
                          "the stage that made them: " + "; ".join(
                              f"{stage} {mib:.0f} MiB" for stage, mib in list(held["at_peak"].items())[:8]))
                for worker, running in r.get("running_at_peak", {}).items():
                    print(f"    {worker} peaked at {running['peak_mib']:.0f} MiB (sampled every 20 ms) while running "
                          f"{running['stage']}, holding {running['held_mib'].get(running['stage'], 0):.0f} MiB "
                          f"of task results and {running['p2p_buffered_mib'].get(running['stage'], 0):.0f} MiB "
                          "in P2P shuffle buffers")
            if "sign" in rows and "baseline" in rows:
                s, b = rows["sign"][-1], rows["baseline"][-1]
                print(f"  sign stage ratio ours/datasketch: {b['cpu_s'] / s['cpu_s']:.2f}x docs/s/core")
    if len(args.docs) > 1:
        first, last = args.docs[0], args.docs[-1]
        for stage, results in rows.items():
            who = "the largest worker's" if results[0].get("worker_rss_each_mib") else ""
            print(f"peak RSS {stage} {who}: {results[0]['peak_rss_mib']:.0f} MiB at {first:,} docs -> "
                  f"{results[-1]['peak_rss_mib']:.0f} MiB at {last:,} docs "
                  f"(x{results[-1]['peak_rss_mib'] / results[0]['peak_rss_mib']:.2f} "
                  f"for x{last / first:.1f} documents)")
            if results[0].get("driver_rss_mib"):
                print(f"peak RSS {stage}, driver: {results[0]['driver_rss_mib']:.0f} -> "
                      f"{results[-1]['driver_rss_mib']:.0f} MiB "
                      f"(x{results[-1]['driver_rss_mib'] / results[0]['driver_rss_mib']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
