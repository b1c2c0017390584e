"""MinHash signatures per second per core on the real documents of ../shared/data: ours vs datasketch.

Both sides get the same shingles (our shingling of each document, as bytes), num_perm, seed and hash
function; datasketch computes `MinHash.bulk(shingle lists, num_perm, seed, hashfunc)`, we compute
`MinHasher.signature_of` for each list, and every signature is checked equal. Timing is CPU time of
this one process (best of --repeat runs), so it is per core. Also printed: the whole path from text
(tokenize + shingle + sign) against our shingling + datasketch, where shingling is shared work.

    .venv/bin/python benchmarks/minhash_speed.py [--data ../shared/data] [--num-perm 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import DEFAULT_DATA, read_jsonl  # noqa: E402
from lemur_corpus.dedup.config import DedupConfig  # noqa: E402
from lemur_corpus.dedup.minhash import HASH_FUNCTIONS, MinHasher  # noqa: E402
from lemur_corpus.dedup.shingles import shingles  # noqa: E402

CORPORA = {  # name: (kind, files under the data folder, text field)
    "web text": ("text", ["web/trafilatura_pages.main.jsonl.zst", "web/commoncrawl_samples.jsonl.zst",
                          "web/debian_reference_multilingual.jsonl.zst"], "text"),
    "code": ("code", ["code/code_sample.jsonl.zst"], "content"),
}


def best_cpu_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.process_time()
        result = fn()
        best = min(best, time.process_time() - started)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--num-perm", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hashes", nargs="+", default=["xxh32", "sha1_32"], choices=list(HASH_FUNCTIONS))
    args = parser.parse_args()
    from datasketch import MinHash

    data = Path(args.data)
    started = time.monotonic()
    MinHasher(args.num_perm, 1, "xxh32").signature_of([b"warm up"])
    print(f"kernel compile or cache load: {time.monotonic() - started:.2f} s (once per process, not timed below)")
    for name, (kind, files, field) in CORPORA.items():
        near = DedupConfig().near(kind)
        texts = [r[field] for f in files for r in read_jsonl(data / f)]
        sets = [s for s in (shingles(t, near.tokens, near.ngram, near.max_shingles) for t in texts) if s]
        total = sum(len(s) for s in sets)
        print(f"\n{name}: {len(sets)} documents, {total:,} shingles ({near.tokens} {near.ngram}-grams), "
              f"{args.num_perm} permutations")
        for hash_name in args.hashes:
            hasher = MinHasher(args.num_perm, 1, hash_name)
            hashfunc = HASH_FUNCTIONS[hash_name]
            ours_s, ours = best_cpu_time(
                lambda hasher=hasher, sets=sets: [hasher.signature_of(s) for s in sets], args.repeat)
            base_s, base = best_cpu_time(
                lambda sets=sets, hashfunc=hashfunc: MinHash.bulk(
                    sets, num_perm=args.num_perm, seed=1, hashfunc=hashfunc), args.repeat)
            equal = all(np.array_equal(o, b.hashvalues)  # type: ignore[union-attr]
                        for o, b in zip(ours, base, strict=True))
            print(f"  hash {hash_name:7s} ours {len(sets) / ours_s:9.0f} signatures/s/core  datasketch MinHash.bulk "
                  f"{len(sets) / base_s:8.0f} signatures/s/core  ratio {base_s / ours_s:5.2f}x  "
                  f"(bit-identical: {equal})")
        hasher = MinHasher(args.num_perm, 1, "xxh32")
        shingle_s, _ = best_cpu_time(
            lambda near=near, texts=texts: [shingles(t, near.tokens, near.ngram, near.max_shingles) for t in texts],
            args.repeat)
        full_s, _ = best_cpu_time(
            lambda hasher=hasher, near=near, texts=texts: [
                hasher.signature(t, near.tokens, near.ngram, near.max_shingles) for t in texts],
            args.repeat)
        base_s, _ = best_cpu_time(
            lambda sets=sets: MinHash.bulk(sets, num_perm=args.num_perm, seed=1, hashfunc=HASH_FUNCTIONS["xxh32"]),
            args.repeat)
        print(f"  from text (xxh32): ours {len(texts) / full_s:9.0f} documents/s/core  shingling + datasketch "
              f"{len(texts) / (shingle_s + base_s):8.0f} documents/s/core  ratio {(shingle_s + base_s) / full_s:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
