"""The bill for a Lemur-size build, from per-stage rates measured in the same run.

One build of `benchmarks/scale.py`'s mixed corpus (--docs documents, `mixture.tokenize: all`, so that
the tokenize rate is measured over every kept document) gives each stage's CPU seconds per MB it saw
(the manifest's `run.profile`) and what no stage claims (the runner and bookkeeping, per input MB,
fixed costs included: an upper bound). Each input of `configs/lemur.yaml` is charged, per MB of its
assumed size, the stages it runs (`CHAINS`), every stage for every input byte (an upper bound: later
stages see only what earlier ones keep), and the runner's share; tokenize is charged for every byte
with `tokenize: all` and for `SAMPLED_SHARE` of it with `tokenize: sampled` (what its first pass
covers, from Lemur's Table 8 epochs; README, The bill). Printed: the rates, the vCPU-hours and the
cost at `PRICE_PER_VCPU_HOUR`, both ways.

    .venv/bin/python benchmarks/bill.py [--docs 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DEFAULT_DATA, positive_int, require_data  # noqa: E402
from benchmarks.scale import DOCS_PER_FILE, build_config, files_per_kind, make_corpus, measure  # noqa: E402

PRICE_PER_VCPU_HOUR = 0.0446
"""AWS c7i.large on-demand in us-east-1: $0.08925 per hour for 2 vCPUs."""

SIZES_TB = {"the_stack (14 languages)": 1.5, "refinedweb": 2.34,
            "RedPajama wikipedia, books, arxiv, stackexchange": 0.39}
"""UTF-8 text bytes assumed per input (README, The bill: where each figure comes from). RefinedWeb:
600B tokens at 3.90 bytes per token, what `benchmarks/sampled_tokenize.py` measures on English web pages."""

DEDUP = ("exact_dedup", "minhash")
CHAINS = {
    "the_stack (14 languages)": ("read", "normalize", "filter.language", "filter.license", "filter.heuristics",
                                 "filter.generated", "filter.data_like", "filter.syntax", "filter.pii",
                                 "filter.decontam", *DEDUP),
    "refinedweb": ("read", "normalize", "filter.lid", "filter.gopher_repetition", "filter.gopher_quality",
                   "filter.c4", "filter.pii", "filter.decontam", *DEDUP),
    "RedPajama wikipedia, books, arxiv, stackexchange": ("read", "normalize", "filter.pii", "filter.decontam",
                                                         *DEDUP),
}
"""The stages each input runs before tokenize (configs/lemur.yaml: the curated RedPajama sets run only
decontam and PII)."""

PER_INPUT_MB = ("components", "mix", "write")
"""Stages charged per input MB of the build (they see no document bytes)."""

SAMPLED_SHARE = {"the_stack (14 languages)": 0.262, "refinedweb": 0.0131,
                 "RedPajama wikipedia, books, arxiv, stackexchange": 0.0220}
"""With `tokenize: sampled`: the share of each input's pool its first pass tokenizes, r_s x 5 / (bytes
per token) per source below one epoch, whole pools above (README, The bill)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--docs", type=positive_int, default=100_000)
    parser.add_argument("--workers", type=positive_int, default=2)
    args = parser.parse_args()
    data = require_data(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = make_corpus(folder, args.docs, files_per_kind(args.docs, DOCS_PER_FILE), 0.3, 2023, data)
        (folder / "config.json").write_text(json.dumps(build_config(inputs, args.docs, tokenize="all")))
        r = measure(folder / "config.json", "mp", args.workers)
    stages = r["profile"]["stages"]
    input_mb = r["bytes_in"] / 1e6
    seen = {name: s["cpu_s"] / (s["bytes"] / 1e6) for name, s in stages.items() if s["bytes"]}
    runner = (r["cpu_s"] - r["profile"]["cpu_s"]) / input_mb
    per_input = sum(stages[name]["cpu_s"] for name in PER_INPUT_MB if name in stages) / input_mb
    print(f"rates from one build of {args.docs:,} documents ({input_mb:.1f} MB, multi_processing x{args.workers}), "
          "CPU-s per MB each stage saw:")
    print("  " + ", ".join(f"{name} {rate:.3f}" for name, rate in sorted(seen.items())))
    print(f"  runner and bookkeeping {runner:.3f} and components + mix + write {per_input:.3f} per input MB")
    print(f"{'input':<50} {'TB':>5} {'s/MB all':>9} {'vCPU-h':>8} {'cost':>6} | {'s/MB sampled':>12} "
          f"{'vCPU-h':>8} {'cost':>6}")
    totals = [0.0, 0.0]
    for name, chain in CHAINS.items():
        base = sum(seen.get(stage, 0.0) for stage in chain) + runner + per_input
        rates = (base + seen["tokenize"], base + SAMPLED_SHARE[name] * seen["tokenize"])
        hours = [rate * SIZES_TB[name] * 1e6 / 3600 for rate in rates]
        totals = [t + h for t, h in zip(totals, hours, strict=True)]
        cost = [h * PRICE_PER_VCPU_HOUR for h in hours]
        print(f"{name:<50} {SIZES_TB[name]:5.2f} {rates[0]:9.2f} {hours[0]:8,.0f} ${cost[0]:5,.0f}"
              f" | {rates[1]:12.2f} {hours[1]:8,.0f} ${cost[1]:5,.0f}")
    cost = [h * PRICE_PER_VCPU_HOUR for h in totals]
    print(f"{'all':<50} {sum(SIZES_TB.values()):5.2f} {'':>9} {totals[0]:8,.0f} ${cost[0]:5,.0f}"
          f" | {'':>12} {totals[1]:8,.0f} ${cost[1]:5,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
