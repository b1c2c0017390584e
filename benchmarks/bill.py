"""The bill for a Lemur-size build, from per-stage rates measured in the same run.

One build of `benchmarks/scale.py`'s mixed corpus (--docs documents, `mixture.tokenize: all`, so that
the tokenize rate is measured over every kept document) gives each stage's CPU seconds per MB it saw
(the manifest's `run.profile`) and what no stage claims (the runner and bookkeeping, per input MB,
fixed costs included: an upper bound). Each input of `configs/lemur.yaml` is charged, per MB of its
assumed size, the stages it runs (`CHAINS`), every stage for every input byte (an upper bound: later
stages see only what earlier ones keep), and the runner's share; tokenize is charged for every byte
with `tokenize: all` and for the share its first pass covers with `tokenize: sampled`
(`sampled_shares`: from Lemur's Table 8 epochs and the bytes per token measured on real code and web
pages, `benchmarks/sampled_tokenize.py`, which also sets RefinedWeb's size; README, The bill).
Printed: the shares, the rates, the vCPU-hours and the cost at `PRICE_PER_VCPU_HOUR`, both ways.

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
from benchmarks.sampled_tokenize import bytes_per_token  # noqa: E402
from benchmarks.scale import DOCS_PER_FILE, build_config, files_per_kind, make_corpus, measure  # noqa: E402
from lemur_corpus.config import lemur_mixture_sources  # noqa: E402
from lemur_corpus.mixture import MixtureConfig  # noqa: E402

PRICE_PER_VCPU_HOUR = 0.0446
"""AWS c7i.large on-demand in us-east-1: $0.08925 per hour for 2 vCPUs."""

STACK = "the_stack (14 languages)"
REFINEDWEB = "refinedweb"
REDPAJAMA = "RedPajama wikipedia, books, arxiv, stackexchange"

STACK_TB = 1.5
"""The Stack's near-deduplicated v1.0 release for its 30 languages (its card); the 14 the config reads
are the larger part of it (README, The bill: the weakest assumption)."""
REFINEDWEB_TOKENS = 600e9
"""The public extract (its paper); its bytes follow from the bytes per token measured on web pages."""
REDPAJAMA_TOKENS = 98e9
REDPAJAMA_BYTES_PER_TOKEN = 4.0
"""The four curated RedPajama sets (their card); dm_mathematics (a few GB) is left out."""
REDPAJAMA_SOURCES = ("wikipedia", "books", "arxiv", "stackexchange")
LEMUR_TOKENS = 90e9

DEDUP = ("exact_dedup", "minhash")
CHAINS = {
    STACK: ("read", "normalize", "filter.language", "filter.license", "filter.heuristics", "filter.generated",
            "filter.data_like", "filter.syntax", "filter.pii", "filter.decontam", *DEDUP),
    REFINEDWEB: ("read", "normalize", "filter.lid", "filter.gopher_repetition", "filter.gopher_quality",
                 "filter.c4", "filter.pii", "filter.decontam", *DEDUP),
    REDPAJAMA: ("read", "normalize", "filter.pii", "filter.decontam", *DEDUP),
}
"""The stages each input runs before tokenize (configs/lemur.yaml: the curated RedPajama sets run only
decontam and PII)."""

PER_INPUT_MB = ("components", "mix", "write")
"""Stages charged per input MB of the build (they see no document bytes)."""



def first_pass_share(epochs: float, bytes_per_token: float) -> float:
    """The share of a pool sampled at `epochs` that `tokenize: sampled` tokenizes first: its target at
    `sampled_bytes_per_token` bytes a token, over the pool's bytes (the boundary window and
    `min_pool_tokens` are negligible at this size)."""
    return min(1.0, epochs * MixtureConfig.model_fields["sampled_bytes_per_token"].default / bytes_per_token)


def sampled_shares(bytes_per_token: dict[str, float]) -> dict[str, float]:
    """Per input, the share of its pool `tokenize: sampled` tokenizes. The Stack: per language, the pool
    Lemur's Table 8 implies (weight x 90B / its reference epochs) at those epochs; RefinedWeb and the
    RedPajama sets: their targets over their token counts."""
    sources = lemur_mixture_sources()
    code = {name: s for name, s in sources.items() if s.kind == "code"}
    pools = {name: s.weight / 100 * LEMUR_TOKENS / (s.reference_epochs or 1.0) for name, s in code.items()}
    tokenized = sum(pools[name] * first_pass_share(s.reference_epochs or 1.0, bytes_per_token["code"])
                    for name, s in code.items())
    refinedweb = sources["refinedweb"].weight / 100 * LEMUR_TOKENS / REFINEDWEB_TOKENS
    redpajama = sum(sources[name].weight for name in REDPAJAMA_SOURCES) / 100 * LEMUR_TOKENS / REDPAJAMA_TOKENS
    return {STACK: tokenized / sum(pools.values()),
            REFINEDWEB: first_pass_share(refinedweb, bytes_per_token["web"]),
            REDPAJAMA: first_pass_share(redpajama, bytes_per_token["web"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--docs", type=positive_int, default=100_000)
    parser.add_argument("--workers", type=positive_int, default=2)
    args = parser.parse_args()
    data = require_data(args.data)
    per_token = bytes_per_token(data)
    sizes = {STACK: STACK_TB, REFINEDWEB: REFINEDWEB_TOKENS * per_token["web"] / 1e12,
             REDPAJAMA: REDPAJAMA_TOKENS * REDPAJAMA_BYTES_PER_TOKEN / 1e12}
    shares = sampled_shares(per_token)
    print("tokenized by `sampled`'s first pass, from Table 8's epochs: " +
          ", ".join(f"{name} {100 * share:.1f}%" for name, share in shares.items()))
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
        rates = (base + seen["tokenize"], base + shares[name] * seen["tokenize"])
        hours = [rate * sizes[name] * 1e6 / 3600 for rate in rates]
        totals = [t + h for t, h in zip(totals, hours, strict=True)]
        cost = [h * PRICE_PER_VCPU_HOUR for h in hours]
        print(f"{name:<50} {sizes[name]:5.2f} {rates[0]:9.2f} {hours[0]:8,.0f} ${cost[0]:5,.0f}"
              f" | {rates[1]:12.2f} {hours[1]:8,.0f} ${cost[1]:5,.0f}")
    cost = [h * PRICE_PER_VCPU_HOUR for h in totals]
    print(f"{'all':<50} {sum(sizes.values()):5.2f} {'':>9} {totals[0]:8,.0f} ${cost[0]:5,.0f}"
          f" | {'':>12} {totals[1]:8,.0f} ${cost[1]:5,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
