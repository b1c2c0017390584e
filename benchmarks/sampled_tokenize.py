"""`mixture.tokenize: sampled` against `all`: the same build of the scale corpus both ways, alternating.

1. Bytes per token of the shipped tokenizer on real documents of ../shared/data (the code sample and
   the English web pages), over all of them and per document: what `mixture.sampled_bytes_per_token`
   (default 5) must exceed for a source to settle in the first pass.
2. `benchmarks/scale.py`'s generated corpus of --docs documents (70% code, 30% web text) built with
   Lemur's mixture and a stated total (--tokens-out-per-doc per input document), once with
   `mixture.tokenize: all` (the baseline) and once with `sampled`, --repeat times, alternating, each in
   a fresh process: wall time, CPU (driver and workers), the tokenize stage's CPU and the MB it saw,
   the documents left untokenized, and a digest of every file written but the manifests and the dedup
   index, which must be equal. Printed: the medians and the ratios all / sampled.

--min-pool-per-doc sets `mixture.min_pool_tokens` per input document. scale.py uses 20 (a handful of
generated SQL files must not fail the caps), which at these sizes is most of a small source's pool:
the plan must then see most of each pool tokenized to know it is not too small. A real build's
minimum is a small part of its pools (configs/lemur.yaml: 1 token; the embedded default 50,000), so
the default here is 2, still enough to set aside the generated SQL.

    .venv/bin/python benchmarks/sampled_tokenize.py [--docs 25000] [--repeat 2] [--min-pool-per-doc 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DEFAULT_DATA, positive_int, read_jsonl, require_data  # noqa: E402
from benchmarks.scale import (  # noqa: E402
    DOCS_PER_FILE,
    TOKENS_OUT_PER_DOC,
    build_config,
    files_per_kind,
    make_corpus,
    measure,
)

REAL_SETS = {"code": ("The Stack sample", "code", "code_sample.jsonl.zst"),
             "web": ("web pages (trafilatura, main text)", "web", "trafilatura_pages.main.jsonl.zst")}


def bytes_per_token(data: Path) -> dict[str, float]:
    """Printed and returned: {"code": ..., "web": ...}, bytes per token over all of each real set."""
    from lemur_corpus.config import TokenizerConfig
    from lemur_corpus.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(TokenizerConfig())
    print("bytes per token of the shipped tokenizer (EOS not counted):")
    averages = {}
    for kind, (label, folder, name) in REAL_SETS.items():
        texts = [t for r in read_jsonl(data / folder / name) if (t := r.get("text") or r.get("content"))]
        ratios, total_bytes, total_tokens = [], 0, 0
        for text in texts:
            nbytes, tokens = len(text.encode("utf-8")), len(tokenizer.encode(text).ids)
            total_bytes, total_tokens = total_bytes + nbytes, total_tokens + tokens
            if tokens:
                ratios.append(nbytes / tokens)
        ratios.sort()
        pick = [ratios[int(q * (len(ratios) - 1))] for q in (0.01, 0.5, 0.99)]
        averages[kind] = total_bytes / total_tokens
        print(f"  {kind}, {label}: {averages[kind]:.2f} over all {len(texts):,} documents; per document "
              f"p1 {pick[0]:.2f}, median {pick[1]:.2f}, p99 {pick[2]:.2f}")
    return averages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--docs", type=positive_int, default=25_000)
    parser.add_argument("--repeat", type=positive_int, default=2)
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--min-pool-per-doc", type=int, default=2)
    parser.add_argument("--tokens-out-per-doc", type=positive_int, default=TOKENS_OUT_PER_DOC)
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args()
    data = require_data(args.data)
    bytes_per_token(data)
    runs: dict[str, list[dict]] = {"all": [], "sampled": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = make_corpus(folder, args.docs, files_per_kind(args.docs, DOCS_PER_FILE), 0.3, args.seed, data)
        for mode in runs:
            config = build_config(inputs, args.docs, tokens_out_per_doc=args.tokens_out_per_doc, tokenize=mode,
                                  min_pool_per_doc=args.min_pool_per_doc)
            (folder / f"{mode}.json").write_text(json.dumps(config))
        print(f"{args.docs:,} documents (scale.py's corpus), {args.tokens_out_per_doc} tokens out per document, "
              f"min_pool_tokens {args.min_pool_per_doc} per document, multi_processing x{args.workers}:")
        for i in range(args.repeat):
            for mode in (("all", "sampled") if i % 2 == 0 else ("sampled", "all")):
                r = measure(folder / f"{mode}.json", "mp", args.workers)
                tokenize = r["profile"]["stages"]["tokenize"]
                r["tokenize_cpu_s"], r["tokenize_mb"] = tokenize["cpu_s"], tokenize["bytes"] / 1e6
                runs[mode].append(r)
                print(f"  {mode:>7}: wall {r['wall_s']:5.1f} s, CPU {r['cpu_s']:6.1f} s, tokenize "
                      f"{r['tokenize_cpu_s']:5.2f} CPU-s over {r['tokenize_mb']:5.1f} MB, "
                      f"{r['untokenized_documents']:,} documents untokenized, "
                      f"{r['bytes_in'] / 1e6 / (r['wall_s'] * args.workers):.3f} MB/s per worker")
    digests = {r["shards_sha256"] for rs in runs.values() for r in rs}
    if len(digests) != 1:
        print("error: the two modes wrote different files", file=sys.stderr)
        return 1

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    mb = runs["all"][0]["bytes_in"] / 1e6
    print("medians (all -> sampled), the same files written by every run:")
    for key, label in (("wall_s", "wall s"), ("cpu_s", "CPU s"), ("tokenize_cpu_s", "tokenize CPU s"),
                       ("tokenize_mb", "MB tokenized")):
        a, s = median("all", key), median("sampled", key)
        print(f"  {label:>15}: {a:7.2f} -> {s:7.2f}  x{a / s:.2f}")
    print(f"  CPU s per input MB: {median('all', 'cpu_s') / mb:.3f} -> {median('sampled', 'cpu_s') / mb:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
