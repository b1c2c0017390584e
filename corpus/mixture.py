"""Token-exact mixture arithmetic (docs/design.md, The mixture): pools in, per-source rates and exact
samples out.

After filtering and dedup, source s has a pool of P_s tokens. With normalized weights w_s and a total N
(given, or the largest total that keeps every rate under its cap), source s must contribute
T_s = w_s·N tokens: r_s = T_s / P_s epochs. Every document of s is written floor(r_s) times, and one
more time for a subset chosen by a seeded hash u(doc) in [0, 1): the documents with the smallest u
whose tokens add up to the remainder E_s = T_s - floor(r_s)·P_s as closely as whole documents allow.

Finding that subset without sorting a whole source in one place takes two small steps: a token- and
document-weighted histogram of u per source (a combine of `HISTOGRAM_BINS` counters) locates the bin
where the running total crosses E_s; the bins below it are taken whole. Only the documents of a small
window of bins from there on (at least `BOUNDARY_DOCUMENTS` documents) are gathered; they are taken
greedily in u order while they fit, which lands within a small document of E_s even when the
documents are few and large. The realized tokens of s are within one document of T_s.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import xxhash
from pydantic import Field, field_validator, model_validator

from lemur_corpus.configbase import NAME_PATTERN, StrictModel
from lemur_corpus.errors import ConfigError

HISTOGRAM_BINS = 1 << 16
BOUNDARY_DOCUMENTS = 64
"""Documents gathered (at least) around the crossing point to place the exact cut."""


class MixtureSource(StrictModel):
    kind: Literal["code", "text"]
    weight: float = Field(ge=0)
    """Percent of all output tokens."""
    reference_epochs: float | None = Field(default=None, ge=0)
    """The epochs the paper reports, for comparison in the manifest."""
    max_epochs: float | None = Field(default=None, gt=0)
    """A cap on r_s; with no total given, the total is the largest one every cap allows."""


class MixtureConfig(StrictModel):
    enabled: bool = True
    """When false, every kept document is written exactly once and weights are only measured."""
    total_tokens: int | None = Field(default=None, gt=0)
    """N. Default: the largest total that keeps every source under its max_epochs."""
    default_max_epochs: float = Field(default=4.0, gt=0)
    """The cap of sources that set none."""
    weight_sum_tolerance: float = Field(default=0.25, ge=0)
    """Percentage points by which the weights may miss 100 (the paper's table is rounded)."""
    on_empty_source: Literal["error", "redistribute"] = "error"
    """A source with no tokens after filtering: stop, or give its weight to the other sources of its kind."""
    min_pool_tokens: int = Field(default=1, ge=1)
    """A source with fewer tokens than this after filtering and dedup counts as empty: a handful of
    documents repeated many times is not a sample of a language."""
    tokenize: Literal["all", "sampled"] = "all"
    """`all`: tokenize every document of every pool, so the manifest's pool sizes are exact.
    `sampled`: with a stated `total_tokens`, tokenize first only the documents of each source that the
    plan can sample (the smallest u(doc), by a byte estimate), then the rest of any source where that
    does not settle the plan; the shards are byte-identical to `all`'s, and the manifest's pool of a
    source left partly untokenized is a lower bound (`lemur_corpus.partial_pools`). Lemur samples most
    of The Stack's languages below one epoch and RefinedWeb at about one percent."""
    sampled_bytes_per_token: float = Field(default=5.0, gt=0)
    """`tokenize: sampled`: the bytes a token is taken to cover when choosing what to tokenize first.
    Above a source's real average, the first pass covers its sample with room to spare; below it, the
    source's remaining documents are tokenized in a second pass (slower, the same bytes).
    `benchmarks/sampled_tokenize.py` prints the real averages of code and web pages."""
    sources: dict[str, MixtureSource]

    @field_validator("sources")
    @classmethod
    def _names(cls, value: dict[str, MixtureSource]) -> dict[str, MixtureSource]:
        for name in value:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"source name {name!r} must be lowercase letters, digits, '_' or '-'")
        if not value:
            raise ValueError("at least one source is required")
        return value

    @model_validator(mode="after")
    def _weights(self) -> MixtureConfig:
        total = sum(s.weight for s in self.sources.values())
        if not math.isfinite(total) or abs(total - 100.0) > self.weight_sum_tolerance:
            listing = ", ".join(f"{n}={s.weight:g}" for n, s in self.sources.items())
            raise ValueError(
                f"weights add up to {total:.4g}%, not 100% (tolerance {self.weight_sum_tolerance:g} "
                f"points): {listing}"
            )
        return self

    def normalized_weights(self) -> dict[str, float]:
        total = sum(s.weight for s in self.sources.values())
        return {name: s.weight / total for name, s in self.sources.items()}


class MixtureError(ConfigError):
    """The pools cannot give the configured mixture (empty source, impossible cap)."""


def sample_point(seed: int, doc_id: str) -> float:
    """u(doc) in [0, 1): a seeded 64-bit hash of the id, so the choice is independent of order."""
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8"), seed=seed & 0xFFFFFFFFFFFFFFFF) / 2.0**64


def histogram_bin(u: float) -> int:
    return min(int(u * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)


@dataclasses.dataclass(frozen=True, slots=True)
class SourcePlan:
    name: str
    kind: str
    configured_weight: float
    """The config's weight, normalized to a fraction."""
    weight: float
    """The weight used, after any redistribution."""
    pool_tokens: int
    pool_documents: int
    max_epochs: float
    reference_epochs: float | None
    target_tokens: int
    rate: float
    full_copies: int
    extra_tokens: int
    """Tokens to take once more beyond the full copies (E_s)."""
    boundary_bin: int
    """First bin of the boundary window: bins below it are taken whole (-1: no extra subset)."""
    boundary_tokens: int
    """Tokens still to take inside the boundary window."""
    boundary_end_bin: int = -1
    """Last bin of the boundary window (inclusive); bins after it are not taken."""
    largest_document_tokens: int = 0
    """The pool's longest document: the granularity the mixture can hit a target with."""
    status: str = "mixed"
    """`mixed`; `empty` (no tokens: its weight went elsewhere); `below_min_pool` (too few tokens: its
    documents are left out and its weight went elsewhere); `unmixed` (mixing disabled: written once)."""
    untokenized_documents: int = 0
    """Documents of the pool left untokenized because the plan cannot sample them (`mixture.tokenize:
    sampled`, `lemur_corpus.partial_pools`); `pool_tokens` is then a lower bound: the tokenized
    documents' tokens plus one (the EOS) per untokenized document, and `rate` is relative to it."""

    def to_dict(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        if not self.untokenized_documents:  # a fully tokenized pool reads as it did before the field
            del out["untokenized_documents"]
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class MixturePlan:
    enabled: bool
    seed: int
    total_tokens: int
    total_from: str
    """`config` (N was given), `caps` (the largest N the caps allow) or `pools` (mixing disabled)."""
    binding_source: str | None
    sources: dict[str, SourcePlan]
    redistributed: dict[str, dict[str, float]]
    """Empty source -> {receiving source: weight fraction received}."""
    error: str = ""
    """Set when the pools cannot give the configured mixture; nothing is written then."""

    @staticmethod
    def failed(seed: int, message: str) -> MixturePlan:
        return MixturePlan(False, seed, 0, "error", None, {}, {}, message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "seed": self.seed,
            "total_tokens": self.total_tokens,
            "total_from": self.total_from,
            "binding_source": self.binding_source,
            "redistributed": self.redistributed,
            "sources": {name: plan.to_dict() for name, plan in sorted(self.sources.items())},
        }


def redistribute(
    weights: Mapping[str, float], kinds: Mapping[str, str], pools: Mapping[str, int], policy: str
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Give the weight of empty sources to the non-empty sources of the same kind, proportionally,
    so the code:text split stays as configured; or refuse (`policy == "error"`)."""
    empty = sorted(s for s, w in weights.items() if w > 0 and pools.get(s, 0) == 0)
    if not empty:
        return dict(weights), {}
    if policy == "error":
        raise MixtureError(
            "no tokens left after filtering and dedup for source(s) "
            + ", ".join(empty)
            + "; fix the inputs, or set mixture.on_empty_source: redistribute"
        )
    out = dict(weights)
    moved: dict[str, dict[str, float]] = {}
    for source in empty:
        receivers = sorted(t for t in weights if kinds[t] == kinds[source] and pools.get(t, 0) > 0 and weights[t] > 0)
        if not receivers:
            raise MixtureError(
                f"source {source!r} is empty and no other {kinds[source]} source has tokens to take its weight"
            )
        base = sum(weights[t] for t in receivers)
        moved[source] = {}
        for t in receivers:
            share = weights[source] * weights[t] / base
            out[t] += share
            moved[source][t] = share
        out[source] = 0.0
    return out, moved


def plan_totals(
    config: MixtureConfig, pools: Mapping[str, int], weights: Mapping[str, float]
) -> tuple[int, str, str | None]:
    """(N, how it was chosen, the source whose cap binds)."""
    caps = {s: (config.sources[s].max_epochs or config.default_max_epochs) for s in config.sources}
    limits = {s: caps[s] * pools[s] / w for s, w in weights.items() if w > 0}
    binding = min(limits, key=lambda s: (limits[s], s))
    feasible = int(math.floor(limits[binding]))
    if config.total_tokens is not None:
        n = config.total_tokens
        if any(w > 0 and w * n / pools[s] > caps[s] + 1e-12 for s, w in weights.items()):
            # the binding source is the one that needs the most epochs relative to its cap, not the
            # first in any order: name it, the largest total every cap allows, and the keys to change
            w = weights[binding]
            over = [s for s in sorted(limits, key=lambda s: (limits[s], s))
                    if weights[s] * n / pools[s] > caps[s] + 1e-12]
            others = f" (also over their caps: {', '.join(over[1:6])}{', ...' if len(over) > 6 else ''})" \
                if len(over) > 1 else ""
            raise MixtureError(
                f"total_tokens {n:,} needs {w * n / pools[binding]:.3f} epochs of source {binding!r} "
                f"({pools[binding]:,} tokens after filtering and dedup), above its cap of {caps[binding]:g}"
                f"{others}; the largest total every cap allows is {feasible:,}: set mixture.total_tokens to "
                f"at most that, remove it (the largest feasible total is then used), or raise "
                f"mixture.sources.{binding}.max_epochs"
            )
        return n, "config", None
    return feasible, "caps", binding


def make_plan(
    config: MixtureConfig,
    seed: int,
    pools: Mapping[str, int],
    documents: Mapping[str, int],
    histograms: Mapping[str, np.ndarray],
    doc_histograms: Mapping[str, np.ndarray] | None = None,
    largest: Mapping[str, int] | None = None,
    untokenized: Mapping[str, int] | None = None,
) -> MixturePlan:
    """The per-source rates, copies and sampling boundaries, from pass one's counts. `untokenized`:
    documents per source counted in `documents` and the histograms' document counts but not tokenized
    (`pools` holds only the tokenized ones' tokens); each counts as one token, so the plan sees a lower
    bound of its pool (`lemur_corpus.partial_pools` says when that gives the same choices as the exact
    pool)."""
    left = {s: int(n) for s, n in (untokenized or {}).items() if n}
    pools = {s: int(t) + left.get(s, 0) for s, t in pools.items()}
    unknown = sorted(set(pools) - set(config.sources))
    if unknown:
        raise MixtureError(f"documents of source(s) {', '.join(unknown)} are not in the mixture config")
    kinds = {s: src.kind for s, src in config.sources.items()}
    configured = config.normalized_weights()
    longest = {s: int(v) for s, v in (largest or {}).items()}
    usable = {s: (t if t >= config.min_pool_tokens else 0) for s, t in pools.items()}
    if not config.enabled:
        sources = {}
        for s in sorted(config.sources):
            pool = int(pools.get(s, 0))
            sources[s] = SourcePlan(s, kinds[s], configured[s], configured[s], pool, int(documents.get(s, 0)),
                                    1.0, config.sources[s].reference_epochs, pool, 1.0 if pool else 0.0,
                                    1, 0, -1, 0, largest_document_tokens=longest.get(s, 0),
                                    status="unmixed")
        total = sum(int(pools.get(s, 0)) for s in config.sources)
        return MixturePlan(False, seed, total, "pools", None, sources, {})
    weights, moved = redistribute(configured, kinds, usable, config.on_empty_source)
    total, total_from, binding = plan_totals(config, usable, weights)
    sources = {}
    for s in sorted(config.sources):
        pool = int(usable.get(s, 0))
        target = int(round(weights[s] * total))
        if pool == 0:
            raw = int(pools.get(s, 0))
            sources[s] = SourcePlan(s, kinds[s], configured[s], weights[s], raw, int(documents.get(s, 0)),
                                    config.sources[s].max_epochs or config.default_max_epochs,
                                    config.sources[s].reference_epochs, 0, 0.0, 0, 0, -1, 0,
                                    largest_document_tokens=longest.get(s, 0),
                                    status="below_min_pool" if raw else "empty",
                                    untokenized_documents=left.get(s, 0))
            continue
        rate = target / pool
        full = int(math.floor(rate))
        extra = target - full * pool
        hist = histograms.get(s)
        boundary_bin, boundary_end, boundary_tokens = -1, -1, 0
        if extra > 0 and hist is not None:
            cumulative = np.cumsum(hist, dtype=np.int64)
            boundary_bin = min(int(np.searchsorted(cumulative, extra, side="left")), HISTOGRAM_BINS - 1)
            before = int(cumulative[boundary_bin - 1]) if boundary_bin > 0 else 0
            boundary_tokens = extra - before
            boundary_end = boundary_window_end(
                doc_histograms.get(s) if doc_histograms else None, boundary_bin)
        sources[s] = SourcePlan(
            s, kinds[s], configured[s], weights[s], pool, int(documents.get(s, 0)),
            config.sources[s].max_epochs or config.default_max_epochs,
            config.sources[s].reference_epochs, target, rate, full, extra, boundary_bin, boundary_tokens,
            boundary_end_bin=boundary_end, largest_document_tokens=longest.get(s, 0),
            untokenized_documents=left.get(s, 0),
        )
    return MixturePlan(True, seed, total, total_from, binding, sources, moved)


def boundary_window_end(doc_histogram: np.ndarray | None, start: int) -> int:
    """The last bin of the window that starts at `start` and holds at least BOUNDARY_DOCUMENTS
    documents (or reaches the last bin)."""
    if doc_histogram is None:
        return start
    cumulative = np.cumsum(doc_histogram[start:], dtype=np.int64)
    offset = int(np.searchsorted(cumulative, BOUNDARY_DOCUMENTS, side="left"))
    return min(start + offset, HISTOGRAM_BINS - 1)


def boundary_choice(members: Iterable[tuple[float, str, int]], needed: int) -> frozenset[str]:
    """The ids to take once more inside the boundary window: in u order, every document that still
    fits in `needed` tokens; then, if that leaves a gap, the one document that best closes it."""
    ordered = sorted(members)
    chosen: list[str] = []
    skipped: list[tuple[float, str, int]] = []
    running = 0
    for u, doc_id, tokens in ordered:
        if running + tokens <= needed:
            chosen.append(doc_id)
            running += tokens
        else:
            skipped.append((u, doc_id, tokens))
    gap = needed - running
    if gap > 0 and skipped:
        u, doc_id, tokens = min(skipped, key=lambda m: (abs(gap - m[2]), m[0], m[1]))
        if abs(gap - tokens) < gap:
            chosen.append(doc_id)
    return frozenset(chosen)


def in_boundary(plan: SourcePlan, u: float) -> bool:
    return plan.boundary_bin >= 0 and plan.boundary_bin <= histogram_bin(u) <= plan.boundary_end_bin


def copies_of(plan: SourcePlan, u: float, doc_id: str, chosen: frozenset[str] | None) -> int:
    """How many times a document of this source is written."""
    copies = plan.full_copies
    if plan.extra_tokens <= 0 or plan.boundary_bin < 0:
        return copies
    b = histogram_bin(u)
    if b < plan.boundary_bin:
        return copies + 1
    if b <= plan.boundary_end_bin and chosen is not None and doc_id in chosen:
        return copies + 1
    return copies


def sequences(tokens_per_shard: Iterable[int], length: int) -> int:
    """Training sequences of `length` tokens Megatron's GPTDataset draws from these shards in one
    epoch: each sample needs length + 1 tokens (inputs and shifted labels), so (T - 1) // length."""
    return sum(max(t - 1, 0) // length for t in tokens_per_shard)


@dataclasses.dataclass
class PoolStats:
    """What pass one of the pipeline computes, gathered in one process (`mix_in_memory`): per source
    the pool's tokens, documents, token- and document-weighted histograms and largest document, and
    every document's sample point."""

    points: dict[str, float] = dataclasses.field(default_factory=dict)
    pools: dict[str, int] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    largest: dict[str, int] = dataclasses.field(default_factory=dict)
    histograms: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    doc_histograms: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, seed: int, docs: list[tuple[str, str, int]]) -> PoolStats:
        stats = cls(points={doc_id: sample_point(seed, doc_id) for _, doc_id, _ in docs})
        for source, doc_id, tokens in docs:
            stats.pools[source] = stats.pools.get(source, 0) + tokens
            stats.counts[source] = stats.counts.get(source, 0) + 1
            stats.largest[source] = max(stats.largest.get(source, 0), tokens)
            b = histogram_bin(stats.points[doc_id])
            stats.histograms.setdefault(source, np.zeros(HISTOGRAM_BINS, dtype=np.int64))[b] += tokens
            stats.doc_histograms.setdefault(source, np.zeros(HISTOGRAM_BINS, dtype=np.int64))[b] += 1
        return stats

    def plan(self, config: MixtureConfig, seed: int) -> MixturePlan:
        return make_plan(config, seed, self.pools, self.counts, self.histograms, self.doc_histograms, self.largest)


def mix_in_memory(
    config: MixtureConfig, seed: int, docs: Iterable[tuple[str, str, int]]
) -> tuple[MixturePlan, dict[str, int]]:
    """The same two passes as the Beam pipeline, in one process: (plan, copies per document id).

    `docs` are (source, id, tokens). For tests, tools and small inputs; the pipeline never gathers
    all documents like this.
    """
    docs = list(docs)
    stats = PoolStats.of(seed, docs)
    points = stats.points
    plan = stats.plan(config, seed)
    members: dict[str, list[tuple[float, str, int]]] = {}
    for source, doc_id, tokens in docs:
        if in_boundary(plan.sources[source], points[doc_id]):
            members.setdefault(source, []).append((points[doc_id], doc_id, tokens))
    cuts = {s: boundary_choice(m, plan.sources[s].boundary_tokens) for s, m in members.items()}
    copies = {doc_id: copies_of(plan.sources[source], points[doc_id], doc_id, cuts.get(source))
              for source, doc_id, _ in docs}
    return plan, copies
