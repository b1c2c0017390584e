"""How fast `corpus audit` re-measures a build, against the floor of just reading and hashing its files.

    .venv/bin/python benchmarks/audit_speed.py [BUILD] [--workers 1] [--repeat 3]

BUILD defaults to build/default (`make run`). "Audit" is `lemur_corpus.audit.audit_build` end to end: every
shard's .bin streamed once (sha256, id range, EOS at every document end), .idx parsed and checked, docs
index read and every (document, copy) placement checked, drop logs re-read, all comparisons. "Baseline"
is the least any audit must do: sha256 over every file the manifest lists, in the same process and with
the same thread count. The ratio audit/baseline says how much the checks cost beyond reading the bytes;
the shard re-measurement alone (the part that grows with the build) is timed and compared too.
The best of --repeat runs is reported for each (the page cache is warm after the first run).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lemur_corpus.audit import audit_build, load_build_manifest  # noqa: E402
from lemur_corpus.audit.scan import _measure_all  # noqa: E402

CHUNK = 1 << 22


def hash_file(path: str) -> int:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return size


def baseline(build: str, workers: int) -> int:
    manifest = json.load(open(os.path.join(build, "manifest.json"), encoding="utf-8"))
    paths = [os.path.join(build, f["path"]) for s in manifest["shards"] for f in s["files"].values()]
    paths += [os.path.join(build, d["path"]) for d in manifest["drop_logs"]]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(hash_file, paths))


def best_of(repeat: int, run) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - started)
    return best, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?", default="build/default", help="a finished build folder")
    parser.add_argument("--workers", type=int, default=1, help="threads for both sides (default 1: per core)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.build, "manifest.json")):
        raise SystemExit(f"{args.build}: no finished build (run `make run` or pass a build folder)")
    base_s, nbytes = best_of(args.repeat, lambda: baseline(args.build, args.workers))
    audit_s, result = best_of(args.repeat, lambda: audit_build(args.build, workers=args.workers))
    manifest, _ = load_build_manifest(args.build)
    shards_s, _ = best_of(args.repeat, lambda: _measure_all(args.build, manifest["shards"], manifest["tokenizer"],
                                                            args.workers, None))
    tokens = result.total_tokens  # type: ignore[union-attr]
    print(f"build: {args.build}: {tokens:,} tokens, {result.total_documents:,} documents, "  # type: ignore[union-attr]
          f"{nbytes / 1e6:,.1f} MB in {len(result.shards)} shards + drop logs; audit ok={result.ok}")  # type: ignore[union-attr]
    print(f"baseline (sha256 of every file): {base_s:.3f} s, {nbytes / base_s / 1e6:,.0f} MB/s")
    print(f"corpus audit (all checks):       {audit_s:.3f} s, {nbytes / audit_s / 1e6:,.0f} MB/s, "
          f"{tokens / audit_s / 1e6:,.1f} M tokens/s")
    print(f"  of which re-reading the shards: {shards_s:.3f} s (the part that grows with the build; the rest is "
          "fixed: schema validation, accounting, drop logs)")
    print(f"ratio audit/baseline: {audit_s / base_s:.2f}x; shards alone/baseline: {shards_s / base_s:.2f}x  "
          f"(workers={args.workers}, best of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
