"""The whole build at two sizes: throughput per core, and peak RSS per worker that must not grow with N.

A corpus of N documents is generated from the real documents of ../shared/data, seeded:

- text (30%, dolma layout `id, text`): `benchmarks/dedup_scale.py`'s generator over the English
  pages (the build's language filter keeps English): 4-12 real web paragraphs per document, and with
  probability --dup-rate an edited near-copy of a recent document;
- code (70%, The Stack layout): 2-4 top-level blocks (cut at blank lines outside brackets) of real
  files of one language, keeping the first file's path, language and licenses; with probability
  --dup-rate an edited near-copy (the same `edit`) of a recent code document.

Each kind is written as `.jsonl.zst` files, one per --docs-per-file documents of the corpus (or
--files per kind), as real datasets come sharded into files of about one size. The full build
(`lemur_corpus.pipelines.build.run_build`: read, normalize, filters, exact + MinHash dedup, tokenize, mixture,
shards, manifest) then runs in a fresh process per size and runner. Its mixture is Lemur's Table 8 with a
stated total, --tokens-out-per-doc tokens per input document (`TOKENS_OUT_PER_DOC`), so that both
sizes do the same work per document after the mixture, and its shards are --shard-tokens tokens
(`SHARD_TOKENS`), a size both sizes fill several times. Each run reports:

- throughput: input MB and documents per second per worker (wall time x workers), and per CPU
  second (driver and workers together);
- CPU seconds in all, and the build process's own (the driver), so the runner's share can be placed;
- where the CPU went: the manifest's `run.profile` (pipelines/profile.py), CPU seconds per stage (read,
  normalize, each filter, exact dedup, MinHash, components, tokenize, mix, write) per MB and per
  document of input, and per MB the stage itself saw (a code filter sees only code); and what no
  stage claims (the runner's coders and shuffles, the accounting): the whole run's CPU minus the
  stages' sum;
- near dedup's work per signed document, per kind (the manifest's candidate pairs and verified
  edges over its signed documents): it grows with the corpus where the near-duplicate components do
  (the code generator draws its blocks from a fixed pool of real files, so more documents share
  blocks), and every candidate pair is an exact Jaccard (its payloads travel once per verification
  chunk, a cluster's pairs in few chunks: `pipelines/dedup_near.py`);
- on Dask, what each grouping moved between workers (the manifest's `run.groupings`: items and the
  bytes of the tables they were handed to the shuffle in), the largest at each size and how they
  grew from one size to the other;
- peak RSS per worker: the largest worker process's peak (`getrusage(RUSAGE_CHILDREN)`: the
  multi_processing SDK workers, or the Dask LocalCluster's worker processes; `/proc/<pid>/status`
  VmHWM of each `dask worker` of `--runner dask-cluster`), and the driver's own peak, separately.
  The in-process DirectRunner keeps every PCollection in the driver's memory, so its driver grows
  with N; the multi_processing runner's driver keeps them too, their data in temporary files
  (`pipelines/spilled_buffers.py`; the most those held at once is printed as "on disk"); a
  distributed runner (Dask, Dataflow, Flink, Spark) keeps data on its workers and spills. The workers
  must stay flat.

The baseline, in the same run, is the smaller size: the ratios printed are throughput and worker RSS
at the larger size over the smaller one, against the ratio of documents.

What a worker can hold, by design (and where the bound is stated): one document per stage step; a
shard's members (`shards.target_tokens` tokens, plus their texts with `write_jsonl`); one drop-log
part (about `pipelines/shard.py: DROP_LOG_RECORDS_PER_FILE` records at most); a dedup bucket's ids and a
root's candidates' signatures; the mixture's boundary bin (1/65,536 of a source's documents) and one
65,536-bin histogram per source; a near-duplicate component (the largest, `max_component_size` in the
manifest's dedup statistics, is printed here; components are found by distributed star
contraction, `pipelines/dedup_components.py`, over `component_rounds` rounds).

Runners: `mp` DirectRunner multi_processing; `direct` in-process; `dask` the project's DaskRunner on
a LocalCluster it starts; `dask-cluster` a real cluster (benchmarks/dask_cluster.py): one `dask
scheduler` and --workers `dask worker` processes over TCP, started fresh for each size and stopped
after it, the build reaching them only through `--dask_client_address`; its workers run without
distributed's profiler, as the README advises (`dask_cluster.PROFILER_ENV`). There the report adds
Dask's own account of the workers' memory (task results held, spilled, unmanaged) and which stages
made the task results held at the fullest moment (`DaskCluster.held_sampled`, the scheduler polled
every 2 s), to say what waits in memory between stages, and per worker the highest resident set
sampled while each stage ran (`DaskCluster.rss_by_running_stage`, every 20 ms, with the task
results it held, its P2P buffers and Python's small objects then), and how far each
stage raised it past its highest so far (the allocator keeps what a stage took, so the stages after
a rise sample as high: the rises say which ones took it to its peak), to say which stage's tasks, or
the worker's event loop between them, take it there; and the scheduler's CPU and the cluster's task
seconds by kind of task (`DaskCluster.task_seconds`), which the per-stage profile counts as the
runner's, as it does each worker's garbage collector's seconds (`DaskCluster.gc_timed`).

    .venv/bin/python benchmarks/scale.py [--docs 50000 200000] [--runner mp|dask|dask-cluster|direct] [--workers 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import zstandard

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, memory_limit, non_negative_int, positive_int, read_jsonl  # noqa: E402
from benchmarks.dedup_scale import RECENT, edit, generate, task_seconds_line  # noqa: E402

CODE_SHARE = 0.7
GROUPINGS_SHOWN = 5
NEAR_WORK = ("documents", "candidate_pairs", "verified_edges")
"""The manifest's near-dedup statistics printed per kind: what verification does per document, which
grows with the corpus where its near-duplicate components do (every candidate pair is an exact
Jaccard)."""
MAX_BLOCK_BYTES = 8_000
"""Blocks above this are not used: code documents stay file-sized (a few KB), as in The Stack."""
_OPENERS, _CLOSERS = "([{", ")]}"


def top_level_blocks(text: str) -> list[str]:
    """A file cut at blank lines where no bracket is open and the next line starts at column 0:
    functions, classes and statements that can be recombined into a file that still parses."""
    blocks, current, depth = [], [], 0
    lines = text.split("\n")
    for i, line in enumerate(lines):
        current.append(line)
        depth = max(0, depth + sum(line.count(c) for c in _OPENERS) - sum(line.count(c) for c in _CLOSERS))
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if not line.strip() and depth == 0 and following[:1].strip():
            blocks.append("\n".join(current).strip("\n"))
            current = []
    if "".join(current).strip():
        blocks.append("\n".join(current).strip("\n"))
    return [b for b in blocks if b.strip() and len(b) <= MAX_BLOCK_BYTES]


def code_pool(data: Path) -> dict[str, list[tuple[dict, list[str]]]]:
    """Real code records by language, each with its top-level blocks."""
    pool: dict[str, list[tuple[dict, list[str]]]] = {}
    for record in read_jsonl(data / "code" / "code_sample.jsonl.zst"):
        blocks = top_level_blocks(record["content"])
        if blocks:
            pool.setdefault(record["lang"], []).append((record, blocks))
    return {lang: files for lang, files in sorted(pool.items()) if len(files) >= 2}


def code_record(i: int, text: str, like: dict) -> dict:
    """A Stack record for a generated file: the model file's language, path and licenses."""
    path = like["max_stars_repo_path"]
    stem, dot, ext = path.rpartition(".")
    return {
        "hexsha": hashlib.sha1(f"{i}\x00{text}".encode()).hexdigest(),
        "content": text, "size": len(text.encode("utf-8")), "lang": like["lang"], "ext": like["ext"],
        "max_stars_repo_path": f"{stem}_{i}{dot}{ext}" if dot else f"{path}_{i}",
        "max_stars_repo_name": like["max_stars_repo_name"],
        "max_stars_repo_licenses": like["max_stars_repo_licenses"],
    }


def generate_code(paths: list[Path], count: int, dup_rate: float, seed: int,
                  pool: dict[str, list[tuple[dict, list[str]]]], paragraphs: list[str]) -> None:
    rng = random.Random(seed)
    languages = list(pool)
    weights = [len(pool[lang]) for lang in languages]
    recent: deque[tuple[str, dict]] = deque(maxlen=RECENT)
    writers = [zstandard.ZstdCompressor(level=1).stream_writer(p.open("wb")) for p in paths]
    for i in range(count):
        if recent and rng.random() < dup_rate:
            text, like = rng.choice(recent)
            text = edit(text, rng, paragraphs)
        else:
            files = pool[rng.choices(languages, weights)[0]]
            chosen = rng.sample(files, min(len(files), rng.randint(2, 4)))
            like = chosen[0][0]
            text = "\n\n".join(rng.choice(blocks) for _, blocks in chosen) + "\n"
        recent.append((text, like))
        line = json.dumps(code_record(i, text, like), ensure_ascii=False) + "\n"
        writers[i % len(writers)].write(line.encode("utf-8"))
    for w in writers:
        w.close()


def split_text(source: Path, paths: list[Path]) -> None:
    """dedup_scale's single text file, dealt round-robin into `paths`."""
    writers = [zstandard.ZstdCompressor(level=1).stream_writer(p.open("wb")) for p in paths]
    with zstandard.ZstdDecompressor().stream_reader(source.open("rb")) as reader:
        import io

        for i, line in enumerate(io.TextIOWrapper(reader, encoding="utf-8")):
            writers[i % len(writers)].write(line.encode("utf-8"))
    for w in writers:
        w.close()


def english_pages(data: Path) -> list[str]:
    return [r["text"] for r in read_jsonl(data / "web" / "trafilatura_pages.main.jsonl.zst") if r.get("lang") == "en"]


def make_corpus(folder: Path, count: int, files: int, dup_rate: float, seed: int, data: Path) -> dict:
    pages = english_pages(data)
    paragraphs = [p for page in pages for p in page.split("\n") if len(p) > 60]
    n_code = round(count * CODE_SHARE)
    code = [folder / f"code-{k:03d}.jsonl.zst" for k in range(files)]
    text = [folder / f"text-{k:03d}.jsonl.zst" for k in range(files)]
    generate_code(code, n_code, dup_rate, seed, code_pool(data), paragraphs)
    generate(folder / "text-all.jsonl.zst", count - n_code, dup_rate, seed + 1, pages)
    split_text(folder / "text-all.jsonl.zst", text)
    (folder / "text-all.jsonl.zst").unlink()
    return {"code": [str(p) for p in code], "text": [str(p) for p in text]}


MIN_POOL_TOKENS_PER_DOC = 20
"""A source whose pool is under this many tokens per input document gives its weight away: a
handful of SQL files must not bind the whole mixture's size (so the output grows with N). At these
sizes that is most of a small source's pool, so with `mixture.tokenize: sampled` the plan must see
most of each pool tokenized to know it is not too small (--min-pool-per-doc; a real build's minimum is
a small part of its pools: `benchmarks/sampled_tokenize.py`)."""


DOCS_PER_FILE = 2_500
"""Documents of the corpus per file of each kind. Real datasets come as many files of about one size
(The Stack's and RefinedWeb's parquet files), so a larger corpus is more files, not larger ones: a
distributed runner's partitions follow the files."""


def files_per_kind(count: int, docs_per_file: int) -> int:
    """Files of each kind for `count` documents: one per `docs_per_file` documents of the corpus (its
    code and text files then hold 70% and 30% of them), at least one."""
    return max(1, round(count / docs_per_file))


TOKENS_OUT_PER_DOC = 80
"""`mixture.total_tokens` of the benchmark's builds, per input document (--tokens-out-per-doc), as a
real build states its total (Lemur's 90B tokens). Without it the total is the largest one every
source's epoch cap allows, which does not follow the input: the generated code repeats its real
blocks more often as the corpus grows (dedup removes more of it), so the binding source changes
with the size, and 62,500 and 250,000 documents gave 6.4M and 63.9M tokens out (102 and 256 per
input document). Everything after the mixture (the copies' shuffle, the shard writer) then did 2.5
times the work per input document at the larger size, which a scaling ratio must not mix in. 80
is under what the caps allow at every size measured (about 100 per document at 16,000 to 64,000,
184 at a million)."""

SHARD_TOKENS = 2_000_000
"""`shards.target_tokens` of the benchmark's builds (--shard-tokens). One worker writes a shard in
parts of up to `pipelines/shard.py: PART_TOKENS` tokens and holds one part's members while it does:
to see whether the rest of a worker stays flat, the size must be one that both corpus sizes fill
several times (at 80 tokens out per document: 3 shards at 62,500 documents, 10 at 250,000). With 20M
(the default before 2026-12-03) 62,500 documents filled one shard in five parts of 1.3M tokens and
250,000 four shards in parts of 3.2M, so a part's members grew with the corpus."""

HELD_STAGES_SHOWN = 8
"""`--runner dask-cluster`: how many stages the report names in the task results held at the fullest poll."""
RUNNING_STAGES_SHOWN = 6
"""`--runner dask-cluster`: how many stages the report names per worker, by its memory while they ran."""


def build_config(inputs: dict, count: int, shard_tokens: int = SHARD_TOKENS,
                 tokens_out_per_doc: int = TOKENS_OUT_PER_DOC, tokenize: str = "sampled",
                 min_pool_per_doc: int = MIN_POOL_TOKENS_PER_DOC) -> dict:
    """The build of a generated corpus of `count` documents: Lemur's mixture of its sources, with
    `tokens_out_per_doc` x `count` tokens out (0: the largest total the sources' caps allow),
    tokenizing what the mixture can sample (`mixture.tokenize`, as configs/lemur.yaml does) or all."""
    from lemur_corpus.config import lemur_mixture_sources

    total = {"total_tokens": tokens_out_per_doc * count} if tokens_out_per_doc else {}
    return {
        "name": "scale",
        "inputs": [
            {"name": "stack", "format": "stack", "kind": "code", "paths": inputs["code"]},
            {"name": "web", "format": "dolma", "kind": "text", "source": "refinedweb", "paths": inputs["text"]},
        ],
        "mixture": {"sources": {k: v.model_dump() for k, v in lemur_mixture_sources().items()},
                    "on_empty_source": "redistribute", "min_pool_tokens": max(1, min_pool_per_doc * count),
                    "tokenize": tokenize, **total},
        "shards": {"target_tokens": shard_tokens},
    }


def runner_args(runner: str, workers: int, address: str = "", shuffle: str = "auto") -> list[str]:
    if runner == "mp":
        return ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    if runner == "dask":
        return ["--runner=DaskRunner", f"--dask_workers={workers}", f"--dask_shuffle={shuffle}"]
    if runner == "dask-cluster":
        return ["--runner=DaskRunner", f"--dask_client_address={address}", f"--dask_shuffle={shuffle}"]
    return []


def rusage(who: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of this process or of its largest waited-for descendant."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def measure_build(config_file: Path, runner: str, workers: int, shuffle: str = "auto", address: str = "") -> dict:
    """Runs in a fresh process: one build, then its timings and peaks."""
    import logging

    import lemur_corpus
    from lemur_corpus.config import parse_config
    from lemur_corpus.pipelines.build import run_build

    try:
        from lemur_corpus.pipelines.spilled_buffers import peak_spilled_bytes
    except ImportError:  # an older package (`benchmarks/paired_builds.py --base`), whose driver spilled nothing
        def peak_spilled_bytes() -> int:
            return 0

    logging.basicConfig(level=logging.WARNING)
    config = parse_config(json.loads(config_file.read_text()))
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as out:
        manifest = run_build(config, out, runner_args(runner, workers, address, shuffle))
        wall = time.monotonic() - started
        written = shards_digest(Path(out))
    cpu_self, rss_self = rusage(resource.RUSAGE_SELF)
    cpu_children, rss_children = rusage(resource.RUSAGE_CHILDREN)
    read = manifest["accounting"]["stages"]["read"]
    near = manifest["dedup"].get("near", {})
    return {
        "wall_s": wall, "cpu_s": cpu_self + cpu_children, "driver_cpu_s": cpu_self,
        "driver_rss_mib": rss_self, "worker_rss_mib": rss_children, "driver_spill_mib": peak_spilled_bytes() / 2**20,
        "docs_in": sum(g["in"]["docs"] for g in read.values()),
        "bytes_in": sum(g["in"]["bytes"] for g in read.values()),
        "docs_out": manifest["totals"]["documents"], "tokens_out": manifest["totals"]["tokens"],
        "shards": len(manifest["shards"]),
        "max_component_size": max((v.get("max_component_size", 0) for v in near.values()), default=0),
        "component_rounds": max((v.get("component_rounds", 0) for v in near.values()), default=0),
        "near_by_kind": {kind: {metric: v.get(metric, 0) for metric in NEAR_WORK} for kind, v in sorted(near.items())},
        "profile": manifest["run"].get("profile"),
        "groupings": manifest["run"].get("groupings", {}),
        "shards_sha256": written,
        "untokenized_documents": sum(s.get("untokenized_documents", 0)
                                     for s in manifest["mixture"]["sources"].values()),
        "package": lemur_corpus.__file__,  # which code built it (benchmarks/paired_builds.py checks)
    }


def shards_digest(out: Path) -> str:
    """One sha256 over every file a build wrote but its manifests (they record the config and the pools)
    and its dedup index (named by the build's id, which follows the config's hash): the shards, their
    indexes and the drop log."""
    digest = hashlib.sha256()
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out).as_posix()
        if path.is_file() and not relative.endswith("manifest.json") and not relative.startswith("dedup-index"):
            digest.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def measure(config_file: Path, runner: str, workers: int, memory_limit: str = "0", shuffle: str = "auto",
            script: str = __file__, script_args: tuple[str, ...] = ()) -> dict:
    """One build in a fresh process (`script --measure ... *script_args`, this file's by default); on
    `dask-cluster`, against a fresh real cluster (each worker with `memory_limit`, "0": none) whose
    worker processes' CPU and peak RSS are read from /proc (they are not the build process's children)."""
    command = [sys.executable, script, "--measure", str(config_file), runner, str(workers), shuffle, *script_args]
    if runner != "dask-cluster":
        return _measure(command)
    from benchmarks.dask_cluster import DaskCluster, cpu_seconds

    with DaskCluster(workers=workers, memory_limit=memory_limit) as cluster:
        before = cluster.worker_stats()
        scheduler = cluster.processes[0].pid
        scheduler_cpu = cpu_seconds(scheduler)
        with cluster.memory_sampled() as dask_memory, cluster.held_sampled() as held, \
                cluster.rss_by_running_stage() as running_at_peak, cluster.gc_timed() as gc_timed:
            r = _measure([*command, cluster.address])
        after = cluster.worker_stats()
        scheduler_cpu = cpu_seconds(scheduler) - scheduler_cpu
        r["task_seconds"] = cluster.task_seconds()
    r["scheduler_cpu_s"] = scheduler_cpu
    r["worker_cpu_s"] = [a["cpu_s"] - b["cpu_s"] for a, b in zip(after, before, strict=True)]
    r["worker_rss_each_mib"] = [a["peak_rss_mib"] for a in after]
    r["worker_rss_mib"] = max(r["worker_rss_each_mib"])
    r["dask_memory_mib"] = dask_memory
    r["held_by_stage"] = held
    r["running_at_peak"] = running_at_peak
    r["gc_by_worker"] = gc_timed
    r["cpu_s"] += sum(r["worker_cpu_s"]) + scheduler_cpu
    return r


def _measure(command: list[str]) -> dict:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode == 2:  # a build error, one message (the last lines of its stderr)
        print(result.stderr[result.stderr.rfind("error: "):].strip(), file=sys.stderr)
        raise SystemExit(2)
    if result.returncode:
        raise SystemExit(f"the build failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(count: int, runner: str, workers: int, r: dict) -> None:
    mb = r["bytes_in"] / 1e6
    per_worker = r["wall_s"] * (workers if runner != "direct" else 1)
    print(f"  {count:>8,} docs ({mb:6.1f} MB) {runner}x{workers}: wall {r['wall_s']:6.0f} s | "
          f"{mb / per_worker:5.3f} MB/s and {r['docs_in'] / per_worker:5.1f} docs/s per worker, "
          f"{r['docs_in'] / r['cpu_s']:5.1f} docs/CPU-s | peak RSS: worker {r['worker_rss_mib']:6.0f} MiB, "
          f"driver {r['driver_rss_mib']:6.0f} MiB (on disk {r.get('driver_spill_mib', 0):,.0f} MiB) | "
          f"{r['docs_out']:,} docs, {r['tokens_out']:,} tokens out in "
          f"{r['shards']} shards; largest near-duplicate component {r['max_component_size']:,} documents "
          f"({r['component_rounds']} rounds)")
    print(f"    CPU: {r['cpu_s']:.1f} s in all, the build's driver process {r['driver_cpu_s']:.1f} s"
          + (f", the Dask scheduler {r['scheduler_cpu_s']:.1f} s" if "scheduler_cpu_s" in r else ""))
    if r.get("near_by_kind"):
        print("    near dedup's work per signed document: " + "; ".join(
            f"{kind} {v['documents']:,} signed, {v['candidate_pairs'] / max(1, v['documents']):.2f} candidate pairs "
            f"and {v['verified_edges'] / max(1, v['documents']):.2f} verified edges each"
            for kind, v in r["near_by_kind"].items()))
    if r.get("groupings"):
        moved = r["groupings"]
        print(f"    the groupings moved {sum(g['bytes'] for g in moved.values()) / 1e6:,.0f} MB between workers "
              f"({sum(g['items'] for g in moved.values()):,} items), the most: " + "; ".join(
                  f"{label} {g['bytes'] / 1e6:,.0f} MB ({g['items']:,} items)"
                  for label, g in largest_groupings(moved)))
    if r.get("task_seconds"):
        print("    Dask task seconds by kind: " + task_seconds_line(r["task_seconds"]))
    if r.get("worker_rss_each_mib"):
        print("    each dask worker: " + ", ".join(
            f"{cpu:.0f} CPU-s, peak {rss:.0f} MiB" for cpu, rss in zip(r["worker_cpu_s"], r["worker_rss_each_mib"],
                                                                       strict=True)))
    if r.get("gc_by_worker"):
        print("    each dask worker's garbage collector: " + ", ".join(
            f"{g['gc_s']:.1f} s in {g['collections']:,} collections ({g['full_gc_s']:.1f} s in "
            f"{g['full_collections']:,} full ones)" for g in r["gc_by_worker"].values()))
    if r.get("dask_memory_mib"):
        memory = r["dask_memory_mib"]
        print(f"    Dask's account of the workers' memory (peaks, all workers together): task results held "
              f"{memory['managed']:.0f} MiB, spilled to disk {memory['spilled']:.0f} MiB, unmanaged "
              f"{memory['unmanaged']:.0f} MiB")
    held = r.get("held_by_stage")
    if held and held["at_peak"]:
        shown = list(held["at_peak"].items())[:HELD_STAGES_SHOWN]
        print(f"    task results held at the fullest poll ({held['peak_mib']:.0f} MiB), by the stage that made them: "
              + "; ".join(f"{stage} {mib:.0f} MiB" for stage, mib in shown))
    for worker, running in r.get("running_at_peak", {}).items():
        shown = list(running["by_stage"].items())[:RUNNING_STAGES_SHOWN]
        objects = running.get("python_objects", {})
        print(f"    {worker}'s resident set, the highest sample while each stage ran (every 20 ms; task results "
              "it held then / bytes in its P2P shuffle buffers / Python's small objects): " + "; ".join(
                  f"{stage} {mib:.0f} MiB ({running['held_mib'][stage]:.0f} / {running['p2p_buffered_mib'][stage]:.0f}"
                  f" / {objects.get(stage, 0) / 1e6:.1f}M)" for stage, mib in shown))
        rises = [(stage, mib) for stage, mib in running.get("rises_mib", {}).items() if mib >= 1][:RUNNING_STAGES_SHOWN]
        if rises:
            print(f"    {worker}'s resident set from {running['start_mib']:.0f} MiB at the start to its peak, how far "
                  "it rose past its highest so far while each stage ran: " + "; ".join(
                      f"{stage} +{mib:.0f} MiB" for stage, mib in rises))
    print_profile(r)


def largest_groupings(moved: dict) -> list[tuple[str, dict]]:
    """The `GROUPINGS_SHOWN` groupings that moved the most bytes (a manifest read from its file has
    its keys sorted by name, not by bytes)."""
    return sorted(moved.items(), key=lambda item: (-item[1]["bytes"], item[0]))[:GROUPINGS_SHOWN]


def groupings_growth(small: dict, large: dict) -> str:
    """How the bytes the groupings moved grew from one size to the other, in all and for the
    groupings that moved the most at the larger size."""
    total = sum(g["bytes"] for g in large.values()) / max(1, sum(g["bytes"] for g in small.values()))
    shown = largest_groupings(large)
    return f"the groupings' bytes x{total:.2f} in all; " + "; ".join(
        f"{label} x{g['bytes'] / max(1, small.get(label, {}).get('bytes', 0)):.2f}" for label, g in shown)


def print_profile(r: dict) -> None:
    """The manifest's per-stage profile, and what no stage claims (the run's CPU minus their sum)."""
    profile = r.get("profile")
    if not profile:
        print("    (the runner reported no metrics: no per-stage profile)")
        return
    mb, docs = r["bytes_in"] / 1e6, r["docs_in"]
    other = r["cpu_s"] - profile["cpu_s"]
    rows = [(name, s["cpu_s"], s["bytes"]) for name, s in profile["stages"].items()]
    rows.append(("runner and bookkeeping", other, 0))
    print(f"    {'stage':<28} {'CPU s':>8} {'CPU s/MB':>9} {'CPU ms/doc':>10} {'share':>6} {'s/MB seen':>10}")
    for name, cpu, seen in rows:
        own = f"{cpu / (seen / 1e6):10.3f}" if seen else f"{'':>10}"
        print(f"    {name:<28} {cpu:8.2f} {cpu / mb:9.3f} {1e3 * cpu / docs:10.3f} {cpu / r['cpu_s']:6.1%} {own}")
    total = r["cpu_s"]
    print(f"    {'all (driver + workers)':<28} {total:8.2f} {total / mb:9.3f} {1e3 * total / docs:10.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--docs", type=int, nargs=2, default=[50_000, 200_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--runner", choices=("mp", "dask", "dask-cluster", "direct"), default="mp",
                        help="mp: DirectRunner multi_processing; dask: DaskRunner on a LocalCluster; "
                             "dask-cluster: DaskRunner on a real scheduler and --workers worker processes "
                             "over TCP; direct: in-process")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--files", type=int, default=None,
                        help="files per kind (default: one per --docs-per-file documents of the kind)")
    parser.add_argument("--docs-per-file", type=positive_int, default=DOCS_PER_FILE,
                        help="documents per input file when --files is not given (default: %(default)s)")
    parser.add_argument("--worker-memory-limit", default="0", type=memory_limit,
                        help="dask-cluster: each worker's memory limit (e.g. 1GiB; it spills task results "
                             "to disk over 60%% of it); default 0: no limit, nothing spilled")
    parser.add_argument("--dask-shuffle", choices=("auto", "p2p", "tasks"), default="auto",
                        help="dask, dask-cluster: how groupings move data (the runner's --dask_shuffle; "
                             "default: %(default)s)")
    parser.add_argument("--shard-tokens", type=positive_int, default=SHARD_TOKENS,
                        help="shards.target_tokens of the builds (default: %(default)s)")
    parser.add_argument("--tokens-out-per-doc", type=non_negative_int, default=TOKENS_OUT_PER_DOC,
                        help="mixture.total_tokens of the builds per input document, so that both sizes "
                             "do the same work per document after the mixture; 0: the largest total the "
                             "sources' epoch caps allow, which does not follow the input (default: %(default)s)")
    parser.add_argument("--tokenize", choices=("sampled", "all"), default="sampled",
                        help="mixture.tokenize of the builds: only what the mixture can sample (as "
                             "configs/lemur.yaml), or every document (the baseline of the sampled mode)")
    parser.add_argument("--min-pool-per-doc", type=non_negative_int, default=MIN_POOL_TOKENS_PER_DOC,
                        help="mixture.min_pool_tokens per input document (see MIN_POOL_TOKENS_PER_DOC; "
                             "benchmarks/sampled_tokenize.py says why a real build's is smaller)")
    parser.add_argument("--dup-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        from lemur_corpus.errors import CorpusError

        config_file, runner, workers, shuffle, *address = args.measure
        try:
            print(json.dumps(measure_build(Path(config_file), runner, int(workers), shuffle, *address)))
        except CorpusError as exc:  # e.g. a --tokens-out-per-doc the sources' caps do not allow: its message
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    data = Path(args.data)
    if not data.exists():
        raise SystemExit(f"real sample data not found at {data} (pass --data or set LEMUR_SHARED_DATA)")
    results = []
    settings = f", worker memory limit {args.worker_memory_limit}" if args.runner == "dask-cluster" else ""
    settings += f", --dask_shuffle={args.dask_shuffle}" if args.runner.startswith("dask") else ""
    settings += (f"; {args.tokens_out_per_doc} tokens out per input document" if args.tokens_out_per_doc
                 else "; the largest total the mixture's caps allow") + f", shards of {args.shard_tokens:,} tokens"
    settings += f", mixture.tokenize: {args.tokenize}, min_pool_tokens {args.min_pool_per_doc} per document"
    print(f"runner {args.runner}, {args.workers} workers{settings}; dup rate {args.dup_rate}, seed {args.seed}")
    for count in args.docs:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            started = time.monotonic()
            files = args.files or files_per_kind(count, args.docs_per_file)
            inputs = make_corpus(folder, count, files, args.dup_rate, args.seed, data)
            config_file = folder / "config.json"
            config_file.write_text(json.dumps(build_config(inputs, count, args.shard_tokens,
                                                           args.tokens_out_per_doc, args.tokenize,
                                                           args.min_pool_per_doc)))
            print(f"  {count:,} documents in {files} files per kind generated in {time.monotonic() - started:.0f} s")
            r = measure(config_file, args.runner, args.workers, args.worker_memory_limit, args.dask_shuffle)
        results.append(r)
        report(count, args.runner, args.workers, r)
    small, large = results
    n = large["docs_in"] / small["docs_in"]
    speed = (large["docs_in"] / large["wall_s"]) / (small["docs_in"] / small["wall_s"])
    print(f"x{n:.1f} documents: throughput x{speed:.2f} (1.00 = linear scaling), worker peak RSS "
          f"x{large['worker_rss_mib'] / small['worker_rss_mib']:.2f}, driver peak RSS "
          f"x{large['driver_rss_mib'] / small['driver_rss_mib']:.2f}")
    if small.get("groupings") and large.get("groupings"):
        print(f"x{n:.1f} documents: " + groupings_growth(small["groupings"], large["groupings"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
