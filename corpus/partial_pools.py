"""Tokenizing only what the mixture can sample (`mixture.tokenize: sampled`).

With a stated total N, source s contributes T_s = w_s·N tokens. When its pool holds more (r_s < 1),
the plan takes the documents of s with the smallest u(doc) up to T_s, and no other document of s is
written (`lemur_corpus.mixture`). Which documents those are follows from the token histogram of u up
to the bin where the running total crosses T_s and from the tokens of the boundary window's documents,
not from the tokens of any document after the window. So a build tokenizes first, per source, the
documents of the lowest bins of u, and the rest only where the plan from that partial pool is not
provably the plan of the whole pool:

1. before tokenizing, a byte-weighted histogram of u per source and a guess of
   max(T_s, `min_pool_tokens`)·`sampled_bytes_per_token` bytes give each source's first bound: the
   bins up to where those bytes are reached, and the boundary window's bins after it (`first_bounds`;
   T_s at the weights the byte estimates of the pools give);
2. the documents in those bins are tokenized; each other document is counted in its bin, untokenized,
   as one token (its EOS: a lower bound P' <= P of the pool);
3. the plan from the partial pools settles a source (`settled`) when P' already gives it less than one
   epoch within its cap and at least `min_pool_tokens`, and its boundary window ends inside the
   tokenized bins. Every other source with untokenized documents has them tokenized too
   (`unsettled_sources`), and the final plan is made from those exact pools and the settled partial ones.

Why the same documents as tokenizing everything: with N stated, T_s depends on the pools only
through which sources count as empty and the caps check; P' meeting `min_pool_tokens` and giving
w_s·N/P' under the cap and under 1 means P does too, so full copies are 0 and E_s = T_s; the crossing
bin and the window after it lie in the tokenized bins, where the histograms are the exact ones, and
the window's documents are chosen from their exact tokens. A source unsettled after the first pass
gets its whole pool tokenized; one that then turns out usable keeps its weight instead of giving it
to the others, which only lowers their targets, so a settled source stays settled (`final_problems`
checks it again on the final plan).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from lemur_corpus.mixture import (
    HISTOGRAM_BINS,
    MixtureConfig,
    MixtureError,
    MixturePlan,
    SourcePlan,
    boundary_window_end,
    make_plan,
    redistribute,
)

LAST_BIN = HISTOGRAM_BINS - 1
"""A bound that tokenizes every document of its source."""


def plan_from_pools(mixture: MixtureConfig, seed: int, pools: Mapping[str, Mapping[str, Any]]) -> MixturePlan:
    """`make_plan` from the pools' combines (`pipelines.mix.HistogramFn`'s output per source); raises
    `MixtureError` when they cannot give the mixture."""
    return make_plan(
        mixture, seed,
        {s: v["tokens"] for s, v in pools.items()},
        {s: v["documents"] for s, v in pools.items()},
        {s: v["histogram"] for s, v in pools.items()},
        {s: v["doc_histogram"] for s, v in pools.items()},
        {s: v["largest"] for s, v in pools.items()},
        {s: v.get("untokenized", 0) for s, v in pools.items()},
    )


def samples_below_one_epoch(mixture: MixtureConfig) -> bool:
    """Whether `mixture` lets a build leave documents untokenized: `tokenize: sampled`, mixing on and a
    stated total (without one the total follows every pool's exact size)."""
    return mixture.tokenize == "sampled" and mixture.enabled and mixture.total_tokens is not None


def estimated_weights(mixture: MixtureConfig, byte_pools: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The weights the plan will likely use: the sources whose bytes, at `sampled_bytes_per_token`,
    fall short of `min_pool_tokens` give theirs away as `on_empty_source` says (an estimate: the
    final plan decides, from tokens)."""
    kinds = {s: src.kind for s, src in mixture.sources.items()}
    per_token = mixture.sampled_bytes_per_token
    pools = {s: int(p["tokens"] / per_token) for s, p in byte_pools.items()}
    usable = {s: (t if t >= mixture.min_pool_tokens else 0) for s, t in pools.items()}
    try:
        weights, _ = redistribute(mixture.normalized_weights(), kinds, usable, mixture.on_empty_source)
    except MixtureError:  # the final plan reports it, from tokens
        return mixture.normalized_weights()
    return weights


def first_bound(mixture: MixtureConfig, source: str, byte_pool: Mapping[str, Any], weight: float) -> int:
    """The last bin of u whose documents of `source` are tokenized first: enough bytes, at
    `sampled_bytes_per_token`, for the source's target at `weight` and for `min_pool_tokens` (the plan
    must see the pool is not too small), then the boundary window's documents after it."""
    if not samples_below_one_epoch(mixture) or source not in mixture.sources:
        return LAST_BIN
    assert mixture.total_tokens is not None  # samples_below_one_epoch
    tokens = max(weight * mixture.total_tokens, mixture.min_pool_tokens)
    cumulative = np.cumsum(byte_pool["histogram"], dtype=np.int64)
    needed = tokens * mixture.sampled_bytes_per_token
    if not len(cumulative) or needed >= cumulative[-1]:
        return LAST_BIN
    crossing = int(np.searchsorted(cumulative, needed, side="left"))
    return boundary_window_end(byte_pool["doc_histogram"], crossing)


def first_bounds(mixtures: Iterable[MixtureConfig], byte_pools: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Source -> the last bin tokenized in the first pass: the largest any of `mixtures` (the main
    one and each variant's) needs. `byte_pools` are histograms weighted by bytes instead of tokens."""
    bounds = dict.fromkeys(byte_pools, -1)
    for mixture in mixtures:
        weights = estimated_weights(mixture, byte_pools) if samples_below_one_epoch(mixture) else {}
        for source, pool in byte_pools.items():
            bounds[source] = max(bounds[source], first_bound(mixture, source, pool, weights.get(source, 0.0)))
    return bounds


def settled(plan: SourcePlan | None, bound: int) -> bool:
    """Whether the plan of a partly tokenized source takes what the plan of its whole pool would."""
    if plan is None or plan.status != "mixed" or plan.full_copies:
        return False
    if plan.extra_tokens <= 0:
        return True  # a target of 0 tokens: nothing of the source is written
    return 0 <= plan.boundary_bin <= plan.boundary_end_bin <= bound


def unsettled_sources(mixtures: Iterable[MixtureConfig], seed: int, pools: Mapping[str, Mapping[str, Any]],
                      bounds: Mapping[str, int]) -> frozenset[str]:
    """The sources whose untokenized documents must be tokenized before the final plan: every partly
    tokenized source that some mixture's plan from the partial pools does not settle (all of them
    when a plan cannot be made: its error may come from a lower bound)."""
    partial = {s for s, p in pools.items() if p.get("untokenized", 0)}
    unsettled: set[str] = set()
    for mixture in mixtures:
        if not partial - unsettled:
            break
        try:
            plan = plan_from_pools(mixture, seed, pools)
        except MixtureError:
            return frozenset(partial)
        unsettled |= {s for s in partial if not settled(plan.sources.get(s), bounds.get(s, LAST_BIN))}
    return frozenset(unsettled)


def final_problems(plan: MixturePlan, bounds: Mapping[str, int]) -> list[str]:
    """The partly tokenized sources the final plan does not settle: none, by the argument above; one
    would be a bug, and the build fails rather than write a sample that tokenizing all would not."""
    return [f"source {name!r}: {source.untokenized_documents:,} documents left untokenized, but the plan "
            f"(boundary bins {source.boundary_bin}-{source.boundary_end_bin}, first pass up to bin "
            f"{bounds.get(name, LAST_BIN)}) could sample them; set mixture.tokenize: all and report this"
            for name, source in sorted(plan.sources.items())
            if source.untokenized_documents and not settled(source, bounds.get(name, LAST_BIN))]
