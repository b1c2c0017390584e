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
    make_plan,
    sample_point,
)
from lemur_corpus.pipelines.profile import MIX, profiled_fn
from lemur_corpus.pipelines.tokenize import TokenizedDoc
from lemur_corpus.variants import MAIN, in_any_window, nested_choices


class SparseHistogram(NamedTuple):
    """A histogram accumulator as it crosses the shuffle: its non-empty bins only."""

    bins: np.ndarray
    tokens: np.ndarray
    documents: np.ndarray
    largest: int


class HistogramFn(beam.CombineFn):
    """Histograms of u(doc) over HISTOGRAM_BINS bins, weighted by tokens and by documents.

    A dense accumulator is two arrays of HISTOGRAM_BINS int64s, 1 MiB: one per source per bundle
    came out of the lifted combine, and the merge held them all at once, so the more bundles a
    build was cut into, the more the merge held. An accumulator
    leaves its bundle as its non-empty bins (`compact`), at most one per document of the bundle."""

    def create_accumulator(self) -> list[Any]:
        return [np.zeros(HISTOGRAM_BINS, dtype=np.int64), np.zeros(HISTOGRAM_BINS, dtype=np.int64), 0]

    def add_input(self, acc: list[Any], item: tuple[int, int]) -> list[Any]:
        b, tokens = item
        acc[0][b] += tokens
        acc[1][b] += 1
        acc[2] = max(acc[2], tokens)
        return acc

    def compact(self, acc: list[Any] | SparseHistogram) -> SparseHistogram:
        if isinstance(acc, SparseHistogram):
            return acc
        bins = np.flatnonzero(acc[1])  # every document adds 1 to its bin's count, tokens or not
        return SparseHistogram(bins.astype(np.int32), acc[0][bins], acc[1][bins], int(acc[2]))

    def merge_accumulators(self, accs: Any) -> list[Any]:
        out = self.create_accumulator()
        for acc in accs:
            if isinstance(acc, SparseHistogram):
                out[0][acc.bins] += acc.tokens  # the bins of one accumulator are distinct
                out[1][acc.bins] += acc.documents
            else:
                out[0] += acc[0]
                out[1] += acc[1]
            out[2] = max(out[2], acc[2] if not isinstance(acc, SparseHistogram) else acc.largest)
        return out

    def extract_output(self, acc: list[Any] | SparseHistogram) -> dict[str, Any]:
        acc = self.merge_accumulators([acc]) if isinstance(acc, SparseHistogram) else acc
        return {"histogram": acc[0], "doc_histogram": acc[1], "largest": int(acc[2]),
                "tokens": int(acc[0].sum()), "documents": int(acc[1].sum())}


@profiled_fn(MIX)
def _plan(_: Any, pools: dict[str, dict[str, Any]], config: BuildConfig) -> MixturePlan:
    try:
        return make_plan(
            config.mixture,
            config.seed,
            {s: v["tokens"] for s, v in pools.items()},
            {s: v["documents"] for s, v in pools.items()},
            {s: v["histogram"] for s, v in pools.items()},
            {s: v["doc_histogram"] for s, v in pools.items()},
            {s: v["largest"] for s, v in pools.items()},
        )
    except MixtureError as exc:  # reported by the manifest step as the build's failure, not a traceback
        return MixturePlan.failed(config.seed, str(exc))


def _plans(_: Any, pools: dict[str, dict[str, Any]], config: BuildConfig) -> dict[str, MixturePlan]:
    """The main plan (key `MAIN`) and every variant's, from the same pools. A variant the pools cannot
    give fails the whole build, naming the variant, before anything is written."""
    plans = {MAIN: _plan(None, pools, config)}
    problems = []
    for name, mixture in config.variant_mixtures().items():
        plan = _plan(None, pools, config.model_copy(update={"mixture": mixture}))
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
def _pool_point(doc: TokenizedDoc, seed: int) -> tuple[str, tuple[int, int]]:
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


class Mix(beam.PTransform):
    """Tokenized documents -> their copies under the token-exact plan (two passes over the documents)."""

    def __init__(self, config: BuildConfig) -> None:
        super().__init__()
        self.config = config

    def expand(self, tokenized: beam.PCollection) -> MixOutputs:
        seed = self.config.seed
        pools = (
            tokenized
            | "PoolPoints" >> beam.Map(_pool_point, seed)
            | "Pools" >> beam.CombinePerKey(HistogramFn())
        )
        if self.config.variants:
            return self._with_variants(tokenized, pools)
        plan = (
            tokenized.pipeline
            | "PlanSeed" >> beam.Create([None])
            | "Plan" >> beam.Map(_plan, pools=beam.pvalue.AsDict(pools), config=self.config)
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

    def _with_variants(self, tokenized: beam.PCollection, pools: beam.PCollection) -> MixOutputs:
        """The same two passes, planning every variant from the same pools and choosing each plan's
        boundary documents together (`nested_choices`), so that larger rates take supersets."""
        seed = self.config.seed
        plans = (
            tokenized.pipeline
            | "PlanSeed" >> beam.Create([None])
            | "Plans" >> beam.Map(_plans, pools=beam.pvalue.AsDict(pools), config=self.config)
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
