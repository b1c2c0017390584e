"""Stage 5 with `mixture.tokenize: sampled`: tokenize first what the mixture can sample, then the rest
of only the sources where that does not settle the plan (`lemur_corpus.partial_pools` has the method
and why the shards are the same bytes as tokenizing everything).

    docs ─▶ byte histograms ─▶ first bounds ─┐
      └─▶ split by bound ─▶ first ─▶ encode ─┴─▶ partial pools ─▶ unsettled sources ─┐
                         └─▶ rest ─────────────────────────────────────────────────┴─▶ encode or count

The documents left untokenized leave the stage counted (documents and bytes, as every document is)
and enter the mixture's pools as documents without tokens; no copy of them is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam

from lemur_corpus.accounting import TOKENIZE
from lemur_corpus.config import BuildConfig
from lemur_corpus.document import Document
from lemur_corpus.mixture import histogram_bin, sample_point
from lemur_corpus.partial_pools import first_bounds, unsettled_sources
from lemur_corpus.pipelines.ledger import CountDocuments, StageOutputs
from lemur_corpus.pipelines.mix import HistogramFn, PartialPools, pool_point
from lemur_corpus.pipelines.outputs import MultiOutputParDo
from lemur_corpus.pipelines.profile import MIX, profiled_fn
from lemur_corpus.pipelines.tokenize import Encode
from lemur_corpus.tokenizer import TokenizerIdentity

REST = "rest"
REST_POINTS = "rest_points"


class SampledOutputs(NamedTuple):
    stage: StageOutputs
    """The tokenized documents (both passes) and the stage's tallies (every document in and out)."""
    partial: PartialPools
    """The pools with the untokenized documents counted, and the first pass's bounds, for `Mix`."""


@profiled_fn(MIX)
def _byte_point(doc: Document, seed: int) -> tuple[str, tuple[int, int]]:
    return doc.source, (histogram_bin(sample_point(seed, doc.id)), doc.nbytes)


@profiled_fn(MIX)
def _bounds(_: Any, byte_pools: dict[str, dict[str, Any]], config: BuildConfig) -> dict[str, int]:
    return first_bounds(config.all_mixtures(), byte_pools)


@profiled_fn(MIX)
def _unsettled(_: Any, pools: dict[str, dict[str, Any]], bounds: dict[str, int],
               config: BuildConfig) -> frozenset[str]:
    return unsettled_sources(config.all_mixtures(), config.seed, pools, bounds)


class Untokenized(NamedTuple):
    """What the pools and the accounting need of a document past its source's first bound."""

    source: str
    u_bin: int
    nbytes: int


class SplitByBoundFn(beam.DoFn):
    """A document in its source's first bound goes on (the main output); one past it goes to `REST`,
    and its `Untokenized` record to `REST_POINTS`."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    @profiled_fn(MIX, flat=True)
    def process(self, doc: Document, bounds: dict[str, int]) -> Iterator[Any]:
        b = histogram_bin(sample_point(self.seed, doc.id))
        if b <= bounds.get(doc.source, b):
            yield doc
            return
        yield beam.pvalue.TaggedOutput(REST, doc)
        yield beam.pvalue.TaggedOutput(REST_POINTS, Untokenized(doc.source, b, doc.nbytes))


def _untokenized_point(record: Untokenized) -> tuple[str, tuple[int, None]]:
    return record.source, (record.u_bin, None)


def _source_in(doc: Document | Untokenized, sources: frozenset[str]) -> bool:
    return doc.source in sources


def _source_out(doc: Document | Untokenized, sources: frozenset[str]) -> bool:
    return doc.source not in sources


class TokenizeSampled(beam.PTransform):
    """Documents -> `SampledOutputs`: the tokenized ones and the pools the mixture plans from."""

    def __init__(self, config: BuildConfig, identity: TokenizerIdentity, spill_folder: str) -> None:
        super().__init__()
        self.config = config
        self.identity, self.spill_folder = identity, spill_folder

    def _encode(self) -> Encode:
        return Encode(self.config.tokenizer, self.identity, self.config.shards.write_jsonl, self.spill_folder)

    def expand(self, docs: beam.PCollection) -> SampledOutputs:
        config, seed = self.config, self.config.seed
        counted_in = docs | "CountIn" >> CountDocuments(TOKENIZE, "in")
        byte_pools = (
            docs
            | "BytePoints" >> beam.Map(_byte_point, seed)
            | "BytePools" >> beam.CombinePerKey(HistogramFn())
        )
        bounds = (
            docs.pipeline
            | "BoundsSeed" >> beam.Create([None])
            | "Bounds" >> beam.Map(_bounds, byte_pools=beam.pvalue.AsDict(byte_pools), config=config)
        )
        bounds_side = beam.pvalue.AsSingleton(bounds)
        split = docs | "Split" >> MultiOutputParDo(SplitByBoundFn(seed), REST, REST_POINTS, main="first",
                                                   bounds=bounds_side)
        first = split["first"] | "EncodeFirst" >> self._encode()
        first_points = first | "FirstPoints" >> beam.Map(pool_point, seed)
        rest_points = split[REST_POINTS] | "RestPoints" >> beam.Map(_untokenized_point)
        partial = (
            (first_points, rest_points) | "PartialPoints" >> beam.Flatten()
            | "PartialPools" >> beam.CombinePerKey(HistogramFn())
        )
        unsettled = beam.pvalue.AsSingleton(
            docs.pipeline
            | "UnsettledSeed" >> beam.Create([None])
            | "Unsettled" >> beam.Map(_unsettled, pools=beam.pvalue.AsDict(partial), bounds=bounds_side,
                                      config=config)
        )
        second = (
            split[REST]
            | "RestOfUnsettled" >> beam.Filter(_source_in, unsettled)
            | "EncodeRest" >> self._encode()
        )
        untokenized = split[REST_POINTS] | "Untokenized" >> beam.Filter(_source_out, unsettled)
        pools = (
            (first_points, second | "SecondPoints" >> beam.Map(pool_point, seed),
             untokenized | "UntokenizedPoints" >> beam.Map(_untokenized_point))
            | "AllPoints" >> beam.Flatten()
            | "Pools" >> beam.CombinePerKey(HistogramFn())
        )
        tokenized = (first, second) | "Tokenized" >> beam.Flatten()
        counted_out = (
            (tokenized | "CountTokenized" >> CountDocuments(TOKENIZE, "out"),
             untokenized | "CountUntokenized" >> CountDocuments(TOKENIZE, "out"))
            | "CountedOut" >> beam.Flatten()
        )
        tallies = (counted_in, counted_out) | "Tallies" >> beam.Flatten()
        return SampledOutputs(StageOutputs(tokenized, tallies, None), PartialPools(pools, bounds))
