"""Stage 6, mix: pass one counts each source's pool (and a token-weighted hash histogram), the plan
is computed from those combines as a side input, pass two emits every document's copies.

See `lemur_corpus.mixture` for the arithmetic. Nothing here holds more than one histogram per source, the
documents of one histogram bin per source, and the plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np

from lemur_corpus.config import BuildConfig
from lemur_corpus.mixture import (
    HISTOGRAM_BINS,
    MixtureError,
    MixturePlan,
    SourcePlan,
    boundary_choice,
    copies_of,
    histogram_bin,
    in_boundary,
    sample_point,
)
from lemur_corpus.partial_pools import final_problems, plan_from_pools
from lemur_corpus.pipelines.profile import MIX, profiled_fn
from lemur_corpus.pipelines.tokenize import TokenizedDoc
from lemur_corpus.variants import MAIN, in_any_window, nested_choices


class SparseHistogram(NamedTuple):
    """A histogram accumulator as it crosses the shuffle: its non-empty bins only."""

    bins: np.ndarray
    tokens: np.ndarray
    documents: np.ndarray
    largest: int
    untokenized: int = 0


class HistogramFn(beam.CombineFn):
    """Histograms of u(doc) over HISTOGRAM_BINS bins, weighted by tokens and by documents. An input
    is (bin, tokens), or (bin, None) for a document left untokenized (`lemur_corpus.partial_pools`):
    counted in its bin's documents and in `untokenized`, not in the tokens. (Weighted by bytes
    instead of tokens, the same combine gives `partial_pools.first_bounds` its byte histograms.)

    A dense accumulator is two arrays of HISTOGRAM_BINS int64s, 1 MiB: one per source per bundle
    came out of the lifted combine, and the merge held them all at once, so the more bundles a
    build was cut into, the more the merge held. An accumulator
    leaves its bundle as its non-empty bins (`compact`), at most one per document of the bundle."""

    def create_accumulator(self) -> list[Any]:
        return [np.zeros(HISTOGRAM_BINS, dtype=np.int64), np.zeros(HISTOGRAM_BINS, dtype=np.int64), 0, 0]

    def add_input(self, acc: list[Any], item: tuple[int, int | None]) -> list[Any]:
        b, tokens = item
        acc[1][b] += 1
        if tokens is None:
            acc[3] += 1
            return acc
        acc[0][b] += tokens
        acc[2] = max(acc[2], tokens)
        return acc

    def compact(self, acc: list[Any] | SparseHistogram) -> SparseHistogram:
        if isinstance(acc, SparseHistogram):
            return acc
        bins = np.flatnonzero(acc[1])  # every document adds 1 to its bin's count, tokens or not
        return SparseHistogram(bins.astype(np.int32), acc[0][bins], acc[1][bins], int(acc[2]), int(acc[3]))

    def merge_accumulators(self, accs: Any) -> list[Any]:
        out = self.create_accumulator()
        for acc in accs:
            if isinstance(acc, SparseHistogram):
                out[0][acc.bins] += acc.tokens  # the bins of one accumulator are distinct
                out[1][acc.bins] += acc.documents
                out[2] = max(out[2], acc.largest)
                out[3] += acc.untokenized
            else:
                out[0] += acc[0]
                out[1] += acc[1]
                out[2] = max(out[2], acc[2])
                out[3] += acc[3]
        return out

    def extract_output(self, acc: list[Any] | SparseHistogram) -> dict[str, Any]:
        acc = self.merge_accumulators([acc]) if isinstance(acc, SparseHistogram) else acc
        return {"histogram": acc[0], "doc_histogram": acc[1], "largest": int(acc[2]),
                "tokens": int(acc[0].sum()), "documents": int(acc[1].sum()), "untokenized": int(acc[3])}


@profiled_fn(MIX)
def _plan(_: Any, pools: dict[str, dict[str, Any]], config: BuildConfig,
          bounds: dict[str, int] | None = None) -> MixturePlan:
    try:
        plan = plan_from_pools(config.mixture, config.seed, pools)
    except MixtureError as exc:  # reported by the manifest step as the build's failure, not a traceback
        return MixturePlan.failed(config.seed, str(exc))
    problems = final_problems(plan, bounds or {})
    return MixturePlan.failed(config.seed, "; ".join(problems)) if problems else plan


def _plans(_: Any, pools: dict[str, dict[str, Any]], config: BuildConfig,
           bounds: dict[str, int] | None = None) -> dict[str, MixturePlan]:
    """The main plan (key `MAIN`) and every variant's, from the same pools. A variant the pools cannot
    give fails the whole build, naming the variant, before anything is written."""
    plans = {MAIN: _plan(None, pools, config, bounds)}
    problems = []
    for name, mixture in config.variant_mixtures().items():
        plan = _plan(None, pools, config.model_copy(update={"mixture": mixture}), bounds)
        if plan.error:
            problems.append(f"variant {name!r}: {plan.error}")
        plans[name] = plan
    if problems and not plans[MAIN].error:
        plans[MAIN] = MixturePlan.failed(config.seed, "; ".join(problems))
    return plans


def _source_plans(plans: dict[str, MixturePlan], source: str) -> dict[str, SourcePlan]:
    return {key: plan.sources[source] for key, plan in plans.items() if source in plan.sources}


@profiled_fn(MIX)
def _in_any_boundary(doc: TokenizedDoc, plans: dict[str, MixturePlan]) -> bool:
    main = plans[MAIN]
    return not main.error and in_any_window(_source_plans(plans, doc.source).values(),
                                            sample_point(main.seed, doc.id))


@profiled_fn(MIX)
def _choose_nested(element: tuple[str, list[tuple[float, str, int]]],
                   plans: dict[str, MixturePlan]) -> tuple[str, dict[str, frozenset[str]]]:
    source, members = element
    return source, nested_choices(members, _source_plans(plans, source))


def copies_per_plan(doc: TokenizedDoc, plans: dict[str, MixturePlan], cuts: dict[str, Any]) -> dict[str, int]:
    """Plan key -> how many times each plan writes the document (nothing when the build failed)."""
    if plans[MAIN].error:
        return {}
    u = sample_point(plans[MAIN].seed, doc.id)
    chosen = cuts.get(doc.source) or {}
    return {key: copies_of(plan.sources[doc.source], u, doc.id, chosen.get(key)) for key, plan in plans.items()}


@profiled_fn(MIX, flat=True)
def _main_copies(doc: TokenizedDoc, plans: dict[str, MixturePlan],
                 cuts: dict[str, Any]) -> Iterator[tuple[TokenizedDoc, int]]:
    for copy in range(copies_per_plan(doc, plans, cuts).get(MAIN, 0)):
        yield doc, copy


@profiled_fn(MIX, flat=True)
def _variant_copies(doc: TokenizedDoc, plans: dict[str, MixturePlan],
                    cuts: dict[str, Any]) -> Iterator[tuple[TokenizedDoc, int, dict[str, int]]]:
    """(doc, copies in the main mixture, {variant: copies}) for a document some variant writes."""
    counts = copies_per_plan(doc, plans, cuts)
    variants = {key: n for key, n in counts.items() if key != MAIN and n}
    if variants:
        yield doc, counts[MAIN], variants


@profiled_fn(MIX)
def _in_boundary(doc: TokenizedDoc, plan: MixturePlan) -> bool:
    return not plan.error and in_boundary(plan.sources[doc.source], sample_point(plan.seed, doc.id))


@profiled_fn(MIX)
def _choose(element: tuple[str, list[tuple[float, str, int]]], plan: MixturePlan) -> tuple[str, frozenset[str]]:
    source, members = element
    return source, boundary_choice(members, plan.sources[source].boundary_tokens)


@profiled_fn(MIX, flat=True)
def _copies(doc: TokenizedDoc, plan: MixturePlan, cuts: dict[str, Any]) -> Iterator[tuple[TokenizedDoc, int]]:
    if plan.error:
        return
    source = plan.sources[doc.source]
    n = copies_of(source, sample_point(plan.seed, doc.id), doc.id, cuts.get(doc.source))
    for copy in range(n):
        yield doc, copy


@profiled_fn(MIX)
def pool_point(doc: TokenizedDoc, seed: int) -> tuple[str, tuple[int, int]]:
    return doc.source, (histogram_bin(sample_point(seed, doc.id)), doc.length)


@profiled_fn(MIX)
def _boundary_point(doc: TokenizedDoc, seed: int) -> tuple[str, tuple[float, str, int]]:
    return doc.source, (sample_point(seed, doc.id), doc.id, doc.length)


class MixOutputs(NamedTuple):
    copies: beam.PCollection
    """(TokenizedDoc, copy number) for every copy the plan writes."""
    plan: beam.PCollection
    """The `MixturePlan`, a singleton (with `error` set when the pools cannot give the mixture)."""
    cuts: beam.PCollection
    """(source, ids taken from the boundary window) pairs; with variants, (source, {plan key: ids})."""
    plans: beam.PCollection | None = None
    """With variants: {plan key: `MixturePlan`} (`MAIN` and each variant), a singleton."""
    variant_copies: beam.PCollection | None = None
    """With variants: (doc, main copies, {variant: copies}) for every document a variant writes."""


class PartialPools(NamedTuple):
    """What `mixture.tokenize: sampled` gives the mix instead of its own pass one
    (`pipelines/tokenize.py: TokenizeSampled`)."""

    pools: beam.PCollection
    """(source, `HistogramFn` output) with the untokenized documents counted."""
    bounds: beam.PCollection
    """{source: last bin tokenized in the first pass}, a singleton."""


class Mix(beam.PTransform):
    """Tokenized documents -> their copies under the token-exact plan (two passes over the documents).
    With `partial`, pass one's pools come from it: documents left untokenized are in the pools'
    counts, not among the tokenized ones, and the plan writes none of them."""

    def __init__(self, config: BuildConfig, partial: PartialPools | None = None) -> None:
        super().__init__()
        self.config = config
        self.partial = partial

    def expand(self, tokenized: beam.PCollection) -> MixOutputs:
        seed = self.config.seed
        if self.partial is None:
            pools = (
                tokenized
                | "PoolPoints" >> beam.Map(pool_point, seed)
                | "Pools" >> beam.CombinePerKey(HistogramFn())
            )
            bounds: dict[str, Any] = {}
        else:
            pools, bounds = self.partial.pools, {"bounds": beam.pvalue.AsSingleton(self.partial.bounds)}
        if self.config.variants:
            return self._with_variants(tokenized, pools, bounds)
        plan = (
            tokenized.pipeline
            | "PlanSeed" >> beam.Create([None])
            | "Plan" >> beam.Map(_plan, pools=beam.pvalue.AsDict(pools), config=self.config, **bounds)
        )
        plan_side = beam.pvalue.AsSingleton(plan)
        cuts = (
            tokenized
            | "BoundaryDocs" >> beam.Filter(_in_boundary, plan=plan_side)
            | "BoundaryPoints" >> beam.Map(_boundary_point, seed)
            | "GroupBoundary" >> beam.GroupByKey()
            | "Choose" >> beam.Map(_choose, plan=plan_side)
        )
        copies = tokenized | "Copies" >> beam.FlatMap(_copies, plan=plan_side, cuts=beam.pvalue.AsDict(cuts))
        return MixOutputs(copies, plan, cuts)

    def _with_variants(self, tokenized: beam.PCollection, pools: beam.PCollection,
                       bounds: dict[str, Any]) -> MixOutputs:
        """The same two passes, planning every variant from the same pools and choosing each plan's
        boundary documents together (`nested_choices`), so that larger rates take supersets."""
        seed = self.config.seed
        plans = (
            tokenized.pipeline
            | "PlanSeed" >> beam.Create([None])
            | "Plans" >> beam.Map(_plans, pools=beam.pvalue.AsDict(pools), config=self.config, **bounds)
        )
        plans_side = beam.pvalue.AsSingleton(plans)
        plan = plans | "MainPlan" >> beam.Map(lambda p: p[MAIN])
        cuts = (
            tokenized
            | "BoundaryDocs" >> beam.Filter(_in_any_boundary, plans=plans_side)
            | "BoundaryPoints" >> beam.Map(lambda d: (d.source, (sample_point(seed, d.id), d.id, d.length)))
            | "GroupBoundary" >> beam.GroupByKey()
            | "Choose" >> beam.Map(_choose_nested, plans=plans_side)
        )
        cuts_side = beam.pvalue.AsDict(cuts)
        copies = tokenized | "Copies" >> beam.FlatMap(_main_copies, plans=plans_side, cuts=cuts_side)
        variant_copies = tokenized | "VariantCopies" >> beam.FlatMap(_variant_copies, plans=plans_side, cuts=cuts_side)
        return MixOutputs(copies, plan, cuts, plans, variant_copies)
